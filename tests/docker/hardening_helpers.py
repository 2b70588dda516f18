"""Shared pieces of the hardening tests: an environment of their own, the cluster-order
enable through the agent, file fingerprints, and deadline polling.

Environments are named ``h8-<topology>-<release>`` so they never collide with other modules' or
other engineers' environments; ``DBTLS_KEEP_SIM=1`` keeps them for the next run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from agent_helpers import AGENT_DIR, CERT_DIR, agent, issue_certificates

from dbtls.sim import cluster
from support import env_name

RELEASES = os.environ.get("DBTLS_RELEASES", "bookworm").split()
DATA = "/var/lib/pgsql/data"
PG_FILES = [f"{DATA}/postgresql.conf", f"{DATA}/pg_hba.conf", f"{DATA}/postgresql.auto.conf"]
POOL_FILES = ["/etc/pgpool-II/pgpool.conf", "/etc/pgpool-II/pool_hba.conf", "/etc/pgpool-II/pool_passwd"]
ROOT_ON_CLIENT = "/tmp/h8-root.crt"
KILLED = (-9, 137)  # docker exec reports a SIGKILLed process as 137
KILL_ENV = "DBTLS_TEST_KILL_AFTER_STEP"


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


class Env:
    """A simulated pg-cluster or mariadb-cluster: containers by role, hostnames, IPs, secrets."""

    def __init__(self, name: str, topology: str, release: str) -> None:
        engine = cluster.client()
        self.name, self.topology, self.release = name, topology, release
        self.nodes = cluster.status(engine, name)
        self.secrets = cluster.read_secrets(engine, name)
        self.pw = {"webadmin": self.secrets["WEBADMIN_PASSWORD"], "pgpool": self.secrets["PGPOOL_PASSWORD"],
                   "replication": self.secrets["REPL_PASSWORD"]}
        db = [n for n in self.nodes if n.role in ("postgres", "mysql", "mariadb")]
        db.sort(key=lambda n: (not n.is_master, n.node_id))
        self.c = {"primary": db[0].name, "client": self._by_role("client").name}
        if len(db) > 1:
            self.c["standby"] = db[1].name
        for role in ("pgpool", "proxysql"):
            if any(n.role == role for n in self.nodes):
                self.c[role] = self._by_role(role).name
        self.host = {k: next(n.hostname for n in self.nodes if n.name == v) for k, v in self.c.items()}
        self.ip = {k: next(n.ip for n in self.nodes if n.name == v) for k, v in self.c.items()}
        self.state: dict = {}

    def _by_role(self, role: str):
        return next(n for n in self.nodes if n.role == role)

    def exec(self, node: str, cmd: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None,
             user: str | None = None, timeout: float = 300) -> tuple[int, str]:
        """Run ``cmd`` in ``node`` (a key of ``c`` or a container name); (exit code, stdout+stderr)."""
        argv = ["docker", "exec", "-i"] + sum((["-e", f"{k}={v}"] for k, v in (env or {}).items()), [])
        argv += (["-u", user] if user else []) + [self.c.get(node, node)] + cmd
        proc = subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=timeout, check=False)
        return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")

    def agent(self, node: str, *args: str, stdin: bytes | None = None, extra_env: dict[str, str] | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess:
        return agent(self, self.c.get(node, node), *args, stdin=stdin, extra_env=extra_env, timeout=timeout)

    def agent_json(self, node: str, *args: str, passwords: bool = False, **kw: Any) -> dict:
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


def own_env(topology: str, release: str, prefix: str = "h8") -> Iterator[Env]:
    """An environment of the caller's own (``<prefix>-<topology>-<release>``), removed afterwards."""
    name = env_name(f"{prefix}-{topology}-{release}")
    cluster.up(topology, env=name, release=release, progress=lambda m: None)
    try:
        yield Env(name, topology, release)
    finally:
        if os.environ.get("DBTLS_KEEP_SIM") != "1":
            cluster.down(name, progress=lambda m: None)


def pg_nodes(env: Env) -> list[str]:
    return [k for k in ("primary", "standby", "pgpool") if k in env.c]


def issue_pg_certificates(env: Env) -> str:
    """CA on the primary, server+client certificates everywhere; root.crt copied to the client."""
    root = issue_certificates(env, env.c["primary"], [env.c[k] for k in pg_nodes(env)])
    rc, out = env.exec("client", ["sh", "-c", f"cat > {ROOT_ON_CLIENT}"], stdin=root.encode())
    assert rc == 0, out
    return root


def enable_pg_cluster(env: Env) -> None:
    """The cross-stack order through the agent: offer, use, pgpool, then require."""
    for node in ("primary", "standby"):
        env.agent_json(node, "enable", "--role", "postgres", "--stage", "offer", passwords=True)
    env.agent_json("standby", "enable", "--role", "postgres", "--stage", "use")
    env.agent_json("pgpool", "enable", "--role", "pgpool", passwords=True)
    for node in ("primary", "standby"):
        # Roles are re-hashed to SCRAM in the require stage, so it needs the passwords too.
        env.agent_json(node, "enable", "--role", "postgres", "--stage", "require",
                       "--no-client-cert-address", env.ip["pgpool"], passwords=True)


def psql_ok(env: Env, node: str, mode: str = "verify-full") -> bool:
    """One query from the client container to ``node`` with ``sslmode=mode``."""
    conninfo = (f"host={env.host[node]} user=webadmin dbname=postgres sslmode={mode} connect_timeout=5"
                + (f" sslrootcert={ROOT_ON_CLIENT}" if mode.startswith("verify") else ""))
    rc, _ = env.exec("client", ["psql", "-XAtq", "-d", conninfo, "-c", "select 1"],
                     env={"PGPASSWORD": env.pw["webadmin"]})
    return rc == 0


def served_fingerprint(env: Env, node: str) -> str:
    """SHA-256 fingerprint of the certificate ``node`` serves (PostgreSQL STARTTLS), from the client."""
    rc, out = env.exec("client", ["bash", "-c", f"openssl s_client -starttls postgres -connect {env.host[node]}:5432 "
                                  "</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"])
    return out.strip() if rc == 0 and "Fingerprint" in out else ""


# --- MySQL-family environments (mariadb, mariadb-cluster): "standby" is the replica ------------


def mysql_nodes(env: Env) -> list[str]:
    return [k for k in ("primary", "standby", "proxysql") if k in env.c]


def issue_mysql_certificates(env: Env) -> str:
    """CA on the primary, a server certificate on every MariaDB and ProxySQL node; root.crt to the client."""
    root = issue_certificates(env, env.c["primary"], [env.c[k] for k in mysql_nodes(env)], client=False)
    rc, out = env.exec("client", ["sh", "-c", f"cat > {ROOT_ON_CLIENT}"], stdin=root.encode())
    assert rc == 0, out
    return root


def mysql_ok(env: Env, host: str, tls: bool = True) -> bool:
    """One query as root from the client container to ``host`` (a node key or a host name):
    verifying the certificate and the name as typed (tls), or without TLS (not tls)."""
    args = ["mariadb", f"--host={env.host.get(host, host)}", "--user=root", "--connect-timeout=5", "--batch",
            "--skip-column-names"]
    args += ["--ssl-verify-server-cert", f"--ssl-ca={ROOT_ON_CLIENT}"] if tls else ["--skip-ssl"]
    rc, out = env.exec("client", args + ["-e", "SELECT 1"], env={"MYSQL_PWD": env.secrets["MYSQL_ROOT_PASSWORD"]})
    return rc == 0 and out.strip() == "1"


def served_mysql_fingerprint(env: Env, node: str, port: int = 3306) -> str:
    """SHA-256 fingerprint of the certificate ``node`` serves (MySQL STARTTLS), from the client."""
    rc, out = env.exec("client", ["bash", "-c", f"openssl s_client -starttls mysql -connect {env.host[node]}:{port} "
                                  "</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"])
    return out.strip() if rc == 0 and "Fingerprint" in out else ""


def cert_fingerprint(env: Env, node: str, path: str = f"{CERT_DIR}/server/server.crt") -> str:
    """``sha256 Fingerprint=AB:CD:...`` of a certificate file on ``node`` (as openssl prints it)."""
    rc, out = env.exec(node, ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", path])
    assert rc == 0, out
    return out.strip()


def proxysql_admin(env: Env, query: str) -> str:
    """A query on the ProxySQL admin interface (the test double on simulated nodes), as its admin."""
    user = env.secrets.get("PROXYSQL_ADMIN_USER", "admin")
    rc, out = env.exec("proxysql", ["mariadb", "--skip-ssl", "-h127.0.0.1", "-P6032", f"-u{user}", "--batch",
                                    "--skip-column-names", "-e", query],
                       env={"MYSQL_PWD": env.secrets.get("PROXYSQL_ADMIN_PASSWORD", "admin")})
    assert rc == 0, out
    return out


__all__ = ["AGENT_DIR", "CERT_DIR", "Env", "own_env", "wait_for"]


def run_killed(env: Env, node: str, args: list[str], step: str, stdin: bytes | None = None) -> None:
    """Run the agent with the kill hook set to ``step`` and insist that it died there."""
    proc = env.agent(node, *args, stdin=stdin, extra_env={KILL_ENV: step})
    assert proc.returncode in KILLED, f"{args} was not killed after {step}: rc={proc.returncode} {proc.stderr!r}"


def reissue_server_cert(env: Env, node: str, kill: str | None) -> bytes:
    """The manifest's certificate steps of a server re-issue on ``node`` (csr on the node, signing on
    the primary, install on the node), killed once at ``kill`` (``csr:...``/``install-certs:...``)
    and re-run; returns what the CA signed (certificate first). Reloading is the caller's."""
    csr_args = ["csr", "--kind", "server", "--rotate"]
    if kill and kill.startswith("csr:"):
        run_killed(env, node, csr_args, kill)
    proc = env.agent(node, *csr_args)
    assert proc.returncode == 0, proc.stderr.decode()
    signed = env.agent("primary", "ca", "sign", "--format", "pem", stdin=proc.stdout)
    assert signed.returncode == 0, signed.stderr.decode()
    if kill and kill.startswith("install-certs:"):
        run_killed(env, node, ["install-certs"], kill, signed.stdout)
    proc = env.agent(node, "install-certs", stdin=signed.stdout)
    assert proc.returncode == 0, f"{node} install-certs: {proc.stderr.decode()}"
    return signed.stdout
