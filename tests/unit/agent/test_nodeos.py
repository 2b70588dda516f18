"""nodeos: one runner (run_status) and one service(action) for every role."""

import pytest

from dbtls_agent import nodeos
from dbtls_agent.errors import AgentError


def _fake(monkeypatch, jem, answers):
    calls = []

    def run_status(argv, timeout=60.0, stdin=None):
        calls.append((list(argv), timeout))
        return answers.get(tuple(argv), (1, "", "no such unit\n"))
    monkeypatch.setattr(nodeos, "_jem", lambda: jem)
    monkeypatch.setattr(nodeos, "run_status", run_status)
    return calls


def test_service_runs_jem_and_returns_its_output(monkeypatch):
    calls = _fake(monkeypatch, "/usr/local/sbin/jem", {("/usr/local/sbin/jem", "service", "reload"): (0, "ok\n", "")})
    assert nodeos.service("reload") == "ok\n"
    assert calls == [(["/usr/local/sbin/jem", "service", "reload"], nodeos.SERVICE_TIMEOUT_S)]


def test_a_failed_action_is_one_line_with_the_last_line_of_its_output(monkeypatch):
    _fake(monkeypatch, "/usr/local/sbin/jem", {("/usr/local/sbin/jem", "service", "restart"): (
        3, "starting\n", "first\nJob for mariadb.service failed\n")})
    with pytest.raises(AgentError, match=r"^jem service restart failed: starting$"):
        nodeos.service("restart")


def test_without_jem_the_units_are_tried_in_turn_or_it_says_so(monkeypatch):
    calls = _fake(monkeypatch, None, {("systemctl", "restart", "mysql"): (0, "", "")})
    assert nodeos.service("restart", timeout=240.0, units=("mariadb", "mysql")) == ""
    assert [c[0] for c in calls] == [["systemctl", "restart", "mariadb"], ["systemctl", "restart", "mysql"]]
    assert {c[1] for c in calls} == {240.0}
    with pytest.raises(AgentError, match="^jem is not available on this node to reload the service$"):
        nodeos.service("reload")
    with pytest.raises(AgentError, match=r"^systemctl stop mysql failed: no such unit$"):
        nodeos.service("stop", units=("mariadb", "mysql"))
