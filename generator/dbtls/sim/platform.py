"""The simulated platform as the JPS interpreter sees it: nodes, a runner, ``${baseUrl}``.

``dbtls sim`` containers are mapped to :class:`dbtls.jps.Node` (platform id, layer, nodeType,
master flag, address, hostname). Scripts go to the nodes through ``docker exec -i`` with the script
on stdin (``jps.runners``). A tiny HTTP server on the environment's docker bridge gateway serves the
built manifest and agent, so the manifest's download-and-sha256 step runs for real. What add-ons are
installed is kept in the environment's client container: it lives and dies with the environment.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from dbtls.jps import Environment, Interpreter, Node
from dbtls.jps.runners import ShellRunner, docker_argv
from dbtls.sim import cluster, topology
from dbtls.sim.errors import NoEnvironment, SimError

#: PostgreSQL major per Debian release (README table), for the platform-style nodeType.
PG_MAJOR = {"bullseye": 13, "bookworm": 15, "trixie": 17}
#: Stack versions per Debian release (README table), for the nodes' ``version`` key.
STACK_VERSION = {
    "pgpool": {"bullseye": "4.1", "bookworm": "4.3", "trixie": "4.6"},
    "mariadb": {"bullseye": "10.5", "bookworm": "10.11", "trixie": "11.8"},
    "proxysql": {"bullseye": "2.5", "bookworm": "2.5", "trixie": "2.5"},
}
STATE_PATH = "/var/lib/dbtls-sim/addons.json"
#: The simulated platform's scripts (platformapi.Platform), kept with the add-on state (0600, as the
#: platform's own store keeps scripts; a renewal script holds digests, not tokens).
PLATFORM_PATH = "/var/lib/dbtls-sim/platform.json"
#: The only repository paths the HTTP server hands out.
SERVED_PREFIXES = ("manifest.jps", "marketplace/", "node-scripts/dist/")


def node_type(role: str, release: str) -> str:
    """The platform's nodeType for a simulated role (``postgres15``, ``pgpool2``, ``mariadb-dockerized``...)."""
    if role == "postgres":
        return f"postgres{PG_MAJOR.get(release, 15)}"
    return {"pgpool": "pgpool2", "mariadb": "mariadb-dockerized", "proxysql": "proxysql"}[role]


def stack_version(role: str, release: str) -> str:
    """The stack version a node reports in ``${nodes.*.version}`` and GetEnvs."""
    if role == "postgres":
        return str(PG_MAJOR.get(release, 15))
    return STACK_VERSION[role].get(release, "")


def require_env(engine: docker.DockerClient, env: str) -> None:
    """Raise :class:`NoEnvironment` unless ``env`` has simulated nodes."""
    if not cluster.status(engine, env):
        raise NoEnvironment(env)


def environment(engine: docker.DockerClient, env: str) -> Environment:
    """The running environment ``env`` as a JPS :class:`Environment` (client container excluded)."""
    rows = [r for r in cluster.status(engine, env) if r.role != "client"]
    if not rows:
        raise NoEnvironment(env)
    nodes = []
    for r in rows:
        release = engine.containers.get(r.name).labels.get("dbtls.release", "bookworm")
        nodes.append(Node(id=r.node_id, group=r.group, node_type=node_type(r.role, release),
                          ismaster=r.is_master, address=r.ip, hostname=r.hostname,
                          version=stack_version(r.role, release)))
    return Environment(env_name=env, domain=f"{env}.{topology.DOMAIN}", nodes=nodes)


def runner(env: str) -> ShellRunner:
    """Runs engine-wrapped cmds in the env's containers: ``base64 -d | su USER`` with the base64
    text on stdin, never in argv."""
    return ShellRunner(docker_argv(lambda node: f"dbtls-{env}-node{node.id}"), timeout=900)


def gateway(engine: docker.DockerClient, env: str) -> str:
    """The host's address on the environment's bridge network (reachable from its containers only)."""
    net = engine.networks.get(cluster.network_name(env))
    configs = (net.attrs.get("IPAM") or {}).get("Config") or []
    for cfg in configs:
        if cfg.get("Gateway"):
            return str(cfg["Gateway"])
    raise SimError(f"network {net.name} has no gateway address")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files below the repo, restricted to build outputs; ``?_r=`` cache-busters ignored."""

    def translate_path(self, path: str) -> str:
        rel = urllib.parse.unquote(urllib.parse.urlsplit(path).path).lstrip("/")
        if ".." in rel.split("/") or not rel.startswith(SERVED_PREFIXES):
            return "/nonexistent"
        return str(Path(self.directory) / rel)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: the CLI prints its own tables


@contextmanager
def serve(root: Path, host: str) -> Iterator[str]:
    """Serve ``root`` on ``host`` (ephemeral port) for the duration; yields the base URL."""
    handler = lambda *a, **kw: _Handler(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="dbtls-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Installed:
    """One add-on instance as remembered between CLI runs."""

    node_group: str
    settings: dict[str, Any]
    unique_name: str = ""


def _client(engine: docker.DockerClient, env: str) -> Any:
    return engine.containers.get(f"dbtls-{env}-node100")


def load_state(engine: docker.DockerClient, env: str) -> list[Installed]:
    res = _client(engine, env).exec_run(["cat", STATE_PATH])
    if res.exit_code != 0:
        return []
    return [Installed(**item) for item in json.loads(res.output.decode())]


def save_state(engine: docker.DockerClient, env: str, items: list[Installed]) -> None:
    """Remember the installed add-ons inside the env's client container (stdin, not argv)."""
    _save(engine, env, STATE_PATH, json.dumps([i.__dict__ for i in items], indent=1, sort_keys=True))


def load_platform(engine: docker.DockerClient, env: str) -> dict[str, Any] | None:
    """The platform state kept by :func:`save_platform` (None before the first script exists)."""
    res = _client(engine, env).exec_run(["cat", PLATFORM_PATH])
    return json.loads(res.output.decode()) if res.exit_code == 0 else None


def save_platform(engine: docker.DockerClient, env: str, data: dict[str, Any]) -> None:
    _save(engine, env, PLATFORM_PATH, json.dumps(data, indent=1, sort_keys=True))


def _save(engine: docker.DockerClient, env: str, path: str, body: str) -> None:
    script = f"umask 077 && mkdir -p {Path(path).parent} && cat > {path}"
    proc = subprocess.run(["docker", "exec", "-i", _client(engine, env).name, "bash", "-c", script],
                          input=body.encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise SimError(f"cannot save add-on state: {proc.stderr.decode(errors='replace').strip()}")


def interpreter(engine: docker.DockerClient, env: str, *, parallel: bool = True) -> Interpreter:
    """An interpreter bound to the running environment. Manifests are installed from the HTTP
    server's URL, so ``${baseUrl}`` comes from the import URL as on the platform."""
    return Interpreter(environment(engine, env), runner(env), parallel=parallel)
