"""Fixtures for the docker tests: simulated environments shared across a session.

Every test in this folder is marked ``docker``. Without an engine they skip, except under
``DBTLS_STRICT=1`` (CI), where they fail: CI can never pass without them having run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dbtls.sim import cluster
from dbtls.sim.errors import SimError
from support import env_name, require

RELEASES = os.environ.get("DBTLS_RELEASES", "bookworm").split()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/docker/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.docker)


def _engine_available() -> tuple[bool, str]:
    try:
        cluster.client()
    except SimError as exc:
        return False, str(exc)
    return True, ""


@pytest.fixture(scope="session")
def engine():
    ok, why = _engine_available()
    require(ok, why or "Docker engine not available")
    return cluster.client()


class Env:
    """A running simulated environment and helpers to talk to its nodes."""

    def __init__(self, engine, name: str, topology: str, release: str):
        self.engine, self.name, self.topology, self.release = engine, name, topology, release
        self.nodes = cluster.status(engine, name)
        self.secrets = cluster.read_secrets(engine, name)

    def node(self, role: str, index: int = 0) -> cluster.NodeStatus:
        return [n for n in self.nodes if n.role == role][index]

    def exec(self, role_or_name: str, cmd: list[str], env: dict[str, str] | None = None,
             user: str | None = None, stdin: bytes | None = None) -> tuple[int, str]:
        """Run ``cmd`` in a node (by role or container name); return (exit code, stdout+stderr)."""
        target = next((n for n in self.nodes if role_or_name in (n.name, n.role)), None)
        assert target is not None, f"no node {role_or_name} in {self.name}"
        container = self.engine.containers.get(target.name)
        if stdin is None:
            res = container.exec_run(cmd, environment=env or {}, user=user or "")
            return res.exit_code, res.output.decode(errors="replace")
        import subprocess
        argv = ["docker", "exec", "-i"] + sum((["-e", f"{k}={v}"] for k, v in (env or {}).items()), [])
        argv += (["-u", user] if user else []) + [target.name] + cmd
        proc = subprocess.run(argv, input=stdin, capture_output=True, check=False)
        return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


def _env_fixture(engine, topology: str, release: str, prefix: str = "t") -> Iterator[Env]:
    """An environment ``<prefix>-<topology>-<release>`` for the session or a module. Tests that
    change the nodes' TLS state pass their own prefix so they never share one with other modules."""
    name = env_name(f"{prefix}-{topology}-{release}")
    cluster.up(topology, env=name, release=release, progress=lambda m: None)
    try:
        yield Env(engine, name, topology, release)
    finally:
        if os.environ.get("DBTLS_KEEP_SIM") != "1":
            cluster.down(name, progress=lambda m: None)


@pytest.fixture(scope="session", params=RELEASES)
def pg_cluster(request, engine) -> Iterator[Env]:
    yield from _env_fixture(engine, "pg-cluster", request.param)


@pytest.fixture(scope="session", params=RELEASES)
def mariadb_cluster(request, engine) -> Iterator[Env]:
    yield from _env_fixture(engine, "mariadb-cluster", request.param)


@pytest.fixture(scope="module", params=RELEASES)
def pg_tls_cluster(request, engine) -> Iterator[Env]:
    """A pg-cluster of its own for the enable/disable tests (they change every node's config)."""
    yield from _env_fixture(engine, "pg-cluster", request.param, "i4")


@pytest.fixture(scope="module", params=RELEASES)
def pg_single(request, engine) -> Iterator[Env]:
    """A standalone PostgreSQL node (topology ``pg``) of its own."""
    yield from _env_fixture(engine, "pg", request.param, "i4")
