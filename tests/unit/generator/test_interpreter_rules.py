"""The engine rules the interpreter enforces (docs/jps-semantics.md), one test per rule."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import pytest
from jps_fakes import FakeRunner, interp, manifest

from dbtls.jps import CmdResult, ManifestError, Node
from dbtls.jps.model import NODE_KEYS

# -- response is replaced by every action ------------------------------------------------------


@pytest.mark.parametrize("between", [
    "  - setGlobals: {a: 1}\n", "  - set: {a: 1}\n", "  - log: x\n", "  - sleep: 1\n",
    "  - assert: 'true'\n", "  - if (true):\n      - log: in\n",
    "  - forEach(nodes.pgpool):\n      - log: in\n",
])
def test_response_is_empty_after_non_cmd_actions(between: str) -> None:
    body = f"  - cmd[11]: echo\n    user: root\n{between}  - log: '[${{response.out}}][${{response.out.toBase64()}}]'\n"
    _, result = interp().install(manifest(body))
    assert result.log[-1] == "[${response.out}][]"


def test_branch_and_loop_bodies_start_with_an_empty_response() -> None:
    body = ("  - cmd[11]: echo\n    user: root\n"
            "  - if ('${response.out}' == 'out11\\n'):\n"
            "      - log: 'if sees [${response.out}]'\n"
            "  - cmd[11]: echo\n    user: root\n"
            "  - forEach(nodes.sqldb):\n"
            "      - log: 'loop sees [${response.out}]'\n"
            "      - cmd[${@i.id}]: echo\n        user: root\n")
    _, result = interp().install(manifest(body))
    assert result.log == ["if sees [${response.out}]"] + ["loop sees [${response.out}]"] * 3


def test_elif_sees_the_empty_response_the_if_item_left() -> None:
    body = ("  - cmd[11]: echo\n    user: root\n"
            "  - if (response.out == 'nope'):\n      - log: if\n"
            "  - elif (response.out == 'out11\\n'):\n      - log: elif\n"
            "  - else:\n      - log: else\n")
    _, result = interp().install(manifest(body))
    assert result.log == ["else"]


def test_custom_action_leaves_the_response_of_its_last_action() -> None:
    # postgres-ssl-addon logic.jps: checkAppVersion, then if (response.out == "Non-supported")
    runner = FakeRunner(lambda n, s: CmdResult(0, "Non-supported"))
    extra = ("actions:\n  check:\n    - cmd[${this.node}]: check\n      user: root\n"
             "  check2:\n    - check: {node: '${this.node}'}\n"
             "  quiet:\n    - cmd[11]: x\n      user: root\n    - setGlobals: {a: b}\n")
    body = ("  - check2: {node: 11}\n"
            "  - if (response.out == 'Non-supported'):\n      - log: unsupported\n"
            "  - quiet\n"
            "  - log: '[${response.out}]'\n")
    _, result = interp(runner).install(manifest(body, extra))
    assert result.log == ["unsupported", "[${response.out}]"]


def test_a_custom_action_body_starts_with_an_empty_response() -> None:
    extra = "actions:\n  show:\n    - log: '[${response.out}]'\n"
    _, result = interp().install(manifest("  - cmd[11]: x\n    user: root\n  - show\n", extra))
    assert result.log == ["[${response.out}]"]


def test_cmd_response_shape() -> None:
    runner = FakeRunner(lambda n, s: CmdResult(1 if n.id == 13 else 0, f"o{n.id}\n", f"e{n.id}"))
    it = interp(runner)
    addon, _ = it.install(manifest("  - log: x\n", "actions:\n  one:\n    - cmd[12]: x\n      user: root\n"
                                   "    - log: ${response.toJSON()}\n"))
    one = it.call(addon, "one")
    assert one.log == ['{"result": 0, "responses": [{"nodeid": 12, "out": "o12\\n", "errOut": "e12", '
                       '"exitStatus": 0, "result": 0}], "out": "o12\\n", "errOut": "e12"}']


# -- forEach ----------------------------------------------------------------------------------

@pytest.mark.parametrize("iterable", ["response.responses", "globals.list", "this.ids", "settings.groups",
                                      "env.domain", "nodes.sqldb.master"])
def test_foreach_over_an_undocumented_iterable_names_the_item(iterable: str) -> None:
    extra = "globals:\n  list: [a]\nactions:\n  issueNode:\n    - log: a\n    - log: b\n" \
            f"    - forEach(r:{iterable}):\n        - log: ${{@r}}\n"
    it = interp()
    addon, _ = it.install(manifest("  - log: x\n", extra))
    with pytest.raises(ManifestError, match=rf"^actions\.issueNode\[2\]: forEach over {iterable}: not a "
                                            "documented iterable"):
        it.call(addon, "issueNode")


def test_foreach_over_documented_iterables() -> None:
    body = ("  - forEach(env.nodes):\n      - log: env ${@i.id}\n"
            "  - forEach(nodes):\n      - log: all ${@i.id}\n"
            "  - forEach(n:nodes.db):\n      - log: alias ${@n.id}\n"
            "  - forEach(n:nodes.${targetNodes.nodeGroup}):\n      - log: own ${@n.id} ${@@n} ${@}\n"
            "  - forEach(env.contexts):\n      - log: never\n"
            "  - forEach(env.extdomains):\n      - log: never\n")
    _, result = interp().install(manifest(body, "nodeGroupAlias: {pgpool: db}\n"), node_group="pgpool")
    assert result.log == ["env 11", "env 12", "env 13", "env 21", "all 11", "all 12", "all 13", "all 21",
                          "alias 21", "own 21 0 0"]


def test_foreach_over_a_missing_layer_is_an_error() -> None:
    with pytest.raises(ManifestError, match=r"onInstall\[0\]: forEach over nodes.proxy: nothing to iterate"):
        interp().install(manifest("  - forEach(nodes.proxy):\n      - log: x\n"))


# -- node objects -----------------------------------------------------------------------------

def test_node_objects_carry_exactly_the_documented_keys() -> None:
    keys = sorted(NODE_KEYS)
    body = "  - log: '" + "|".join(f"${{nodes.pgpool.master.{k}}}" for k in keys) + "'\n" \
           "  - forEach(n:nodes.sqldb):\n      - log: ${@n.name}/${@n.hostname}/${@n.nodemission}\n"
    _, result = interp().install(manifest(body))
    values = dict(zip(keys, result.log[0].split("|"), strict=True))
    assert values == {"address": "10.0.0.21", "extIPs": "", "extips": "", "id": "21", "intIP": "10.0.0.21",
                      "ismaster": "true", "name": "Pgpool-II", "nodeGroup": "pgpool", "nodeType": "pgpool2",
                      "nodemission": "pgpool", "osType": "LINUX", "url": "http://node21-env-7.example.org",
                      "version": "4.3.5"}
    assert result.log[1:] == ["PostgreSQL 15/${@n.hostname}/sqldb"] * 3


def test_event_nodes_are_node_objects_too() -> None:
    extra = "onAfterScaleOut[sqldb]:\n  - forEach(n:event.response.nodes):\n      - log: ${@n.name} ${@n.hostname}\n"
    it = interp()
    addon, _ = it.install(manifest("  - log: x\n", extra), node_group="sqldb")
    new = it.env.add(Node(14, "sqldb", "postgres15", False, "10.0.0.14", version="15.6"))
    fired = it.fire(addon, "onAfterScaleOut", params={"nodeGroup": "sqldb"}, response={"nodes": [new]})
    assert fired is not None and fired.log == ["PostgreSQL 15 ${@n.hostname}"]


# -- data processing and function placeholders ---------------------------------------------------

def test_data_processing_placeholders() -> None:
    runner = FakeRunner(lambda n, s: CmdResult(0, "héllo\n"))
    extra = ("settings:\n  fields:\n    - {type: string, name: s, caption: S, default: 'a b'}\n"
             "globals:\n  a: test\n  b: dGVzdA==\n"
             "actions:\n  act:\n    - log: ${this.p.toBase64()} ${this.p.md5()}\n")
    body = ("  - cmd[11]: x\n    user: root\n"
            "  - log: ${response.out.toBase64()}|${globals.a.toBase64()}|${globals.b.fromBase64()}|"
            "${settings.s.toBase64()}|${globals.a.md5()}|[${globals.unknown.toBase64()}]|"
            "[${globals.unknown.fromBase64()}]|[${globals.unknown.md5()}]|${globals.a.fromBase64()}\n"
            "  - act: {p: secret}\n"
            "  - forEach(n:nodes.pgpool):\n      - log: ${@n.id.toBase64()}\n")
    _, result = interp(runner).install(manifest(body, extra))
    b64 = lambda t: base64.b64encode(t.encode()).decode()  # noqa: E731
    md5 = lambda t: hashlib.md5(t.encode()).hexdigest()  # noqa: E731
    assert result.log == [
        f"{b64('héllo' + chr(10))}|{b64('test')}|test|{b64('a b')}|{md5('test')}|[]|[]|[]|"
        "${globals.a.fromBase64()}",  # "test" is not base64 of UTF-8 text: left unresolved
        f"{b64('secret')} {md5('secret')}", b64("21")]


def test_function_placeholders() -> None:
    body = ("  - log: ${fn.uuid}|${fn.random}|${fn.random(5)}|${fn.random(20,30)}|${fn.password}|"
            "${fn.password(20)}|${fn.base64(hi)}|${fn.md5(hi)}|${fn.base64([env.envName])}\n")
    _, result = interp().install(manifest(body))
    uuid, rnd, rmax, rmm, pw, pw20, b64, md5, b64env = result.log[0].split("|")
    assert len(uuid) == 36 and uuid.count("-") == 4
    assert len(rnd) == 7 and rnd.isdigit() and 0 <= int(rmax) <= 5 and 20 <= int(rmm) <= 30
    assert len(pw) == 10 and len(pw20) == 20 and pw.isalnum()
    assert (b64, md5, b64env) == ("aGk=", hashlib.md5(b"hi").hexdigest(), "ZW52LTc=")


def test_join_concatenates_and_joins_object_keys() -> None:
    extra = "globals:\n  arr: [1, 2, 3]\n"
    _, result = interp().install(manifest("  - log: ${globals.arr.join()}|${globals.arr.join(;)}|"
                                          "${nodes.sqldb.join(id,)}\n", extra))
    assert result.log == ["123|1;2;3|11,12,13"]


# -- return ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "ok", "mtype", "message"), [
    ("plain text", False, "error", "plain text"),
    ("{type: info, message: i}", False, "info", "i"),
    ("{type: warning, message: w}", False, "warning", "w"),
    ("{type: error, message: e}", False, "error", "e"),
    ("{result: 0, message: no type}", False, "error", "no type"),
    ("{result: 4101}", False, "error", "nope"),
    ("{result: 4102}", True, "success", "mapped"),
    ("{result: warning, message: w2}", False, "warning", "w2"),
    ("{type: success, message: 'done ${env.envName}'}", True, "success", "done env-7"),
])
def test_return(value: str, ok: bool, mtype: str, message: str) -> None:
    extra = "responses:\n  4101: {type: error, message: nope}\n  4102: {type: success, message: mapped}\n"
    _, result = interp().install(manifest(f"  - return: {value}\n  - log: never\n", extra))
    assert (result.ok, result.message_type, result.message, result.log) == (ok, mtype, message, [])
    assert result.stopped == ok


# -- buttons -----------------------------------------------------------------------------------

def test_button_sees_only_its_own_form() -> None:
    extra = ("targetNodes: {nodeGroup: [sqldb]}\n"
             "settings:\n  main:\n    fields:\n      - {type: string, name: keyType, caption: K, default: rsa}\n"
             "  reissue:\n    fields:\n      - {type: toggle, name: newCa, caption: CA, value: false}\n"
             "buttons:\n  - {caption: Re-issue, action: reissue, settings: reissue, successText: Re-issued.}\n"
             "  - {caption: Status, action: reissue}\n"
             "onUninstall:\n  - log: ${settings.keyType}\n"
             "onAfterRedeployContainer:\n  - log: ${settings.keyType}\n"
             "actions:\n  reissue:\n    - log: ${settings.newCa} ${settings.keyType}\n")
    it = interp()
    addon, _ = it.install(manifest("  - log: ${settings.keyType}\n", extra), node_group="sqldb")
    result = it.click(addon, "Re-issue")
    assert result.ok and result.message == "Re-issued." and result.log == ["false ${settings.keyType}"]
    assert it.click(addon, "Re-issue", {"newCa": True}).log == ["true ${settings.keyType}"]
    assert it.click(addon, "Status").log == ["${settings.newCa} ${settings.keyType}"]
    with pytest.raises(ManifestError, match="no fields"):
        it.click(addon, "Re-issue", {"newCA": True})
    with pytest.raises(ManifestError, match="no settings form"):
        it.click(addon, "Status", {"newCa": True})
    fired = it.fire(addon, "onAfterRedeployContainer", params={"nodeGroup": "sqldb"})
    assert fired is not None and fired.log == ["rsa"]  # events keep the install settings
    assert it.uninstall(addon).log == ["rsa"]


# -- events --------------------------------------------------------------------------------------

def _two_instances(runner: FakeRunner):
    extra = ("onAfterScaleOut[sqldb]:\n"
             "  - cmd[${targetNodes.nodeGroup}]: handle ${targetNodes.nodeGroup}\n"
             "    user: root\n    sync: true\n"
             "onAfterScaleOut[proxy]:\n  - log: never\n")
    it = interp(runner)
    it.install(manifest("  - log: x\n", extra), node_group="sqldb")
    it.install(manifest("  - log: x\n", extra), node_group="pgpool")
    return it


@pytest.mark.parametrize(("order", "expected"), [("install", ["sqldb", "pgpool"]),
                                                  ("reverse", ["pgpool", "sqldb"])])
def test_every_instance_hears_the_event_in_the_chosen_order(order: str, expected: list[str]) -> None:
    # the [sqldb] handler of the instance on pgpool runs too, with its own targetNodes
    runner = FakeRunner()
    it = _two_instances(runner)
    fired = it.fire_all("onAfterScaleOut", params={"nodeGroup": "sqldb"}, order=order)
    assert [a.label for a, _ in fired] == [f"t@{g}" for g in expected]
    ids = {"sqldb": [11, 12, 13], "pgpool": [21]}
    assert [(c[0], c[1]) for c in runner.calls] == [(i, f"handle {g}") for g in expected for i in ids[g]]
    assert all(r.ok for _, r in fired)


def test_instances_can_handle_an_event_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def reply(node: Node, text: str) -> CmdResult:
        if node.id in (11, 21):
            barrier.wait()  # both instances' handlers must be running at the same time
        return CmdResult(0, "")

    it = _two_instances(FakeRunner(reply))
    fired = it.fire_all("onAfterScaleOut", params={"nodeGroup": "sqldb"}, concurrent=True)
    assert sorted(a.label for a, r in fired if r.ok) == ["t@pgpool", "t@sqldb"]
    with pytest.raises(ValueError, match="order"):
        it.fire_all("onAfterScaleOut", params={"nodeGroup": "sqldb"}, order="random")


# -- baseUrl and install ---------------------------------------------------------------------------

def test_base_url_follows_the_import_location(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.jps").write_text("type: update\nname: C\nonInstall:\n  - log: child ${baseUrl}\n")
    (tmp_path / "parent.jps").write_text(
        "type: update\nname: P\nonInstall:\n  - log: parent ${baseUrl}\n  - install: sub/child.jps\n"
        "  - install:\n      type: update\n      name: inline\n      onInstall:\n        - log: inline ${baseUrl}\n")
    _, result = interp().install(tmp_path / "parent.jps")
    assert result.ok, result.error
    assert result.log == [f"parent {tmp_path}", f"child {tmp_path}/sub", f"inline {tmp_path}"]


def test_declared_base_url_wins_and_gets_a_trailing_slash() -> None:
    fetched: list[tuple[str, str | None]] = []

    def fetch(ref: str, base: str | None) -> tuple[str, str]:
        fetched.append((ref, base))
        return "type: update\nname: C\nonInstall:\n  - log: child ${baseUrl}\n", "http://other.example/c/child.jps"

    it = interp(fetch=fetch)
    _, result = it.install("type: update\nname: P\nbaseUrl: https://github.com/o/r/blob/main\n"
                           "onInstall:\n  - log: ${baseUrl}\n  - install: logic.jps\n")
    assert result.log == ["https://github.com/o/r/raw/main/", "child http://other.example/c"]
    assert fetched == [("logic.jps", "https://github.com/o/r/raw/main/")]
