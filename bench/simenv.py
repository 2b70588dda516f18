"""The simulated platform as the benchmarks use it: environments, the add-on, commands in nodes.

Everything goes through the project's own entry points: ``dbtls.sim.cluster`` brings environments up
and down, ``dbtls.sim.addon.Session`` installs, presses and uninstalls the built ``manifest.jps``
(exactly what ``dbtls sim install|press|uninstall`` run).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dbtls.sim import addon, cluster, platform

Log = Callable[[str], None]


class BenchError(Exception):
    """A benchmark step failed in a way that makes its figures meaningless."""


@dataclass
class Env:
    """A running environment: its name, topology and the nodes ``dbtls sim status`` lists."""

    name: str
    topology: str
    nodes: list[cluster.NodeStatus]

    def first(self, role: str) -> cluster.NodeStatus:
        return next(n for n in self.nodes if n.role == role and (n.is_master or role != "postgres"))

    def all(self, role: str) -> list[cluster.NodeStatus]:
        return [n for n in self.nodes if n.role == role]

    @property
    def client(self) -> str:
        return self.first("client").name


def up(topology: str, name: str, release: str, standbys: int = 1, log: Log = print) -> Env:
    log(f"[{name}] dbtls sim up {topology} --standbys {standbys} --release {release}")
    cluster.up(topology, env=name, release=release, standbys=standbys, progress=lambda m: None)
    return Env(name, topology, cluster.status(cluster.client(), name))


def down(name: str, log: Log = print) -> None:
    log(f"[{name}] dbtls sim down --env {name}")
    cluster.down(name, progress=lambda m: None)


@contextmanager
def envs_removed(names: list[str], log: Log = print) -> Iterator[None]:
    """Remove the named environments on the way out, whatever happened."""
    try:
        yield
    finally:
        for name in names:
            try:
                down(name, log)
            except Exception as exc:  # best effort: report, never hide the real error
                log(f"[{name}] could not remove: {exc}")


def sh(container: str, script: str, *, check: bool = True, timeout: float = 900,
       stdin: bytes | None = None) -> str:
    """Run a bash script in a container (script via argv: it never holds a secret)."""
    proc = subprocess.run(["docker", "exec", "-i", container, "bash", "-c", script], input=stdin or b"",
                          capture_output=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise BenchError(f"{container}: {script[:80]!r} exited {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace').strip()[-600:]}")
    return proc.stdout.decode(errors="replace")


def copy_in(container: str, local: str, remote: str) -> None:
    subprocess.run(["docker", "cp", local, f"{container}:{remote}"], check=True, capture_output=True)


def wait_streaming(env: Env, standbys: int, timeout: float = 300) -> None:
    """Until the primary sees ``standbys`` streaming standbys (install timing starts from a settled cluster)."""
    primary = env.first("postgres").name
    query = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
    end = time.monotonic() + timeout
    while True:
        out = sh(primary, f"runuser -u postgres -- psql -h /var/run/postgresql -qAtc \"{query}\"", check=False)
        if out.strip() == str(standbys):
            return
        if time.monotonic() > end:
            raise BenchError(f"{env.name}: {out.strip() or 0} of {standbys} standbys streaming after {timeout}s")
        time.sleep(0.5)


@dataclass
class OpResult:
    ok: bool
    seconds: float
    error: str = ""


def _outcome(results: list[tuple[str, Any]] | Any) -> str:
    items = results if isinstance(results, list) else [("add-on", results)]
    for layer, res in items:
        if res is not None and (not res.ok or (res.stopped and res.message_type not in ("success", "info"))):
            return f"{layer}: {res.error or res.message}"
    return ""


def run_op(env: str, op: str, settings: dict[str, Any] | None = None) -> OpResult:
    """One add-on operation through the manifest: ``install``, ``reissue-<scope>`` or ``uninstall``."""
    engine = cluster.client()
    start = time.perf_counter()
    with platform.serve(addon.repo_root(), platform.gateway(engine, env)) as base_url:
        session = addon.Session(env, base_url)
        if op == "install":
            results: Any = session.install(dict(settings or {}))
        elif op.startswith("reissue-"):
            results = session.press("Re-issue certificates", {"scope": op.split("-", 1)[1]})
        elif op == "uninstall":
            results = session.uninstall()
        else:
            raise ValueError(op)
    seconds = time.perf_counter() - start
    error = _outcome(results)
    return OpResult(not error, seconds, error)
