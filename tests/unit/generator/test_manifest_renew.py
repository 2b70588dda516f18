"""The renewal trigger's manifest side: the platform script, the nodes' tokens, uninstall.

The manifest runs in the interpreter against fake nodes that answer ``renew install`` as the agent
does (a token per node, kept across runs, its SHA-256 printed); the platform API calls it makes are
the simulation's (jps/platformapi.py). The add-on's ``renew`` action is another part's work: these
tests give the installation a stand-in ``renew`` that only logs, to see it run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from jps_fakes import FakeRunner, interp, make_env

from dbtls.addon import shell
from dbtls.addon.manifest import build_manifest
from dbtls.jps import CmdResult, Interpreter, Node
from dbtls.jps.platformapi import url_name

NAME = "env-7-sqldb-dbtls-renew"


class Nodes:
    """The agent's ``renew install`` on each fake node: a token file per node (kept while it is
    there), the answer with its SHA-256; ``renew remove`` deletes it."""

    def __init__(self) -> None:
        self.tokens: dict[int, str] = {}
        self.answers: list[str] = []

    def reply(self, node: Node, text: str) -> CmdResult:
        if "renew install" in text:
            kept = node.id in self.tokens
            token = self.tokens.setdefault(node.id, secrets.token_hex(32))
            out = json.dumps({"token": "kept" if kept else "new",
                              "token_sha256": hashlib.sha256(token.encode()).hexdigest()}) + "\n"
            self.answers.append(out)
            return CmdResult(0, out)
        if "renew remove" in text:
            self.tokens.pop(node.id, None)
        return CmdResult(0, f"out{node.id}\n")


def installed(env_name: str = "env-7") -> tuple[Interpreter, FakeRunner, object, Nodes]:
    nodes = Nodes()
    runner = FakeRunner(nodes.reply)
    it = interp(runner, env=make_env(env_name))
    addon = it.load(build_manifest("0" * 64), node_group="sqldb")
    addon.actions["renew"] = [{"log": "renew ran"}]
    addon.unique_name = "dbtls-sqldb-1"
    it.addons.append(addon)
    result = it.call(addon, "renewSchedule")
    assert result.ok, result.error
    return it, runner, addon, nodes


def digests_of(it: Interpreter) -> list[str]:
    m = re.search(r"^var digests = (\[.*\]);$", it.platform.scripts[NAME]["code"], re.M)
    assert m
    return json.loads(m.group(1))


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_one_platform_script_per_installation_served_at_its_name():
    it, _, _, nodes = installed()
    assert list(it.platform.scripts) == [NAME]
    script = it.platform.scripts[NAME]
    assert script["type"] == "js" and script["appid"] == it.env.appid
    assert url_name(script["code"]) == NAME
    assert sorted(digests_of(it)) == sorted(sha(t) for t in nodes.tokens.values())
    assert sorted(nodes.tokens) == [11, 12, 13]  # the layer's nodes, each its own token
    assert len(set(nodes.tokens.values())) == 3


def test_every_node_gets_the_url_on_stdin_and_no_token_reaches_any_cmd():
    it, runner, _, nodes = installed()
    url = f"https://{it.platform.host}/{NAME}?appid={it.env.appid}"
    b64 = base64.b64encode(url.encode()).decode()
    scripts = [(node, text) for node, text, _, _ in runner.calls if "renew install" in text]
    assert sorted(node for node, _ in scripts) == [11, 12, 13]
    for _, text in scripts:
        assert f"'{b64}'" in text and "| $A renew install --from-manifest" in text
        assert "token" not in text.replace("--from-manifest", "")


def test_no_token_is_in_any_cmd_text_script_text_node_output_or_log():
    """What the platform records of a run (every cmd's text, every node's output, the script
    actions' code and answers, the action log) and the platform script hold no node's token."""
    it, runner, addon, nodes = installed()
    result = it.call(addon, "renewSchedule")
    assert result.ok, result.error
    tokens = list(nodes.tokens.values())
    recorded = [text for _, text, _, _ in runner.calls] + runner.payloads + nodes.answers
    recorded += [(step.detail or "") + (step.out or "") + (step.err or "") for step in result.steps]
    recorded += list(result.log) + [it.platform.scripts[NAME]["code"]]
    assert any(sha(tokens[0]) in text for text in recorded)  # the recording does hold the digests
    for token in tokens:
        assert not any(token in text for text in recorded)
        assert not any(base64.b64encode(token.encode()).decode() in text for text in recorded)


def test_each_node_token_runs_renew_once_whatever_else_is_sent():
    it, _, _, nodes = installed()
    for n, token in enumerate(nodes.tokens.values(), 1):
        answer = it.invoke_script(NAME, {"token": token, "action": "uninstall", "appUniqueName": "x"})
        assert answer["result"] == 0, answer
        assert [(a.unique_name, action) for a, action, _ in it.executed] == [("dbtls-sqldb-1", "renew")] * n
    assert it.executed[0][2].log == ["renew ran"]


@pytest.mark.parametrize("params", [{}, {"token": ""}, {"token": "x" * 64}, {"session": "s"}, {"token": "é" * 64},
                                    {"token": "a" * 1025}])
def test_a_wrong_or_missing_token_runs_nothing(params):
    it, _, _, _ = installed()
    answer = it.invoke_script(NAME, params)
    assert answer["result"] != 0
    assert it.executed == []


def test_a_digest_or_a_prefix_of_a_token_is_refused():
    it, _, _, nodes = installed()
    token = nodes.tokens[12]
    for wrong in (token[:-1], token + "0", sha(token), token.upper()):
        assert it.invoke_script(NAME, {"token": wrong})["result"] != 0
    assert it.executed == []


def test_the_token_of_another_environment_runs_nothing():
    it, _, _, _ = installed("env-7")
    other, _, _, other_nodes = installed("env-8")
    for token in other_nodes.tokens.values():
        assert it.invoke_script(NAME, {"token": token})["result"] != 0
    assert it.executed == []
    assert other.invoke_script("env-8-sqldb-dbtls-renew", {"token": other_nodes.tokens[11]})["result"] == 0


def test_a_schedule_again_keeps_the_nodes_tokens_and_a_node_that_lost_its_own_gets_a_new_one():
    """A redeploy (or scale-out) runs renewSchedule again: the nodes that kept their token stay
    valid, a node whose token went (here 12) draws a new one, and its old one runs nothing."""
    it, _, addon, nodes = installed()
    before = dict(nodes.tokens)
    del nodes.tokens[12]
    assert it.call(addon, "renewSchedule").ok
    assert nodes.tokens[11] == before[11] and nodes.tokens[13] == before[13] and nodes.tokens[12] != before[12]
    assert sorted(digests_of(it)) == sorted(sha(t) for t in nodes.tokens.values())
    assert it.invoke_script(NAME, {"token": before[12]})["result"] != 0
    for node in (11, 12, 13):
        assert it.invoke_script(NAME, {"token": nodes.tokens[node]})["result"] == 0, node
    assert len(it.executed) == 3


@pytest.mark.parametrize("answer", ["", "out12", '{"token_sha256": "abc"}', '{"token_sha256": "' + "A" * 64 + '"}',
                                    '{"token_sha256": "' + "0" * 64 + "'+x+'" + '"}', "{}", "[1]",
                                    '{"token_sha256": "' + "0" * 63 + '\\u0027"}'])
def test_a_node_that_answers_no_digest_fails_the_run_naming_it(answer):
    nodes = Nodes()

    def reply(node: Node, text: str) -> CmdResult:
        if node.id == 12 and "renew install" in text:
            return CmdResult(0, answer)
        return nodes.reply(node, text)

    it = interp(FakeRunner(reply))
    addon = it.load(build_manifest("0" * 64), node_group="sqldb")
    result = it.call(addon, "renewSchedule")
    assert not result.ok
    assert "node 12 did not answer the SHA-256 of its token" in (result.error or ""), result.error
    assert it.platform.scripts == {}


def test_uninstall_removes_the_script_and_the_nodes_files():
    it, runner, addon, nodes = installed()
    result = it.call(addon, "renewUnschedule")
    assert result.ok, result.error
    assert it.platform.scripts == {}
    removed = sorted(node for node, text, _, _ in runner.calls if "renew remove" in text)
    assert removed == [11, 12, 13] and nodes.tokens == {}
    assert it.invoke_script(NAME, {"token": "x" * 64})["result"] != 0


def test_lifecycle_handlers_schedule_and_unschedule():
    m = build_manifest("0" * 64)
    assert m["onInstall"].index("renewSchedule") > m["onInstall"].index("enableLayer")
    assert m["onUninstall"][0] == "renewUnschedule"
    assert "renewSchedule" in m["actions"]["afterRedeploy"]
    scale_out = next(v for k, v in m.items() if k.startswith("onAfterServiceScaleOut"))
    assert "renewSchedule" in scale_out


def test_reading_execute_actions_answer_inside_a_script_is_not_simulated():
    from dbtls.jps import UnsupportedFeature
    from dbtls.jps.jsengine import run_script

    it, _, _, _ = installed()
    code = ("var r = api.marketplace.installation.ExecuteAction({appid: appid, session: session, "
            "appUniqueName: 'dbtls-sqldb-1', action: 'renew'}); return {result: r.result};")
    with pytest.raises(UnsupportedFeature):
        run_script(code, manifest={}, envs=it.envs, platform=it.platform, apps=it.installed_apps())


def test_create_script_refuses_a_duplicate_and_bad_arguments():
    from dbtls.jps.jsengine import ScriptFailure, run_script

    it, _, _, _ = installed()
    dup = f"return api.dev.scripting.CreateScript(appid, session, '{NAME}', 'js', 'return 1;');"
    assert run_script(dup, manifest={}, envs=it.envs, platform=it.platform).value["result"] != 0
    with pytest.raises(ScriptFailure):
        run_script("return api.dev.scripting.CreateScript(appid, session, 'x', 'js');", manifest={}, envs=it.envs,
                   platform=it.platform)
    other = "return api.dev.scripting.DeleteScript('someone-else', session, 'x');"
    assert run_script(other, manifest={}, envs=it.envs, platform=it.platform).value["result"] != 0


def test_message_digest_is_sha256_only_and_strict():
    """The simulated java.security.MessageDigest: SHA-256 as Python computes it, a Java byte[]
    (signed elements, ``length``, nothing else); any other algorithm, overload or method is not
    simulated."""
    from dbtls.jps import UnsupportedFeature
    from dbtls.jps.jsengine import run_script

    it, _, _, _ = installed()
    inputs = ["", "abc", "a" * 55, "a" * 56, "a" * 64, "b" * 119, secrets.token_hex(32), "x" * 1000]
    code = ("return " + json.dumps(inputs) + ".map(function (s) {\n"
            "  var md = java.security.MessageDigest.getInstance('SHA-256');\n"
            "  for (var i = 0; i < s.length; i++) md.update(s.charCodeAt(i));\n"
            "  var raw = md.digest(), out = [];\n"
            "  for (var j = 0; j < raw.length; j++) out.push(raw[j]);\n"
            "  return out;\n"
            "});")
    value = run_script(code, manifest={}, envs=it.envs, platform=it.platform).value
    for text, signed in zip(inputs, value, strict=True):
        assert bytes(b & 0xFF for b in signed) == hashlib.sha256(text.encode()).digest(), text
        assert min(signed) >= -128 and max(signed) <= 127
    md = "var md = java.security.MessageDigest.getInstance('SHA-256'); "
    for bad in ["java.security.MessageDigest.getInstance('MD5')", "java.security.MessageDigest.getInstance('sha-256')",
                "java.security.MessageDigest.getInstance('SHA-256', 'SUN')", md + "md.update(200)",
                md + "md.update('a')", md + "md.update([1, 2])", md + "md.reset()", md + "md.digest([1])",
                md + "md.digest().map(function (x) { return x; })", md + "md.digest().join('')",
                "new java.security.SecureRandom()"]:
        with pytest.raises(UnsupportedFeature):
            run_script(bad + ";", manifest={}, envs=it.envs, platform=it.platform)


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")
def test_the_node_script_hands_only_the_url_to_the_agent_on_stdin(tmp_path: Path):
    """The node script run under strace: the URL reaches the agent on stdin, not in any argv."""
    url = "https://app.platform.example/env-7-sqldb-dbtls-renew?appid=abc"
    fake = tmp_path / "agent"
    fake.write_text(f"#!/bin/bash\ncat > {tmp_path}/stdin\necho '{{\"token_sha256\": \"x\"}}'\n")
    fake.chmod(0o755)
    text = shell._TEMPLATES.get_template("renew_install.sh.j2").render(agent=str(fake)).strip()
    b64 = {"renewUrl": base64.b64encode(url.encode()).decode()}
    text = re.sub(r"\$\{globals\.(\w+)\.toBase64\(\)\}", lambda m: b64[m.group(1)], text)
    trace = tmp_path / "trace"
    proc = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o", str(trace), "bash", "-s"],
                          input=text, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip("ptrace not permitted here")
    assert proc.returncode == 0, proc.stderr
    calls = trace.read_text()
    assert "execve(" in calls and str(fake) in calls
    assert b64["renewUrl"] not in calls
    assert (tmp_path / "stdin").read_text().split() == [f"url={b64['renewUrl']}"]
    assert json.loads(proc.stdout) == {"token_sha256": "x"}  # the agent's answer is the node's output


def test_a_scale_out_gives_the_new_node_the_cron_job_and_the_script_its_digest():
    """onAfterServiceScaleOut: after the new node is enabled, the layer is scheduled again; the new
    node is among the nodes that run ``renew install``, the old nodes keep their tokens, and the
    platform script holds the digests of all three."""
    from dbtls.jps import Environment, User

    nodes = Nodes()

    def reply(node: Node, text: str) -> CmdResult:
        if "ca sign --from-manifest" in text:
            return CmdResult(0, '{"certificates":[],"roots":[]}\n')
        if "csr --bundle" in text:
            return CmdResult(0, "{}\n")
        if "printf yes" in text:
            return CmdResult(0, "yes")
        if "renew " in text:
            return nodes.reply(node, text)
        return CmdResult(0, "")

    runner = FakeRunner(reply)
    env = Environment("env-6", "env-6.example.org", [
        Node(11, "sqldb", "postgres15", True, "10.0.0.11"), Node(12, "sqldb", "postgres15", False, "10.0.0.12")])
    it = Interpreter(env, runner, user=User(), sleep=lambda s: None, seed=1)
    addon = it.load(build_manifest("0" * 64), node_group="sqldb")
    it.addons = [addon]
    assert it.call(addon, "renewSchedule").ok
    before = dict(nodes.tokens)
    new = env.add(Node(13, "sqldb", "postgres15", False, "10.0.0.13"))
    runner.calls.clear()
    fired = it.fire_all("onAfterServiceScaleOut", params={"nodeGroup": "sqldb"}, response={"nodes": [new]})
    assert [r.ok for _, r in fired] == [True], [r.error for _, r in fired]
    assert sorted(node for node, text, _, _ in runner.calls if "renew install" in text) == [11, 12, 13]
    assert {k: nodes.tokens[k] for k in before} == before and 13 in nodes.tokens
    assert list(it.platform.scripts) == ["env-6-sqldb-dbtls-renew"]
    code = it.platform.scripts["env-6-sqldb-dbtls-renew"]["code"]
    assert all(sha(t) in code for t in nodes.tokens.values())


def test_a_refused_platform_script_leaves_tls_alone_and_says_there_is_no_daily_check():
    """CreateScript answering an error (here: a name the platform refuses) is not an install
    failure: every node's token and cron job go again (``renew remove`` after ``renew install``),
    and the run says the daily check is missing."""
    nodes = Nodes()
    runner = FakeRunner(nodes.reply)
    it = interp(runner, env=make_env("env 7"))
    addon = it.load(build_manifest("0" * 64), node_group="sqldb")
    result = it.call(addon, "renewSchedule")
    assert result.ok, result.error
    assert it.platform.scripts == {}
    for node in (11, 12, 13):
        steps = [t for t in runner.scripts(node) if "renew install" in t or "renew remove" in t]
        assert ["renew install" in steps[0], "renew remove" in steps[-1]] == [True, True], node
    assert nodes.tokens == {}
    assert any("No daily renewal check" in line and "CreateScript" in line for line in result.log), result.log
