"""The renewal trigger's manifest side: the platform script, its token, the node scripts, uninstall.

The manifest runs in the interpreter against fake nodes; the platform API calls it makes are the
simulation's (jps/platformapi.py). The add-on's ``renew`` action is another part's work: these
tests give the installation a stand-in ``renew`` that only logs, to see it run.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from jps_fakes import FakeRunner, interp

from dbtls.addon import shell
from dbtls.addon.manifest import build_manifest
from dbtls.jps import Interpreter
from dbtls.jps.platformapi import url_name

NAME = "env-7-sqldb-dbtls-renew"


def installed() -> tuple[Interpreter, FakeRunner, object]:
    runner = FakeRunner()
    it = interp(runner)
    addon = it.load(build_manifest("0" * 64), node_group="sqldb")
    addon.actions["renew"] = [{"log": "renew ran"}]
    addon.unique_name = "dbtls-sqldb-1"
    it.addons.append(addon)
    result = it.call(addon, "renewSchedule")
    assert result.ok, result.error
    return it, runner, addon


def token_of(it: Interpreter) -> str:
    m = re.search(r"var expected = '([A-Za-z0-9]+)';", it.platform.scripts[NAME]["code"])
    assert m
    return m.group(1)


def test_one_platform_script_per_installation_served_at_its_name():
    it, _, _ = installed()
    assert list(it.platform.scripts) == [NAME]
    script = it.platform.scripts[NAME]
    assert script["type"] == "js" and script["appid"] == it.env.appid
    assert url_name(script["code"]) == NAME
    assert len(token_of(it)) >= 64


def test_each_schedule_draws_a_new_token_and_replaces_the_script():
    it, _, addon = installed()
    first = token_of(it)
    assert it.call(addon, "renewSchedule").ok
    assert list(it.platform.scripts) == [NAME] and token_of(it) != first


def test_the_token_reaches_every_node_of_the_layer_on_stdin_only():
    it, runner, _ = installed()
    token = token_of(it)
    b64 = base64.b64encode(token.encode()).decode()
    scripts = [(node, text) for node, text, _, _ in runner.calls if "renew install" in text]
    assert sorted(node for node, _ in scripts) == [11, 12, 13]
    for _, text in scripts:
        assert token not in text and f"'{b64}'" in text
        assert "| $A renew install --from-manifest" in text


def test_the_token_is_in_no_step_detail_output_or_log():
    it, _, addon = installed()
    token = token_of(it)
    result = it.call(addon, "renewSchedule")
    token = token_of(it)
    for step in result.steps:
        assert token not in (step.detail or "") + (step.out or "") + (step.err or ""), step.action
    assert all(token not in line for line in result.log)


def test_the_right_token_runs_renew_once_whatever_else_is_sent():
    it, _, addon = installed()
    answer = it.invoke_script(NAME, {"token": token_of(it), "action": "uninstall", "appUniqueName": "x"})
    assert answer["result"] == 0, answer
    assert [(a.unique_name, action) for a, action, _ in it.executed] == [("dbtls-sqldb-1", "renew")]
    assert it.executed[0][2].log == ["renew ran"]


@pytest.mark.parametrize("params", [{}, {"token": ""}, {"token": "x" * 64}, {"session": "s"}])
def test_a_wrong_or_missing_token_runs_nothing(params):
    it, _, _ = installed()
    answer = it.invoke_script(NAME, params)
    assert answer["result"] != 0
    assert it.executed == []


def test_a_prefix_of_the_token_is_refused():
    it, _, _ = installed()
    assert it.invoke_script(NAME, {"token": token_of(it)[:-1]})["result"] != 0
    assert it.executed == []


def test_uninstall_removes_the_script_and_the_nodes_files():
    it, runner, addon = installed()
    result = it.call(addon, "renewUnschedule")
    assert result.ok, result.error
    assert it.platform.scripts == {}
    removed = sorted(node for node, text, _, _ in runner.calls if "renew remove" in text)
    assert removed == [11, 12, 13]
    assert it.invoke_script(NAME, {"token": "x"})["result"] != 0


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

    it, _, _ = installed()
    code = ("var r = api.marketplace.installation.ExecuteAction({appid: appid, session: session, "
            "appUniqueName: 'dbtls-sqldb-1', action: 'renew'}); return {result: r.result};")
    with pytest.raises(UnsupportedFeature):
        run_script(code, manifest={}, envs=it.envs, platform=it.platform, apps=it.installed_apps())


def test_create_script_refuses_a_duplicate_and_bad_arguments():
    from dbtls.jps.jsengine import ScriptFailure, run_script

    it, _, _ = installed()
    dup = f"return api.dev.scripting.CreateScript(appid, session, '{NAME}', 'js', 'return 1;');"
    assert run_script(dup, manifest={}, envs=it.envs, platform=it.platform).value["result"] != 0
    with pytest.raises(ScriptFailure):
        run_script("return api.dev.scripting.CreateScript(appid, session, 'x', 'js');", manifest={}, envs=it.envs,
                   platform=it.platform)
    other = "return api.dev.scripting.DeleteScript('someone-else', session, 'x');"
    assert run_script(other, manifest={}, envs=it.envs, platform=it.platform).value["result"] != 0


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")
def test_no_process_gets_the_token_in_its_argv(tmp_path: Path):
    """The node script run under strace: no execve carries the token or its base64."""
    token = "Ab9" * 22
    url = "https://app.platform.example/env-7-sqldb-dbtls-renew?appid=abc"
    fake = tmp_path / "agent"
    fake.write_text(f"#!/bin/bash\ncat > {tmp_path}/stdin\n")
    fake.chmod(0o755)
    text = shell._TEMPLATES.get_template("renew_install.sh.j2").render(agent=str(fake)).strip()
    b64 = {"renewToken": base64.b64encode(token.encode()).decode(), "renewUrl": base64.b64encode(url.encode()).decode()}
    text = re.sub(r"\$\{globals\.(\w+)\.toBase64\(\)\}", lambda m: b64[m.group(1)], text)
    trace = tmp_path / "trace"
    proc = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o", str(trace), "bash", "-s"],
                          input=text, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip("ptrace not permitted here")
    assert proc.returncode == 0, proc.stderr
    calls = trace.read_text()
    assert "execve(" in calls and str(fake) in calls
    assert token not in calls and b64["renewToken"] not in calls
    assert (tmp_path / "stdin").read_text().split() == [f"token={b64['renewToken']}", f"url={b64['renewUrl']}"]


def test_a_scale_out_gives_the_new_node_the_cron_job_and_every_node_the_new_token():
    """onAfterServiceScaleOut: after the new node is enabled, the layer is scheduled again; the new
    node is among the nodes that receive ``renew install``, and one new token goes to all of them."""
    from dbtls.jps import CmdResult, Environment, Node, User
    from dbtls.jps.cmdwrap import unwrap

    renewed: list[tuple[int, str]] = []

    class Runner:
        def run(self, node, command_b64, user):
            text, _ = unwrap(command_b64)
            if "renew install" in text:
                renewed.append((node.id, re.search(r"b64 '([A-Za-z0-9+/=]+)'", text).group(1)))
            if "ca sign --from-manifest" in text:
                return CmdResult(0, '{"certificates":[],"roots":[]}\n')
            if "csr --bundle" in text:
                return CmdResult(0, "{}\n")
            if "printf yes" in text:
                return CmdResult(0, "yes")
            return CmdResult(0, "")

    env = Environment("env-6", "env-6.example.org", [
        Node(11, "sqldb", "postgres15", True, "10.0.0.11"), Node(12, "sqldb", "postgres15", False, "10.0.0.12")])
    it = Interpreter(env, Runner(), user=User(), sleep=lambda s: None, seed=1)
    addon = it.load(build_manifest("0" * 64), node_group="sqldb")
    it.addons = [addon]
    new = env.add(Node(13, "sqldb", "postgres15", False, "10.0.0.13"))
    fired = it.fire_all("onAfterServiceScaleOut", params={"nodeGroup": "sqldb"}, response={"nodes": [new]})
    assert [r.ok for _, r in fired] == [True], [r.error for _, r in fired]
    assert sorted(node for node, _ in renewed) == [11, 12, 13]
    assert len({token for _, token in renewed}) == 1
    assert list(it.platform.scripts) == ["env-6-sqldb-dbtls-renew"]


def test_a_refused_platform_script_leaves_tls_alone_and_says_there_is_no_daily_check():
    """CreateScript answering an error (here: a name the platform refuses) is not an install
    failure: no node gets a token or cron job, and the run says the daily check is missing."""
    from jps_fakes import make_env

    runner = FakeRunner()
    it = interp(runner, env=make_env("env 7"))
    addon = it.load(build_manifest("0" * 64), node_group="sqldb")
    result = it.call(addon, "renewSchedule")
    assert result.ok, result.error
    assert it.platform.scripts == {}
    assert not any("renew install" in text for _, text, _, _ in runner.calls)
    assert any("No daily renewal check" in line and "CreateScript" in line for line in result.log), result.log
