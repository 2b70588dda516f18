"""Fixtures for the docker tests: simulated environments shared across a session.

Every test in this folder is marked ``docker``. Without an engine they skip, except under
``DBTLS_STRICT=1`` (CI), where they fail: CI can never pass without them having run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from harness import RELEASES, Env, sim_env

from dbtls.sim import cluster
from dbtls.sim.errors import SimError
from support import require


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


@pytest.fixture(scope="session", params=RELEASES)
def pg_cluster(request, engine) -> Iterator[Env]:
    yield from sim_env("pg-cluster", request.param, "t")


@pytest.fixture(scope="session", params=RELEASES)
def mariadb_cluster(request, engine) -> Iterator[Env]:
    yield from sim_env("mariadb-cluster", request.param, "t")


@pytest.fixture(scope="module", params=RELEASES)
def pg_tls_cluster(request, engine) -> Iterator[Env]:
    """A pg-cluster of its own for the enable/disable tests (they change every node's config)."""
    yield from sim_env("pg-cluster", request.param, "own")


@pytest.fixture(scope="module", params=RELEASES)
def pg_single(request, engine) -> Iterator[Env]:
    """A standalone PostgreSQL node (topology ``pg``) of its own."""
    yield from sim_env("pg", request.param, "own")
