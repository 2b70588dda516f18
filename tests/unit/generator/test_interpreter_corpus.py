"""The passing corpus manifests run end to end in the interpreter (fake nodes)."""

from __future__ import annotations

import base64
from pathlib import Path

from jps_fakes import FakeRunner, interp

from dbtls.jps import CmdResult, Node

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "jps" / "passing"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_corpus_add_on_runs_end_to_end() -> None:
    """Install, scale-out event, button with its form, menu, event, uninstall."""
    def reply(node: Node, script: str) -> CmdResult:
        if " csr " in f" {script} ":
            return CmdResult(0, f"CSR{node.id}\n")
        if "ca sign" in script:
            return CmdResult(0, "BUNDLE\n")
        if "status" in script:
            return CmdResult(0, "TLS on\n")
        return CmdResult(0, "")

    runner = FakeRunner(reply)
    it = interp(runner)
    addon, result = it.install(CORPUS / "pg-logic.jps", node_group="sqldb")
    assert result.ok, result.error
    assert result.message is not None and result.message.startswith("TLS is on for sqldb in env-7")
    assert f"/usr/local/sbin/dbtls-agent install-certs --bundle-b64 '{b64('BUNDLE' + chr(10))}'" in runner.scripts(13)
    assert f"/usr/local/sbin/dbtls-agent ca sign --csr-b64 '{b64('CSR13' + chr(10))}'" in runner.scripts(11)
    assert f'"{CORPUS}/node-scripts/dist/dbtls-agent.pyz?_r=' in runner.scripts(12)[0]  # ${baseUrl}: the folder
    new = it.env.add(Node(14, "sqldb", "postgres15", False, "10.0.0.14"))
    scaled = it.fire(addon, "onAfterServiceScaleOut", params={"nodeGroup": "sqldb"}, response={"nodes": [new]})
    assert scaled is not None and scaled.ok, scaled and scaled.error
    assert runner.scripts(14)[-1] == "/usr/local/sbin/dbtls-agent enable --layer sqldb"
    button = it.click(addon, "Re-issue certificates", {"newCa": True})
    assert button.ok and button.message == "Certificates re-issued."
    assert runner.calls[-1][1] == f"/usr/local/sbin/dbtls-agent reissue --server --new-ca-b64={b64('true')}"
    assert it.click(addon, "Configuration Tutorial").message == "https://example.com/dbtls/tutorial"
    status = it.click(addon, "Status")
    assert status.ok and status.message == "TLS on\n"
    reset = it.fire(addon, "onAfterResetServicePassword", params={"nodeGroup": "sqldb"})
    assert reset is not None and reset.ok
    redeploy = it.fire(addon, "onAfterRedeployContainer", params={"nodeGroup": "sqldb", "useExistingVolumes": False})
    assert redeploy is not None and redeploy.ok and len(redeploy.cmd_steps()) == 8
    assert it.uninstall(addon).ok


def test_corpus_launcher_runs_its_on_before_init_and_installs_per_layer() -> None:
    def fetch(ref: str, base: str | None) -> tuple[str, str]:
        name = "pg-logic.jps" if ref.startswith("logic.jps") else ref
        return (CORPUS / name).read_text(), str(CORPUS / name)

    runner = FakeRunner()
    it = interp(runner, fetch=fetch)
    addon = it.load(CORPUS / "launcher.jps")
    assert addon.manifest["settings"]["fields"][0]["values"] == [{"value": "env-7", "caption": "env-7 (env-7)"}]
    assert addon.settings["envName"] == "env-7"
    _, result = it.install(CORPUS / "launcher.jps", settings={"nodeGroups": "sqldb"})
    assert result.ok, result.error
    assert [a.label for a in it.addons] == ["dbtls@sqldb", "dbtls-launcher@-"]


def test_corpus_mysql_add_on_clones_itself_with_a_script() -> None:
    detected = '{"tls": true}'
    runner = FakeRunner(lambda n, s: CmdResult(0, detected))
    it = interp(runner)
    addon, result = it.install(CORPUS / "mysql-proxysql.jps", node_group="sqldb")
    assert result.ok, result.error
    # setGlobals kept the cmd output as base64; the cmd gets that value base64-encoded once more
    assert runner.calls[-1][1] == f"/usr/local/sbin/dbtls-agent enable --role-b64 '{b64(b64(detected))}'"
    cloned = it.fire(addon, "onAfterClone", response={"env": {"envName": "env-7"}})
    assert cloned is not None and cloned.ok, cloned and cloned.error
    assert [a.label for a in it.addons] == ["dbtls-mysql@sqldb", "dbtls-mysql@sqldb"]
    check = it.click(addon, "Check")
    assert check.ok and check.message == "TLS OK"
    stop = it.fire(addon, "onBeforeScaleIn", params={"nodeGroup": "sqldb", "count": 2})
    assert stop is not None and stop.stopped
    assert it.fire(addon, "onBeforeScaleIn", params={"nodeGroup": "sqldb", "count": 1}) is not None
