"""The JPS interpreter against a fake NodeRunner: no docker, no nodes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from jps_fakes import FakeRunner, interp, make_env, manifest

from dbtls.jps import (
    CmdResult,
    ConditionError,
    Interpreter,
    ManifestError,
    Node,
    NodeRunner,
    UnsupportedFeature,
)
from dbtls.jps.cmdwrap import engine_payload
from dbtls.jps.runners import ShellRunner, local_argv, same_user


def test_fake_runner_satisfies_protocol() -> None:
    assert isinstance(FakeRunner(), NodeRunner)


def test_cmd_on_a_layer_runs_all_nodes_at_once() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def reply(node: Node, script: str) -> CmdResult:
        barrier.wait()  # breaks (BrokenBarrierError) unless all three run concurrently
        return CmdResult(0, "ok")

    _, result = interp(FakeRunner(reply)).install(manifest("  - cmd[sqldb]: echo hi\n    user: root\n"))
    assert result.ok
    assert sorted(s.node_ids[0] for s in result.cmd_steps()) == [11, 12, 13]


def test_sync_true_runs_one_node_at_a_time() -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def reply(node: Node, script: str) -> CmdResult:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        threading.Event().wait(0.01)
        with lock:
            active[0] -= 1
        return CmdResult(0)

    _, result = interp(FakeRunner(reply)).install(manifest("  - cmd[sqldb]: echo\n    sync: true\n    user: root\n"))
    assert result.ok and peak[0] == 1


def test_nonzero_exit_stops_the_handler() -> None:
    runner = FakeRunner(lambda n, s: CmdResult(3, "", "boom\n") if n.id == 12 else CmdResult(0, "fine"))
    _, result = interp(runner).install(manifest("  - cmd[sqldb]: step one\n    user: root\n"
                                                "  - cmd[sqldb]: step two\n    user: root\n"))
    assert not result.ok
    assert result.error == "cmd on node 12 exited with 3: boom"
    assert [c[1] for c in runner.calls].count("step one") == 3  # the failing cmd still ran everywhere
    assert "step two" not in [c[1] for c in runner.calls]
    assert [s.exit_code for s in result.cmd_steps()] == [0, 3, 0]


def test_cmd_reaches_the_runner_wrapped_like_the_engine() -> None:
    runner = FakeRunner()
    body = ("  - cmd[21]:\n      - '  set -e'\n      - echo two\n    user: root\n    sayYes: false\n"
            "  - cmd[21]: |\n      \n      echo three\n    user: postgres\n")
    interp(runner).install(manifest(body))
    # a list is joined with ';' and the text trimmed; sayYes false drops the `yes |`
    assert runner.calls == [(21, "set -e;echo two", "root", False), (21, "echo three", "postgres", True)]
    assert runner.payloads[0] == engine_payload(["  set -e", "echo two"], say_yes=False)
    assert runner.payloads[1] == engine_payload("\necho three\n")  # base64 of "yes | (echo three)"


def test_cmd_without_user_is_not_simulated() -> None:
    with pytest.raises(UnsupportedFeature, match=r"onInstall\[0\]: cmd without 'user:'"):
        interp().install(manifest("  - cmd[11]: id\n"))


def test_placeholders() -> None:
    runner = FakeRunner()
    body = ("  - cmd[${nodes.sqldb.master.id}]: >-\n"
            "      ${env.envName} ${env.domain} ${nodes.sqldb.join(id,)} ${nodes.pgpool2.first.address}\n"
            "      ${settings.extra} ${globals.agent} ${user.email} ${targetNodes.nodeGroup}\n"
            "      ${nodes.sqldb.length} ${settings.missing:dflt} ${fn.password(16)}\n"
            "    user: root\n")
    extra = ("settings:\n  fields:\n    - {type: string, name: extra, caption: E, default: x}\n"
             "globals:\n  agent: /usr/local/sbin/dbtls-agent\n")
    _, result = interp(runner).install(manifest(body, extra), node_group="sqldb",
                                       settings={"extra": "db.example.org"})
    assert result.ok, result.error
    (node_id, script, _, _), = runner.calls
    words = script.split()
    assert node_id == 11
    assert words[:-1] == ["env-7", "env-7.example.org", "11,12,13", "10.0.0.21", "db.example.org",
                          "/usr/local/sbin/dbtls-agent", "me@example.org", "sqldb", "3", "dflt"]
    assert len(words[-1]) == 16 and words[-1].isalnum()


def test_unresolved_placeholders_stay_literal_and_are_recorded() -> None:
    runner = FakeRunner()
    _, result = interp(runner).install(manifest(
        "  - cmd[11]: echo ${MASTER_ID} ${globals.nope} ${nodes.sqldb.master.hostname}\n    user: root\n"
        "  - log: ${globals.nope} ${this.x}\n"))
    assert runner.calls[0][1] == "echo ${MASTER_ID} ${globals.nope} ${nodes.sqldb.master.hostname}"
    step = result.cmd_steps()[0]
    assert step.unresolved == ("${MASTER_ID}", "${globals.nope}", "${nodes.sqldb.master.hostname}")
    assert result.log == ["${globals.nope} ${this.x}"]


def test_unresolved_placeholder_in_a_condition_is_an_error() -> None:
    with pytest.raises(ConditionError, match=r"onInstall\[0\].if \('\$\{globals.x\}' == ''\): unresolved"):
        interp().install(manifest("  - if ('${globals.x}' == ''):\n      - log: x\n"))
    with pytest.raises(ConditionError, match="unresolved"):
        interp().install(manifest("  - assert: \"'${settings.x}' == ''\"\n"))


def test_response_out_chains_between_cmds_and_keeps_the_raw_output() -> None:
    runner = FakeRunner(lambda n, s: CmdResult(0, f"csr-of-{n.id}\n") if "csr" in s else CmdResult(0, "x"))
    body = ("  - cmd[12]: agent csr\n    user: root\n"
            "  - cmd[11]: agent sign '${response.out}'\n    user: root\n"
            "  - cmd[sqldb]: agent csr\n    user: root\n"
            "  - log: ${response.responses[1].out}|${response.responses[2].nodeid}|${response.out}\n")
    _, result = interp(runner).install(manifest(body))
    assert runner.scripts(11)[0] == "agent sign 'csr-of-12\n'"  # stdout as the node printed it
    assert result.log == ["csr-of-12\n|13|${response.out}"]  # no `out` after a multi-node cmd


def test_foreach_over_layer_list_and_nested_index() -> None:
    body = ("  - forEach(n:nodes.sqldb):\n"
            "      - forEach(nodes.pgpool):\n"
            "          - log: ${@n.id}/${@@n}/${@i.id}/${@}\n")
    _, result = interp().install(manifest(body))
    assert result.log == ["11/0/21/0", "12/1/21/0", "13/2/21/0"]


def test_if_elif_else_with_platform_condition_syntax() -> None:
    body = ("  - forEach(nodes.sqldb):\n"
            "      - if (${@i.ismaster} && '${targetNodes.nodeGroup}'.indexOf('sql') > -1):\n"
            "          - log: primary ${@i.id}\n"
            "      - elif (/^10\\.0\\.0\\.12$/.test('${@i.address}') || nodes.proxy):\n"
            "          - log: twelve\n"
            "      - else:\n"
            "          - log: other ${@i.id}\n"
            "  - if (nodes.pgpool && nodes.pgpool.length == 1 && settings.mode === 'x'):\n"
            "      - log: pgpool\n")
    _, result = interp().install(manifest(body), node_group="sqldb", settings={"mode": "x"})
    assert result.log == ["primary 11", "twelve", "other 13", "pgpool"]


def test_condition_outside_the_subset_raises() -> None:
    with pytest.raises(ConditionError):
        interp().install(manifest("  - if (Math.max(1, 2) > 1):\n      - log: x\n"))


def test_custom_actions_with_map_string_and_list_arguments() -> None:
    body = ("  - sign: {nodeId: 12, role: replica}\n"
            "  - hello: sqldb\n"
            "  - hello: [a, b]\n")
    extra = ("actions:\n"
             "  sign:\n    - cmd[${this.nodeId}]: agent csr --role ${this.role}\n      user: root\n"
             "  hello:\n    - log: hi ${this}\n")
    runner = FakeRunner()
    _, result = interp(runner).install(manifest(body, extra))
    assert runner.calls[0][:2] == (12, "agent csr --role replica")
    assert result.log == ["hi sqldb", "hi a", "hi b"]


def test_unknown_and_unsupported_actions_raise() -> None:
    with pytest.raises(ManifestError, match="unknown action"):
        interp().install(manifest("  - nosuch: 1\n"))
    with pytest.raises(UnsupportedFeature, match="api"):
        interp().install(manifest("  - api [sqldb]: environment.control.RestartNodes\n"))
    with pytest.raises(UnsupportedFeature, match="addons"):
        interp().install(manifest("  - log: x\n", "addons: []\n"))
    with pytest.raises(ManifestError, match="unknown parameters"):
        interp().install(manifest("  - cmd[sqldb]: id\n    usr: root\n"))


def test_stop_event_ends_the_handler() -> None:
    _, result = interp().install(manifest(
        "  - stopEvent: {type: warning, message: 'wait ${env.envName}'}\n  - log: never\n"))
    assert result.ok and result.stopped and result.message == "wait env-7" and result.log == []


def test_setglobals_visible_in_actions_and_globals_recomputed_per_run() -> None:
    extra = ("targetNodes: {nodeGroup: [sqldb]}\n"
             "globals:\n  pw: ${fn.password}\n"
             "actions:\n  show:\n    - log: ${globals.x} ${globals.pw}\n"
             "buttons:\n  - {caption: Show, action: show}\n")
    it = interp()
    addon, result = it.install(manifest("  - setGlobals: {x: '${env.envName}'}\n  - show\n", extra))
    assert result.log[0].startswith("env-7 ")
    later = it.click(addon, "Show")  # setGlobals does not survive into a later run
    assert later.log[0].startswith("${globals.x} ")


def test_nested_install_per_layer_with_relative_jps(tmp_path: Path) -> None:
    (tmp_path / "logic.jps").write_text(
        "type: update\nid: logic\nname: Logic\n"
        "onInstall:\n  - cmd[${targetNodes.nodeGroup}]: enable ${settings.nodeGroups}\n    user: root\n"
        "onAfterServiceScaleOut[${targetNodes.nodeGroup}]:\n"
        "  - forEach(n:event.response.nodes):\n      - cmd[${@n.id}]: enable-new ${event.params.count}\n"
        "        user: root\n"
        "success: on ${targetNodes.nodeGroup}\n")
    (tmp_path / "manifest.jps").write_text(
        "type: install\nid: launcher\nname: L\n"
        "settings:\n  fields:\n    - {type: list, name: nodeGroups, caption: G, multiSelect: true}\n"
        "onInstall:\n  - install [${settings.nodeGroups}]:\n      jps: logic.jps?_r=${fn.random}\n"
        "      settings: {nodeGroups: '${settings.nodeGroups}'}\n"
        "success: launched\n")
    runner = FakeRunner()
    it = interp(runner)
    _, result = it.install(tmp_path / "manifest.jps", settings={"nodeGroups": "sqldb,pgpool"})
    assert result.ok and result.message == "launched"
    assert [a.label for a in it.addons] == ["logic@sqldb", "logic@pgpool", "launcher@-"]
    assert sorted(c[0] for c in runner.calls) == [11, 12, 13, 21]
    assert {c[1] for c in runner.calls} == {"enable sqldb,pgpool"}

    new = it.env.add(Node(14, "sqldb", "postgres15", False, "10.0.0.14"))
    fired = it.fire_all("onAfterServiceScaleOut", params={"nodeGroup": "sqldb", "count": 1},
                        response={"nodes": [new]})
    assert [(a.label, r.ok) for a, r in fired] == [("logic@sqldb", True)]
    assert runner.calls[-1][:2] == (14, "enable-new 1")


def test_failing_nested_install_fails_the_parent(tmp_path: Path) -> None:
    (tmp_path / "child.jps").write_text("type: update\nname: C\nonInstall:\n  - cmd[11]: exit 1\n    user: root\n")
    runner = FakeRunner(lambda n, s: CmdResult(1, "", "nope"))
    it = interp(runner)
    _, result = it.install(f"type: install\nname: P\nonInstall:\n  - install: {tmp_path}/child.jps\n  - log: after\n")
    assert not result.ok and "nested install failed" in (result.error or "") and result.log == []
    assert it.addons == []


def test_events_filter_and_stop_event() -> None:
    extra = ("onBeforeScaleIn[sqldb]:\n  - stopEvent: {type: warning, message: one at a time}\n  - log: no\n"
             "onAfterRedeployContainer[${targetNodes.nodeGroup}]:\n"
             "  - if (!${event.params.useExistingVolumes:true}):\n      - log: reinstall\n"
             "onUninstall:\n  - cmd[${targetNodes.nodeGroup}]: disable\n    user: root\n")
    it = interp()
    addon, _ = it.install(manifest("  - log: x\n", extra), node_group="sqldb")
    stop = it.fire(addon, "onBeforeScaleIn", params={"nodeGroup": "sqldb", "count": 2})
    assert stop is not None and stop.stopped and stop.ok and stop.message == "one at a time"
    assert it.fire(addon, "onBeforeScaleIn", params={"nodeGroup": "proxy"}) is None
    kept = it.fire(addon, "onAfterRedeployContainer", params={"nodeGroup": "sqldb"})
    wiped = it.fire(addon, "onAfterRedeployContainer",
                    params={"nodeGroup": "sqldb", "useExistingVolumes": False})
    assert kept is not None and kept.log == [] and wiped is not None and wiped.log == ["reinstall"]
    assert len(it.uninstall(addon).cmd_steps()) == 3 and it.addons == []
    with pytest.raises(ManifestError, match="not a platform event"):
        it.fire(addon, "onAfterNothing")


def test_sleep_log_and_success_rendering() -> None:
    slept: list[float] = []
    it = Interpreter(make_env(), FakeRunner(), sleep=slept.append)
    _, result = it.install(manifest("  - sleep: 1500\n  - log: [a, b]\n",
                                    "success: {text: 'TLS on ${env.domain}', email: false}\n"))
    assert slept == [1.5] and result.log == ["a", "b"]
    assert result.message == "TLS on env-7.example.org"


def test_selector_that_matches_nothing_fails_like_the_platform() -> None:
    _, result = interp().install(manifest("  - cmd[proxy]: echo\n    user: root\n"))
    assert not result.ok and "11022" in (result.error or "")


def test_shell_runner_feeds_the_payload_on_stdin_not_argv() -> None:
    marker = "SECRET-MARKER-4711"
    script = (f"echo {marker} >/dev/null\n"
              "tr '\\0' ' ' </proc/$$/cmdline; echo\n"
              "tr '\\0' ' ' </proc/$PPID/cmdline; echo\n"
              "read -r answer; echo \"stdin=$answer\"")
    runner = ShellRunner(local_argv, login=same_user)
    node = Node(1, "sqldb", "postgresql")
    res = runner.run(node, engine_payload(script), "root")
    assert res.exit_code == 0, res.stderr
    assert marker not in res.stdout and engine_payload(script) not in res.stdout
    assert res.stdout.splitlines()[-1] == "stdin=y"
    quiet = runner.run(node, engine_payload("read -r a || echo empty", say_yes=False), "root")
    assert quiet.stdout == "empty\n"
    assert runner.run(node, engine_payload("exit 7"), "root").exit_code == 7


def test_selector_forms_alias_sibling_params_and_node_type() -> None:
    runner = FakeRunner()
    body = ("  - cmd[db]: a\n    user: root\n"
            "  - cmd: b\n    nodeGroup: pgpool\n    user: root\n"
            "  - cmd [pgpool2, 12]: c\n    user: root\n"
            "  - cmd: {commands: d, nodeId: 13, user: root}\n"
            "  - log: ${nodes.db.master.id}\n")
    _, result = interp(runner).install(manifest(body, "nodeGroupAlias: {sqldb: db}\n"))
    assert result.ok, result.error
    assert sorted((c[0], c[1]) for c in runner.calls) == [
        (11, "a"), (12, "a"), (12, "c"), (13, "a"), (13, "d"), (21, "b"), (21, "c")]
    assert result.log == ["11"]
