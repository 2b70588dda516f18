"""The docker tests' one way to a simulated environment and its nodes.

``Env`` is a running environment (nodes, secrets, the containers of its primary, standby, client and
proxies); ``exec_argv`` is the one place a ``docker exec`` command line is made, and every command a
test runs on a node goes through it (``docker_exec``, ``Env.exec``, or ``subprocess.Popen`` of its argv
for a command that runs in the background). ``sim_env`` brings an environment up for a fixture and
takes it down afterwards (kept with ``DBTLS_KEEP_SIM=1``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dbtls.addon.project import repo_root
from dbtls.sim import addon, cluster, platform
from support import env_name

#: Releases the docker tests run on (``DBTLS_RELEASES``, default bookworm).
RELEASES = os.environ.get("DBTLS_RELEASES", "bookworm").split()
CERT_DIR = "/var/lib/jelastic/keys/SSL-TLS"
#: The working tree's agent package, copied into nodes by the tests that run it without the manifest.
AGENT_SRC = Path(__file__).resolve().parents[2] / "node-scripts" / "dbtls_agent"
#: Where those tests put it (``python3 -m dbtls_agent`` with ``PYTHONPATH`` pointing here).
AGENT_DIR = "/opt/dbtls-agent"
#: Seconds a command on a node may take before the test fails.
EXEC_TIMEOUT = 600


def exec_argv(container: str, cmd: list[str], *, env: dict[str, str] | None = None, user: str | None = None,
              stdin: bool = True, detach: bool = False) -> list[str]:
    """``docker exec`` for ``cmd`` in ``container``: ``-i`` (stdin attached) unless ``stdin`` is false,
    ``-d`` with ``detach``, ``-e`` per ``env`` item, ``-u`` with ``user``."""
    argv = ["docker", "exec"] + (["-i"] if stdin else []) + (["-d"] if detach else [])
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    return argv + (["-u", user] if user else []) + [container, *cmd]


def docker_exec(container: str, cmd: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None,
                user: str | None = None, timeout: float | None = EXEC_TIMEOUT,
                check: bool = False) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``container`` with ``stdin`` (empty by default); stdout and stderr captured apart."""
    return subprocess.run(exec_argv(container, cmd, env=env, user=user), input=stdin or b"", capture_output=True,
                          timeout=timeout, check=check)


def combined(proc: subprocess.CompletedProcess) -> str:
    """stdout then stderr of a finished command, as text."""
    return (proc.stdout + proc.stderr).decode(errors="replace")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {value!r})")
        time.sleep(interval)


def install_agent(env: Any, container: str) -> None:
    """Copy the working tree's agent into ``container`` (replacing an older copy)."""
    docker_exec(container, ["rm", "-rf", AGENT_DIR], check=True)
    docker_exec(container, ["mkdir", "-p", AGENT_DIR], check=True)
    subprocess.run(["docker", "cp", str(AGENT_SRC), f"{container}:{AGENT_DIR}/dbtls_agent"], check=True,
                   capture_output=True)


def agent_argv(container: str, *args: str, extra_env: dict[str, str] | None = None, user: str | None = None,
               python_args: tuple[str, ...] = ("-m", "dbtls_agent")) -> list[str]:
    """The ``docker exec`` command line that runs the copied agent (``python3 -m dbtls_agent ARGS``) in
    ``container``, for callers that start it in the background or run ``python3 -c``."""
    return exec_argv(container, ["python3", *python_args, *args], env={"PYTHONPATH": AGENT_DIR, **(extra_env or {})},
                     user=user)


def agent(env: Any, container: str, *args: str, stdin: bytes | None = None,
          extra_env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python3 -m dbtls_agent ARGS`` as root in ``container``; returns the completed process."""
    return subprocess.run(agent_argv(container, *args, extra_env=extra_env), input=stdin or b"",
                          capture_output=True, timeout=timeout, check=False)


class Env:
    """A running simulated environment: its nodes, secrets and passwords, and its containers by part.

    ``c`` maps ``primary``, ``standby`` (the first replica), ``client``, ``pgpool`` and ``proxysql`` (the
    first node of each) to container names; ``host`` and ``ip`` are keyed the same way. Wherever a node
    is named, a key of ``c``, a container name or a role (its first node) will do.
    """

    def __init__(self, name: str, topology: str, release: str, engine: Any = None) -> None:
        self.engine = engine or cluster.client()
        self.name, self.topology, self.release = name, topology, release
        self.state: dict = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the nodes and secrets again (after a scale-out)."""
        self.nodes = cluster.status(self.engine, self.name)
        self.secrets = cluster.read_secrets(self.engine, self.name)
        self.pw = {"webadmin": self.secrets.get("WEBADMIN_PASSWORD"), "pgpool": self.secrets.get("PGPOOL_PASSWORD"),
                   "replication": self.secrets.get("REPL_PASSWORD")}
        db = sorted((n for n in self.nodes if n.role in ("postgres", "mysql", "mariadb")),
                    key=lambda n: (not n.is_master, n.node_id))
        self.c: dict[str, str] = {}
        if db:
            self.c["primary"] = db[0].name
        if len(db) > 1:
            self.c["standby"] = db[1].name
        for role in ("client", "pgpool", "proxysql"):
            first = next((n for n in self.nodes if n.role == role), None)
            if first is not None:
                self.c[role] = first.name
        self.host = {k: next(n.hostname for n in self.nodes if n.name == v) for k, v in self.c.items()}
        self.ip = {k: next(n.ip for n in self.nodes if n.name == v) for k, v in self.c.items()}

    def node(self, role: str, index: int = 0) -> cluster.NodeStatus:
        return [n for n in self.nodes if n.role == role][index]

    def container(self, node: str) -> str:
        """The container of ``node`` (a key of ``c``, a container name or a role)."""
        if node in self.c:
            return self.c[node]
        target = next((n for n in self.nodes if node in (n.name, n.role)), None)
        assert target is not None, f"no node {node} in {self.name}"
        return target.name

    def exec(self, node: str, cmd: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None,
             user: str | None = None, timeout: float | None = EXEC_TIMEOUT) -> tuple[int, str]:
        """Run ``cmd`` on ``node``; (exit code, stdout+stderr)."""
        proc = docker_exec(self.container(node), cmd, stdin=stdin, env=env, user=user, timeout=timeout)
        return proc.returncode, combined(proc)

    def agent(self, node: str, *args: str, stdin: bytes | None = None, extra_env: dict[str, str] | None = None,
              timeout: float = EXEC_TIMEOUT) -> subprocess.CompletedProcess:
        """The agent copied by ``install_agent``, as root on ``node``."""
        return agent(self, self.container(node), *args, stdin=stdin, extra_env=extra_env, timeout=timeout)

    def agent_json(self, node: str, *args: str, passwords: bool = False, **kw: Any) -> dict:
        """The agent's JSON answer (asserting success); ``passwords``: the env's passwords on stdin."""
        if passwords:
            args = args + ("--passwords-stdin",)
            kw["stdin"] = json.dumps(self.pw).encode()
        proc = self.agent(node, *args, **kw)
        assert proc.returncode == 0, f"{node} {args}: rc={proc.returncode} {proc.stderr.decode()}"
        return json.loads(proc.stdout)

    def sha(self, node: str, paths: list[str]) -> dict[str, str | None]:
        """SHA-256 of each path in ``node`` (None when the file is missing)."""
        script = "for f in \"$@\"; do if [ -f \"$f\" ]; then sha256sum \"$f\"; else echo - \"$f\"; fi; done"
        rc, out = self.exec(node, ["bash", "-c", script, "sha", *paths])
        assert rc == 0, out
        rows = dict(reversed(line.split(None, 1)) for line in out.splitlines() if line.strip())
        return {p: (None if rows.get(p) == "-" else rows.get(p)) for p in paths}


def sim_env(topology: str, release: str, prefix: str, env_class: type[Env] = Env) -> Iterator[Env]:
    """An environment ``<prefix>-<topology>-<release>`` of the caller's own, removed afterwards unless
    ``DBTLS_KEEP_SIM=1``. Tests that change the nodes' TLS state use a prefix no other module uses."""
    name = env_name(f"{prefix}-{topology}-{release}")
    cluster.up(topology, env=name, release=release, progress=lambda m: None)
    try:
        yield env_class(name, topology, release)
    finally:
        if os.environ.get("DBTLS_KEEP_SIM") != "1":
            cluster.down(name, progress=lambda m: None)


class Sim:
    """An environment plus a way to run the add-on on it (an HTTP server per call, like the CLI)."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.engine = env.engine

    def session(self, work: Callable[[addon.Session], Any]) -> Any:
        with platform.serve(repo_root(), platform.gateway(self.engine, self.env.name)) as base_url:
            return work(addon.Session(self.env.name, base_url))


# --- Certificates made due on purpose (renewal tests) ---------------------------------------------

NODE_AGENT = "/usr/local/sbin/dbtls-agent"  # where the manifest installs the agent on a node


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def node_agent(env: Env, node: str, *args: str, stdin: str = "") -> str:
    """Run the manifest-installed agent on ``node``; a non-zero exit fails the test."""
    code, out = env.exec(node, [NODE_AGENT, *args], stdin=stdin.encode())
    assert code == 0, (args, out)
    return out


def due_report(env: Env, node: str) -> dict:
    return json.loads(node_agent(env, node, "certs", "due", "--within-days", "30"))


def shorten_server_certificate(env: Env, node_name: str, days: int, layer: str = "sqldb") -> None:
    """Give ``node_name`` a server certificate of ``days`` from the CA node (the database primary),
    through the same agent commands and base64 transport the manifest uses."""
    node = next(n for n in env.nodes if n.name == node_name)
    domain = node.hostname.split("-", 1)[1]
    csr = node_agent(env, node_name, "csr", "--bundle", "--options", "--scope", "server", "--rotate", "--if-installed")
    requests = b64(f" {node.node_id}:{b64(csr)}")
    node_list = b64(f" {node.node_id}={node.ip}")
    proc = docker_exec(env.c["primary"], [NODE_AGENT, "ca", "sign", "--from-manifest", "--days", str(days),
                                          "--env-domain", domain, "--layer", layer],
                       stdin=f"{requests}\n{node_list}\n".encode())
    assert proc.returncode == 0, combined(proc)
    node_agent(env, node_name, "install-certs", "--from-manifest", stdin=b64(proc.stdout.decode().strip()) + "\n")
    server = next(c for c in due_report(env, node_name)["certificates"] if c["role"] == "server")
    assert server["due"] and server["days_left"] <= days, server
