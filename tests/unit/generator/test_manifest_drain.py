"""The manifest drains each MariaDB node in ProxySQL around its restart: the order of the cmds, the
failure path (ONLINE still runs), nodes that will not restart, PostgreSQL untouched; and the
deferred-step scripts run by a real bash."""

from __future__ import annotations

import subprocess

from dbtls.addon import shell
from dbtls.addon.manifest import build_manifest
from dbtls.jps import CmdResult, Environment, Interpreter, Node, User
from dbtls.jps.cmdwrap import unwrap


def mysql_env() -> Environment:
    return Environment("env-9", "env-9.example.org", [
        Node(11, "sqldb", "mariadb-dockerized", True, "10.0.0.11"),
        Node(12, "sqldb", "mariadb-dockerized", False, "10.0.0.12"),
        Node(13, "sqldb", "mariadb-dockerized", False, "10.0.0.13"),
        Node(21, "proxy", "proxysql", True, "10.0.0.21"),
    ])


def pg_env() -> Environment:
    return Environment("env-8", "env-8.example.org", [
        Node(11, "sqldb", "postgresql", True, "10.0.0.11"),
        Node(12, "sqldb", "postgresql", False, "10.0.0.12"),
        Node(21, "pgpool", "pgpool2", True, "10.0.0.21"),
    ])


def kind(script: str) -> str:
    for marker, name in (("restart-expected", "check"), ("--state offline-soft", "offline"),
                         ("--state online --all", "recover"), ("--state online", "online"),
                         ("result of the previous step", "result"), ("secrets recipient", "recipient"),
                         ("secrets seal", "seal"), ("set -- enable --role", "enable"), ("$A disable --role", "disable"),
                         ("dbtls-agent.pyz", "fetch")):
        if marker in script:
            return name
    return "other"


class Runner:
    """Answers like the nodes would; ``fail`` = node whose deferred step failed; ``no_restart`` = nodes
    whose restart-expected says no."""

    def __init__(self, fail: int | None = None, no_restart: tuple[int, ...] = ()) -> None:
        self.calls: list[tuple[int, str, str]] = []
        self.fail, self.no_restart = fail, no_restart

    def run(self, node: Node, command_b64: str, user: str) -> CmdResult:
        script, _ = unwrap(command_b64)
        what = kind(script)
        self.calls.append((node.id, what, script))
        if what == "check":
            return CmdResult(0, "no" if node.id in self.no_restart else "yes")
        if what == "result" and node.id == self.fail:
            return CmdResult(2, "", "dbtls-agent: error: the server did not start; restored\n")
        return CmdResult(0, "ok\n")

    def trace(self) -> list[tuple[int, str]]:
        return [(i, w) for i, w, _ in self.calls if w not in ("fetch", "recipient", "seal", "other")]


def run(env: Environment, action: str, runner: Runner):
    interp = Interpreter(env, runner, user=User(), sleep=lambda s: None, seed=1)
    addon = interp.load(build_manifest("0" * 64), node_group="sqldb")
    return interp.call(addon, action)


def drained(node: int, step: str = "enable") -> list[tuple[int, str]]:
    return [(node, "check"), (21, "offline"), (node, step), (21, "online"), (node, "result")]


def test_replicas_then_primary_each_drained_around_its_restart():
    runner = Runner()
    result = run(mysql_env(), "serversOffer", runner)
    assert result.ok, result.error
    assert runner.trace() == [(21, "recover"), *drained(12), *drained(13), *drained(11),
                              (12, "enable"), (13, "enable")]
    offline = next(s for i, w, s in runner.calls if w == "offline")
    assert "for a in node12 node12-env-9.example.org 10.0.0.12; do" in offline
    assert "--drain-timeout 60" in offline
    stages = [s.split("--stage '", 1)[1][:3] for i, w, s in runner.calls if w == "enable"]
    assert stages == ["off", "off", "off", "use", "use"]
    primary = [s for i, w, s in runner.calls if i == 11 and w == "enable"]
    assert "--passwords-sealed" in primary[0] and "DBTLS_STEP" in primary[0]


def test_a_failed_restart_still_puts_the_backend_online_then_stops():
    runner = Runner(fail=12)
    result = run(mysql_env(), "serversOffer", runner)
    assert not result.ok and "the server did not start" in (result.error or "")
    assert runner.trace() == [(21, "recover"), *drained(12)]


def test_no_drain_when_the_node_will_not_restart():
    runner = Runner(no_restart=(11, 12, 13))
    assert run(mysql_env(), "serversOffer", runner).ok
    assert [w for _i, w in runner.trace()].count("offline") == 0
    assert runner.trace()[:4] == [(21, "recover"), (12, "check"), (12, "enable"), (12, "result")]


def test_uninstall_drains_every_disable_and_removes_the_proxy_agent_last():
    runner = Runner()
    assert run(mysql_env(), "disableLayer", runner).ok
    assert runner.trace() == [(21, "disable"), *drained(12, "disable"), *drained(13, "disable"),
                              *drained(11, "disable"), (21, "disable")]
    proxy = [s for i, w, s in runner.calls if i == 21 and w == "disable"]
    assert "--remove-certs" not in proxy[0] and "--remove-certs" in proxy[1]
    ca = [s for i, w, s in runner.calls if i == 11 and w == "disable"][0]
    assert f"rm -rf {shell.CERT_DIR}/ca" in ca


def test_postgresql_paths_have_no_drain():
    runner = Runner()
    assert run(pg_env(), "serversOffer", runner).ok
    assert [(i, w) for i, w in runner.trace()] == [(11, "enable"), (12, "enable"), (12, "enable")]
    assert not [s for _i, _w, s in runner.calls if "proxysql-backend" in s or "DBTLS_STEP" in s]


def bash(script: str, step_dir: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash"], input=script.replace(shell.STEP_DIR, step_dir), capture_output=True, text=True,
                          timeout=60, check=False)


def test_deferred_step_keeps_exit_code_and_stderr_for_step_result(tmp_path):
    step_dir = str(tmp_path / "step")
    first = bash(shell.deferred("set -e\necho done-out\necho 'why it failed' >&2\nexit 3"), step_dir)
    assert (first.returncode, first.stdout, first.stderr) == (0, "done-out\n", "why it failed\n")
    assert not (tmp_path / "step" / "script").exists()
    second = bash(shell.step_result(), step_dir)
    assert (second.returncode, second.stderr) == (3, "why it failed\n")
    assert not (tmp_path / "step").exists()
    assert bash(shell.deferred("true"), step_dir).returncode == 0
    assert bash(shell.step_result(), step_dir).returncode == 0
    missing = bash(shell.step_result(), step_dir)
    assert missing.returncode == 1 and "missing" in missing.stderr
    # An empty exit-code file (a write that was cut short) is a failure, never a bare ``exit`` (0).
    assert bash(shell.deferred("true"), step_dir).returncode == 0
    (tmp_path / "step" / "rc").write_text("")
    empty = bash(shell.step_result(), step_dir)
    assert empty.returncode == 1 and "missing" in empty.stderr
