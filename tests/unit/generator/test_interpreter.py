"""The JPS interpreter against a fake NodeRunner: no docker, no nodes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from dbtls.jps import (
    CmdResult,
    ConditionError,
    Environment,
    Interpreter,
    ManifestError,
    Node,
    NodeRunner,
    PlaceholderError,
    UnsupportedFeature,
    User,
)
from dbtls.jps.runners import ShellRunner, local_argv


class FakeRunner:
    """Records every script; answers from ``reply(node, script)`` (default: exit 0, ``out<id>``)."""

    def __init__(self, reply: Callable[[Node, str], CmdResult] | None = None) -> None:
        self.calls: list[tuple[int, str, str | None, bool]] = []
        self.reply = reply or (lambda node, script: CmdResult(0, f"out{node.id}\n"))
        self.lock = threading.Lock()

    def run(self, node: Node, script: str, user: str | None, *, say_yes: bool = True) -> CmdResult:
        with self.lock:
            self.calls.append((node.id, script, user, say_yes))
        return self.reply(node, script)

    def scripts(self, node_id: int) -> list[str]:
        return [s for i, s, _, _ in self.calls if i == node_id]


def make_env() -> Environment:
    return Environment("env-7", "env-7.example.org", [
        Node(11, "sqldb", "postgresql", True, "10.0.0.11"),
        Node(12, "sqldb", "postgresql", False, "10.0.0.12"),
        Node(13, "sqldb", "postgresql", False, "10.0.0.13"),
        Node(21, "pgpool", "pgpool2", True, "10.0.0.21"),
    ])


def interp(runner: NodeRunner | None = None, **kw: object) -> Interpreter:
    return Interpreter(make_env(), runner or FakeRunner(), user=User(email="me@example.org"),
                       sleep=lambda s: None, seed=1, **kw)  # type: ignore[arg-type]


def manifest(body: str, extra: str = "") -> str:
    return f"type: update\nid: t\nname: T\nbaseUrl: https://repo.example/x\n{extra}onInstall:\n{body}"


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

    _, result = interp(FakeRunner(reply)).install(manifest("  - cmd[sqldb]: echo\n    sync: true\n"))
    assert result.ok and peak[0] == 1


def test_nonzero_exit_stops_the_handler() -> None:
    runner = FakeRunner(lambda n, s: CmdResult(3, "", "boom\n") if n.id == 12 else CmdResult(0, "fine"))
    _, result = interp(runner).install(manifest("  - cmd[sqldb]: step one\n  - cmd[sqldb]: step two\n"))
    assert not result.ok
    assert result.error == "cmd on node 12 exited with 3: boom"
    assert [c[1] for c in runner.calls].count("step one") == 3  # the failing cmd still ran everywhere
    assert "step two" not in [c[1] for c in runner.calls]
    assert [s.exit_code for s in result.cmd_steps()] == [0, 3, 0]


def test_script_goes_to_the_runner_with_user_and_say_yes() -> None:
    runner = FakeRunner()
    body = "  - cmd[21]:\n      - set -e\n      - echo two\n    user: root\n    sayYes: false\n"
    interp(runner).install(manifest(body))
    assert runner.calls == [(21, "set -e\necho two", "root", False)]


def test_placeholders() -> None:
    runner = FakeRunner()
    body = ("  - cmd[${nodes.sqldb.master.id}]: >-\n"
            "      ${env.envName} ${env.domain} ${nodes.sqldb.join(id,)} ${nodes.pgpool2.first.address}\n"
            "      ${settings.extra} ${globals.agent} ${user.email} ${baseUrl} ${targetNodes.nodeGroup}\n"
            "      ${nodes.sqldb.length} ${settings.missing:dflt} ${fn.password(16)}\n")
    extra = ("settings:\n  fields:\n    - {type: string, name: extra, caption: E, default: x}\n"
             "globals:\n  agent: /usr/local/sbin/dbtls-agent\n")
    _, result = interp(runner).install(manifest(body, extra), node_group="sqldb",
                                       settings={"extra": "db.example.org"})
    assert result.ok, result.error
    (node_id, script, _, _), = runner.calls
    words = script.split()
    assert node_id == 11
    assert words[:-1] == ["env-7", "env-7.example.org", "11,12,13", "10.0.0.21", "db.example.org",
                          "/usr/local/sbin/dbtls-agent", "me@example.org", "https://repo.example/x",
                          "sqldb", "3", "dflt"]
    assert len(words[-1]) == 16 and words[-1].isalnum()


def test_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(PlaceholderError, match=r"\$\{globals.nope\}"):
        interp().install(manifest("  - log: ${globals.nope}\n"))
    with pytest.raises(PlaceholderError, match="write shell variables as"):
        interp().install(manifest("  - cmd[sqldb]: echo ${MASTER_ID}\n"))


def test_non_strict_mode_leaves_unknown_placeholders_literal() -> None:
    runner = FakeRunner()
    interp(runner, strict=False).install(manifest("  - cmd[11]: echo ${MASTER_ID} ${globals.nope}\n"))
    assert runner.calls[0][1] == "echo ${MASTER_ID} ${globals.nope}"


def test_response_out_chains_between_cmds() -> None:
    runner = FakeRunner(lambda n, s: CmdResult(0, f"csr-of-{n.id}\n") if "csr" in s else CmdResult(0, "x"))
    body = ("  - cmd[12]: agent csr\n"
            "  - cmd[11]: agent sign '${response.out}'\n"
            "  - cmd[sqldb]: agent csr\n"
            "  - log: ${response.responses[1].out} ${response.responses[2].nodeid}\n")
    _, result = interp(runner).install(manifest(body))
    assert runner.scripts(11)[0] == "agent sign 'csr-of-12'"
    assert result.log == ["csr-of-12 13"]


def test_response_out_after_multi_node_cmd_is_refused_with_a_hint() -> None:
    with pytest.raises(PlaceholderError, match=r"responses\[i\]\.out"):
        interp().install(manifest("  - cmd[sqldb]: echo\n  - log: ${response.out}\n"))


def test_foreach_over_layer_list_and_nested_index() -> None:
    body = ("  - setGlobals: {names: [a, b]}\n"
            "  - forEach(n:nodes.sqldb):\n"
            "      - forEach(globals.names):\n"
            "          - log: ${@n.id}/${@@n}/${@i}/${@}\n")
    _, result = interp().install(manifest(body))
    assert result.log == ["11/0/a/0", "11/0/b/1", "12/1/a/0", "12/1/b/1", "13/2/a/0", "13/2/b/1"]


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
             "  sign:\n    - cmd[${this.nodeId}]: agent csr --role ${this.role}\n"
             "  hello:\n    - log: hi ${this}\n")
    runner = FakeRunner()
    _, result = interp(runner).install(manifest(body, extra))
    assert runner.calls[0][:2] == (12, "agent csr --role replica")
    assert result.log == ["hi sqldb", "hi a", "hi b"]


def test_missing_action_parameter_is_an_error() -> None:
    extra = "actions:\n  sign:\n    - log: ${this.nodeId}\n"
    with pytest.raises(PlaceholderError, match="without parameters"):
        interp().install(manifest("  - sign\n", extra))


def test_unknown_and_unsupported_actions_raise() -> None:
    with pytest.raises(ManifestError, match="unknown action"):
        interp().install(manifest("  - nosuch: 1\n"))
    with pytest.raises(UnsupportedFeature, match="api"):
        interp().install(manifest("  - api [sqldb]: environment.control.RestartNodes\n"))
    with pytest.raises(UnsupportedFeature, match="addons"):
        interp().install(manifest("  - log: x\n", "addons: []\n"))
    with pytest.raises(ManifestError, match="unknown parameters"):
        interp().install(manifest("  - cmd[sqldb]: id\n    usr: root\n"))


def test_return_and_stop_event_end_the_handler() -> None:
    _, result = interp().install(manifest(
        "  - return: {type: success, message: 'done ${env.envName}'}\n  - log: never\n"))
    assert result.ok and result.stopped and result.message == "done env-7" and result.log == []
    _, result = interp().install(manifest("  - return: {result: 4101}\n", "responses:\n  4101: {type: error, message: nope}\n"))
    assert not result.ok and result.error == "nope"


def test_setglobals_visible_in_actions_and_globals_recomputed_per_run() -> None:
    extra = ("globals:\n  pw: ${fn.password}\n"
             "actions:\n  show:\n    - log: ${globals.x} ${globals.pw}\n"
             "buttons:\n  - {caption: Show, action: show}\n")
    it = interp()
    addon, result = it.install(manifest("  - setGlobals: {x: '${env.envName}'}\n  - show\n", extra))
    assert result.log[0].startswith("env-7 ")
    with pytest.raises(PlaceholderError):  # setGlobals does not survive into a later run
        it.click(addon, "Show")


def test_nested_install_per_layer_with_relative_jps(tmp_path: Path) -> None:
    (tmp_path / "logic.jps").write_text(
        "type: update\nid: logic\nname: Logic\n"
        "onInstall:\n  - cmd[${targetNodes.nodeGroup}]: enable ${settings.nodeGroups}\n    user: root\n"
        "onAfterServiceScaleOut[${targetNodes.nodeGroup}]:\n"
        "  - forEach(n:event.response.nodes):\n      - cmd[${@n.id}]: enable-new ${event.params.count}\n"
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

    new = it.env.add(Node(14, "sqldb", "postgresql", False, "10.0.0.14"))
    fired = it.fire_all("onAfterServiceScaleOut", params={"nodeGroup": "sqldb", "count": 1},
                        response={"nodes": [new]})
    assert [(a.label, r.ok) for a, r in fired] == [("logic@sqldb", True)]
    assert runner.calls[-1][:2] == (14, "enable-new 1")


def test_failing_nested_install_fails_the_parent(tmp_path: Path) -> None:
    (tmp_path / "child.jps").write_text("type: update\nname: C\nonInstall:\n  - cmd[11]: exit 1\n")
    runner = FakeRunner(lambda n, s: CmdResult(1, "", "nope"))
    it = interp(runner)
    _, result = it.install(f"type: install\nname: P\nonInstall:\n  - install: {tmp_path}/child.jps\n  - log: after\n")
    assert not result.ok and "nested install failed" in (result.error or "") and result.log == []
    assert it.addons == []


def test_button_with_form_settings_and_success_text() -> None:
    extra = ("targetNodes: {nodeGroup: [sqldb]}\n"
             "settings:\n  reissue:\n    fields:\n      - {type: toggle, name: newCa, caption: CA, value: false}\n"
             "buttons:\n  - {caption: Re-issue, action: reissue, settings: reissue, successText: Re-issued.}\n"
             "actions:\n  reissue:\n    - cmd[${nodes.sqldb.master.id}]: reissue --new-ca=${settings.newCa}\n")
    runner = FakeRunner()
    it = interp(runner)
    addon, _ = it.install(manifest("  - log: installed\n", extra), node_group="sqldb")
    result = it.click(addon, "Re-issue")
    assert result.ok and result.message == "Re-issued."
    assert it.click(addon, "Re-issue", {"newCa": True}).ok
    assert [c[1] for c in runner.calls] == ["reissue --new-ca=false", "reissue --new-ca=true"]
    with pytest.raises(ManifestError, match="no fields"):
        it.click(addon, "Re-issue", {"newCA": True})


def test_events_filter_and_stop_event() -> None:
    extra = ("onBeforeScaleIn[sqldb]:\n  - stopEvent: {type: warning, message: one at a time}\n  - log: no\n"
             "onAfterRedeployContainer[${targetNodes.nodeGroup}]:\n"
             "  - if (!${event.params.useExistingVolumes:true}):\n      - log: reinstall\n"
             "onUninstall:\n  - cmd[${targetNodes.nodeGroup}]: disable\n")
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
    _, result = interp().install(manifest("  - cmd[proxy]: echo\n"))
    assert not result.ok and "11022" in (result.error or "")


def test_shell_runner_feeds_script_on_stdin_not_argv() -> None:
    marker = "SECRET-MARKER-4711"
    script = (f"# {marker}\n"
              "tr '\\0' ' ' </proc/$$/cmdline; echo\n"
              "tr '\\0' ' ' </proc/$PPID/cmdline; echo\n"
              "read -r answer; echo \"stdin=$answer\"\n")
    runner = ShellRunner(local_argv)
    node = Node(1, "sqldb", "postgresql")
    res = runner.run(node, script, None)
    assert res.exit_code == 0, res.stderr
    assert marker not in res.stdout
    assert res.stdout.splitlines()[-1] == "stdin=y"
    quiet = runner.run(node, "read -r a || echo empty", None, say_yes=False)
    assert quiet.stdout == "empty\n"
    assert runner.run(node, "exit 7", None).exit_code == 7


CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "jps" / "passing"


def test_corpus_add_on_runs_end_to_end() -> None:
    """The §11-style corpus manifest: install, scale-out event, button with form, uninstall."""
    def reply(node: Node, script: str) -> CmdResult:
        if " csr " in f" {script} ":
            return CmdResult(0, f"CSR{node.id}\n")
        if "ca sign" in script:
            return CmdResult(0, "BUNDLE\n")
        return CmdResult(0, "")

    runner = FakeRunner(reply)
    it = interp(runner)
    addon, result = it.install(CORPUS / "pg-logic.jps", node_group="sqldb")
    assert result.ok, result.error
    assert result.message is not None and result.message.startswith("TLS is on for sqldb in env-7")
    assert "/usr/local/sbin/dbtls-agent install-certs --bundle-b64 'BUNDLE'" in runner.scripts(13)
    assert "/usr/local/sbin/dbtls-agent ca sign --csr-b64 'CSR13'" in runner.scripts(11)
    assert "dbtls-agent.pyz?_r=" in runner.scripts(12)[0]
    new = it.env.add(Node(14, "sqldb", "postgresql", False, "10.0.0.14"))
    scaled = it.fire(addon, "onAfterServiceScaleOut", params={"nodeGroup": "sqldb"}, response={"nodes": [new]})
    assert scaled is not None and scaled.ok
    assert runner.scripts(14)[-1] == "/usr/local/sbin/dbtls-agent enable --layer sqldb"
    button = it.click(addon, "Re-issue certificates", {"newCa": True})
    assert button.ok and button.message == "Certificates re-issued."
    assert it.click(addon, "Configuration Tutorial").message == "https://example.com/dbtls/tutorial"
    reset = it.fire(addon, "onAfterResetServicePassword", params={"nodeGroup": "sqldb"})
    assert reset is not None and reset.ok
    assert it.uninstall(addon).ok


def test_corpus_launcher_needs_explicit_on_before_init_opt_in() -> None:
    with pytest.raises(UnsupportedFeature, match="onBeforeInit"):
        interp().install(CORPUS / "launcher.jps")

    def fetch(ref: str, base: str | None) -> tuple[str, str]:
        name = "pg-logic.jps" if ref.startswith("logic.jps") else ref
        return (CORPUS / name).read_text(), str(CORPUS / name)

    runner = FakeRunner()
    it = interp(runner, fetch=fetch, ignore_on_before_init=True)
    _, result = it.install(CORPUS / "launcher.jps", settings={"envName": "env-7", "nodeGroups": "sqldb"})
    assert result.ok, result.error
    assert [a.label for a in it.addons] == ["dbtls@sqldb", "dbtls-launcher@-"]


def test_corpus_script_action_needs_a_hook() -> None:
    seen: list[str] = []

    def hook(addon: object, code: str, params: dict[str, object]) -> dict[str, object]:
        seen.append(code)
        return {"result": 0, "jps": {"type": "update", "name": "clone", "onInstall": [{"log": "cloned"}]}}

    it = interp(script_hook=hook)
    addon, result = it.install(CORPUS / "mysql-proxysql.jps", node_group="sqldb")
    assert result.ok, result.error
    cloned = it.fire(addon, "onAfterClone", response={"env": {"envName": "env-7"}})
    assert cloned is not None and cloned.ok and cloned.log == ["cloned"]
    assert "jps: MANIFEST" in seen[0]


def test_selector_forms_alias_sibling_params_and_node_type() -> None:
    runner = FakeRunner()
    body = ("  - cmd[db]: a\n"
            "  - cmd: b\n    nodeGroup: pgpool\n"
            "  - cmd [pgpool2, 12]: c\n"
            "  - cmd: {commands: d, nodeId: 13, user: root}\n"
            "  - log: ${nodes.db.master.id}\n")
    _, result = interp(runner).install(manifest(body, "nodeGroupAlias: {sqldb: db}\n"))
    assert result.ok, result.error
    assert sorted((c[0], c[1]) for c in runner.calls) == [
        (11, "a"), (12, "a"), (12, "c"), (13, "a"), (13, "d"), (21, "b"), (21, "c")]
    assert result.log == ["11"]
