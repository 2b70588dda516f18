"""Bring simulated environments up and down, and look inside them.

Each environment is a docker network ``dbtls-<env>`` with one container per platform node and a
``client`` container. Containers carry labels that say what they simulate, so ``status`` and
``down`` need no state outside docker. Passwords are generated per environment and handed to the
containers as a 0600 file (never through ``docker run -e``, which ``docker inspect`` shows).
"""

from __future__ import annotations

import io
import secrets
import string
import subprocess
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import docker
import docker.errors
from docker.models.containers import Container

from dbtls.sim import images, topology
from dbtls.sim.errors import SimError

LABEL = "dbtls.sim"
Progress = Callable[[str], None]
SERVICE_DEADLINE_S = 300.0


def client() -> docker.DockerClient:
    """A client for the local engine, or a SimError that says how to get one."""
    try:
        engine = docker.from_env(timeout=300)
        engine.ping()
    except Exception as exc:  # the SDK raises several unrelated types here
        raise SimError(f"Docker engine not available ({exc.__class__.__name__}); "
                       "install docker.io and start dockerd (make docker)") from exc
    return engine


def network_name(env: str) -> str:
    return f"dbtls-{env}"


def _password(length: int = 20) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_secrets(nodes: list[topology.Node]) -> dict[str, str]:
    """The environment's credentials, as the platform would have generated them."""
    master_id = nodes[0].node_id
    return {
        "WEBADMIN_PASSWORD": _password(),
        "REPL_PASSWORD": _password(),
        "PGPOOL_PASSWORD": _password(),
        "MYSQL_ROOT_PASSWORD": _password(),
        "APP_USER": f"user-{master_id}",
        "APP_PASSWORD": _password(),
        "REPLICA_USER": f"repl-{master_id}",
        "REPLICA_PSWD": _password(),
        "PROXYSQL_ADMIN_USER": "admin",
        "PROXYSQL_ADMIN_PASSWORD": "admin",
    }


def _env_file(values: dict[str, str]) -> bytes:
    return "".join(f"{k}='{v}'\n" for k, v in sorted(values.items())).encode()


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class NodeStatus:
    name: str
    role: str
    group: str
    hostname: str
    ip: str
    container_id: str
    node_id: int
    is_master: bool
    service_up: bool
    env: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _containers(engine: docker.DockerClient, env: str | None) -> list[Container]:
    filters = {"label": [LABEL] + ([f"dbtls.env={env}"] if env else [])}
    return engine.containers.list(all=True, filters=filters)


def service_up(container: Container) -> bool:
    """What ``jem service status`` says inside the node (the client container has no service)."""
    if container.status != "running":
        return False
    # Role set-up starts and stops the server itself; only after it is done does "up" mean ready.
    result = container.exec_run(["bash", "-c", "test -e /var/lib/dbtls-sim/first-boot.done "
                                 "&& /usr/local/sbin/role-service status"])
    return result.exit_code == 0


def status(engine: docker.DockerClient, env: str | None = None) -> list[NodeStatus]:
    rows = []
    for c in _containers(engine, env):
        try:
            rows.append(_status_row(c))
        except docker.errors.NotFound:
            continue  # removed while we looked (another ``down`` running at the same time)
    return sorted(rows, key=lambda r: (r.env, r.node_id))


def _status_row(c: Container) -> NodeStatus:
    labels = c.labels
    nets = c.attrs.get("NetworkSettings", {}).get("Networks", {})
    ip = next((n.get("IPAddress", "") for n in nets.values()), "")
    return NodeStatus(
        name=c.name, role=labels.get("dbtls.role", ""), group=labels.get("dbtls.group", ""),
        hostname=labels.get("dbtls.hostname", ""), ip=ip, container_id=c.short_id,
        node_id=int(labels.get("dbtls.node-id", "0")),
        is_master=labels.get("dbtls.master") == "true",
        service_up=service_up(c), env=labels.get("dbtls.env", ""),
    )


def read_secrets(engine: docker.DockerClient, env: str) -> dict[str, str]:
    """Credentials of a running environment, read back from one of its nodes."""
    for c in _containers(engine, env):
        if c.labels.get("dbtls.role") == "client" or c.status != "running":
            continue
        out = c.exec_run(["cat", "/etc/dbtls-sim/secrets.env"])
        if out.exit_code == 0:
            pairs = (line.split("=", 1) for line in out.output.decode().splitlines() if "=" in line)
            return {k: v.strip("'") for k, v in pairs}
    raise SimError(f"environment {env!r} has no running node to read its credentials from")


def _create(engine: docker.DockerClient, node: topology.Node, release: str, image: str,
            creds: dict[str, str], topo: str) -> Container:
    labels = {
        LABEL: "1", "dbtls.env": node.env, "dbtls.topology": topo, "dbtls.release": release,
        "dbtls.role": node.spec.role, "dbtls.group": node.spec.group,
        "dbtls.node-id": str(node.node_id), "dbtls.master": "true" if node.is_master else "false",
        "dbtls.hostname": node.hostname,
    }
    container = engine.containers.create(
        image, name=node.container_name, hostname=node.hostname, labels=labels, init=True,
        detach=True, network=network_name(node.env),
    )
    net = engine.networks.get(network_name(node.env))
    net.disconnect(container)
    net.connect(container, aliases=[node.short_name, node.hostname])
    files = {
        "dbtls-sim/node.env": (_env_file(node.env_vars), 0o644),
        "dbtls-sim/secrets.env": (_env_file(creds), 0o600),
    }
    container.put_archive("/etc", _tar(files))
    return container


def _client_node(env: str) -> topology.Node:
    spec = topology.NodeSpec("client", "client", "client", 3)
    return topology.Node(spec=spec, node_id=100, env=env, is_master=True,
                         env_vars={"COMPUTE_TYPE": "client", "NODE_ID": "100", "NODE_GROUP": "client",
                                   "MASTER_ID": "100", "MASTER_HOST": "client", "ENV_NAME": env})


def wait_until(predicate: Callable[[], bool], deadline_s: float, what: str,
               on_fail: Callable[[], str] | None = None) -> None:
    """Poll ``predicate`` until true; raise a SimError naming ``what`` when the deadline passes."""
    end = time.monotonic() + deadline_s
    delay = 0.2
    while True:
        if predicate():
            return
        if time.monotonic() > end:
            detail = on_fail() if on_fail else ""
            raise SimError(f"timed out after {deadline_s:.0f}s waiting for {what}{detail}")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def _boot_log(container: Container) -> str:
    container.reload()
    logs = container.logs(tail=15).decode(errors="replace").strip()
    setup = ""
    if container.status == "running":
        out = container.exec_run(["tail", "-n", "15", "/var/log/dbtls-sim-setup.log"])
        setup = out.output.decode(errors="replace").strip()
    return f" ({container.name} is {container.status}): {logs} {setup}".rstrip()


def _wait_service(container: Container) -> None:
    def up() -> bool:
        container.reload()
        if container.status in ("exited", "dead"):
            raise SimError(f"{container.name} stopped during boot{_boot_log(container)}")
        return service_up(container)

    wait_until(up, SERVICE_DEADLINE_S, f"the service on {container.name}", lambda: _boot_log(container))


def up(topo: str, env: str | None = None, release: str = images.DEFAULT_RELEASE,
       standbys: int = 1, progress: Progress = images._stderr) -> list[NodeStatus]:
    """Create (or resume) an environment and return once every service accepts connections."""
    env = env or topo
    nodes = topology.plan(topo, env, standbys=standbys)
    engine = client()
    existing = {c.name: c for c in _containers(engine, env)}
    other = {c.labels.get("dbtls.topology") for c in existing.values()} - {topo}
    if other:
        raise SimError(f"environment {env!r} already runs topology {other.pop()!r}; "
                       f"use another --env or 'dbtls sim down --env {env}'")
    roles = [n.spec.role for n in nodes] + ["client"]
    tags = images.ensure_images(engine, release, roles, progress)
    try:
        engine.networks.get(network_name(env))
    except docker.errors.NotFound:
        engine.networks.create(network_name(env), driver="bridge", labels={LABEL: "1", "dbtls.env": env})
    creds = read_secrets(engine, env) if existing else new_secrets(nodes)
    all_nodes = nodes + [_client_node(env)]
    for tier in topology.start_tiers(all_nodes):
        started = []
        for node in tier:
            container = existing.get(node.container_name)
            if container is None:
                progress(f"creating {node.container_name} ({node.spec.role}, {node.hostname})")
                container = _create(engine, node, release, tags[node.spec.role], creds, topo)
            container.reload()
            if container.status != "running":
                container.start()
            started.append(container)
        with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
            list(pool.map(_wait_service, started))
    checks = _cluster_checks(engine, topo, env, standbys)
    for what, check in checks:
        progress(f"waiting for {what}")
        wait_until(check, SERVICE_DEADLINE_S, what)
    return status(engine, env)


def _exec_ok(engine: docker.DockerClient, name: str, cmd: list[str]) -> bool:
    result = engine.containers.get(name).exec_run(cmd)
    return result.exit_code == 0 and bool(result.output.strip())


def _cluster_checks(engine: docker.DockerClient, topo: str, env: str,
                    standbys: int = 1) -> list[tuple[str, Callable[[], bool]]]:
    """Topology-wide readiness: replication streaming, the proxy answering."""
    nodes = topology.plan(topo, env, standbys=standbys)
    primary = nodes[0].container_name
    checks: list[tuple[str, Callable[[], bool]]] = []
    if topo == "pg-cluster" and standbys > 0:  # a primary alone (plus Pgpool) has nothing to stream
        checks.append(("the standby to stream from the primary", lambda: _exec_ok(engine, primary, [
            "runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-qAtc",
            "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'"])))
    if topo == "mariadb-cluster" and standbys > 0:
        replica = nodes[1].container_name
        checks.append(("the replica to run", lambda: _exec_ok(engine, replica, [
            "bash", "-c", "mariadb -uroot -e 'SHOW SLAVE STATUS\\G' | grep -q 'Slave_SQL_Running: Yes' "
                          "&& mariadb -uroot -e 'SHOW SLAVE STATUS\\G' | grep -c 'Slave_IO_Running: Yes'"])))
    return checks


def resolve(engine: docker.DockerClient, node: str, env: str | None = None) -> Container:
    """Find a container by name, node id, ``node<ID>``, hostname or role (first match)."""
    candidates = _containers(engine, env)
    for c in candidates:
        labels = c.labels
        keys = {c.name, labels.get("dbtls.node-id"), f"node{labels.get('dbtls.node-id')}",
                labels.get("dbtls.hostname"), labels.get("dbtls.role")}
        if node in keys:
            return c
    raise SimError(f"no simulated node {node!r}" + (f" in environment {env!r}" if env else ""))


def exec_interactive(container: Container, command: list[str], user: str | None = None) -> int:
    """Run a command in a node with this terminal's stdin/stdout (``docker exec -i``)."""
    argv = ["docker", "exec", "-i"] + (["-u", user] if user else []) + [container.name] + command
    return subprocess.call(argv)


def down(env: str | None = None, everything: bool = False, progress: Progress = images._stderr) -> int:
    """Remove an environment's containers (with their volumes) and network; return the count."""
    if env is None and not everything:
        raise SimError("name an environment with --env, or pass --all")
    engine = client()
    count = 0
    for c in _containers(engine, None if everything else env):
        progress(f"removing {c.name}")
        c.remove(force=True, v=True)
        count += 1
    filters = {"label": [LABEL] + ([] if everything else [f"dbtls.env={env}"])}
    for net in engine.networks.list(filters=filters):
        progress(f"removing network {net.name}")
        net.remove()
    return count
