"""``dbtls sim ... --env NAME`` for an environment that does not exist: one line, exit 1."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dbtls.cli import app
from dbtls.sim import cluster


class _Containers:
    def list(self, **kw: object) -> list[object]:
        return []


class FakeEngine:
    """An engine with no simulated containers at all."""

    containers = _Containers()


@pytest.mark.parametrize("args", [
    ["install"], ["press", "Certificate status"], ["uninstall"], ["status"], ["scale-out", "sqldb"],
])
def test_unknown_environment_is_one_line(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.setattr(cluster, "client", lambda: FakeEngine())
    result = CliRunner().invoke(app, ["sim", *args, "--env", "nope"])
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == ["dbtls: no simulated environment 'nope'; start one with 'dbtls sim up pg-cluster "
                     "--env nope' (or mariadb-cluster, pg, mariadb)"]
    assert result.exception is None or isinstance(result.exception, SystemExit)
