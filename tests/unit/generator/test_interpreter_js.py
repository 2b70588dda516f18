"""``script`` actions and ``onBeforeInit`` in QuickJS, against mocked GetEnvs."""

from __future__ import annotations

import pytest
from jps_fakes import FakeRunner, interp, make_env, manifest

from dbtls.jps import Environment, ManifestError, Node, UnsupportedFeature

#: A launcher of our own, shaped like marketplace/postgres-ssl.jps and the upstream onBeforeInit.js.
LAUNCHER = """
type: install
id: launcher
name: Launcher
onBeforeInit: |
  var dbTypes = ["postgresql", "postgres15", "postgres16"], proxyTypes = ["pgpool2"];
  var resp = jelastic.env.control.GetEnvs();
  if (resp.result != 0) return resp;
  var envs = {}, groups = {}, found = false;
  for (var i = 0; i < resp.infos.length; i++) {
    var info = resp.infos[i], layers = {}, hasDb = false;
    if (info.env.status != 1) continue;
    for (var j = 0; j < info.nodes.length; j++) {
      var n = info.nodes[j];
      if (dbTypes.indexOf(n.nodeType) > -1 && n.version.split(".")[0] > 10) {
        layers[n.nodeGroup] = n.name + " (" + n.nodeGroup + ")"; hasDb = true;
      }
      if (proxyTypes.indexOf(n.nodeType) > -1) layers[n.nodeGroup] = n.name + " (" + n.nodeGroup + ")";
    }
    if (!hasDb) continue;
    found = true;
    envs[info.env.envName] = info.env.displayName || info.env.envName;
    groups[info.env.envName] = [];
    for (var g in layers) groups[info.env.envName].push({value: g, caption: layers[g]});
  }
  if (!found) return {result: 0, settings: {fields: [{type: "displayfield", caption: "none"}]}};
  jps.settings.fields[0].values = envs;
  jps.settings.fields[0].value = Object.keys(envs)[0];
  jps.settings.fields[1].dependsOn = {envName: groups};
  return {result: 0, settings: jps.settings};
settings:
  fields:
    - {type: list, name: envName, caption: Environment, required: true, values: {}}
    - {type: list, name: nodeGroups, caption: Layers, multiSelect: true, dependsOn: {envName: {}}}
onInstall:
  - log: ${settings.envName} ${settings.nodeGroups}
"""


def _envs() -> list[Environment]:
    stopped = Environment("env-off", "env-off.example.org", [Node(31, "sqldb", "postgres15", True, version="15.2")],
                          status=2)
    maria = Environment("env-maria", "env-maria.example.org",
                        [Node(41, "sqldb", "mariadb-dockerized", True, version="10.11")])
    return [make_env(), stopped, maria]


def test_launcher_on_before_init_fills_the_pickers_from_get_envs() -> None:
    it = interp(envs=_envs())
    addon = it.load(LAUNCHER)
    env_field, layer_field = addon.manifest["settings"]["fields"]
    assert env_field["values"] == {"env-7": "env-7"}
    assert layer_field["dependsOn"] == {"envName": {"env-7": [
        {"value": "sqldb", "caption": "PostgreSQL 15 (sqldb)"},
        {"value": "pgpool", "caption": "Pgpool-II (pgpool)"}]}}
    assert addon.settings == {"envName": "env-7"}  # the script chose the default value
    _, result = it.install(LAUNCHER, settings={"nodeGroups": "sqldb,pgpool"})
    assert result.ok and result.log == ["env-7 sqldb,pgpool"]


def test_launcher_without_a_matching_environment() -> None:
    addon = interp(envs=_envs()[1:]).load(LAUNCHER)
    assert addon.manifest["settings"] == {"fields": [{"type": "displayfield", "caption": "none"}]}


def test_on_before_init_failure_and_untouchable_keys() -> None:
    bad = "type: update\nname: N\nonBeforeInit: |\n  return {result: 11041, message: 'no'};\nonInstall: []\n"
    with pytest.raises(ManifestError, match="11041"):
        interp().load(bad)
    keep = ("type: update\nname: N\nonBeforeInit: |\n  jps.name = 'X'; jps.globals = {a: 1};\n  return jps;\n"
            "onInstall:\n  - log: ${globals.a}\n")
    addon, result = interp().install(keep)
    assert addon.manifest["name"] == "N" and result.log == ["1"]


def test_script_result_becomes_the_response_and_placeholders_are_rendered_first() -> None:
    runner = FakeRunner()
    body = ("  - script: |\n"
            "      var r = jelastic.env.control.GetEnvs();\n"
            "      var ids = r.infos[0].nodes.map(function (n) { return n.id; });\n"
            "      return {result: 0, ids: ids.join(','), env: '${env.envName}', name: MANIFEST.name,\n"
            "              json: toJSON({a: 1}), p: '${this.greeting}'};\n"
            "    params: {greeting: hi}\n"
            "  - cmd[11]: echo ${response.ids} ${response.env} ${response.name} ${response.json} ${response.p}\n"
            "    user: root\n")
    _, result = interp(runner).install(manifest(body))
    assert result.ok, result.error
    assert runner.calls[0][1] == 'echo 11,12,13,21 env-7 T {"a":1} hi'


@pytest.mark.parametrize(("code", "error"), [
    ("return {result: 4109, message: 'bad'};", "bad"),
    ("return 'Hello World!';", "Hello World!"),
    ("throw new Error('boom');", "script failed: Error: boom"),
])
def test_script_failures_stop_the_handler(code: str, error: str) -> None:
    _, result = interp().install(manifest(f"  - script: \"{code}\"\n  - log: never\n"))
    assert not result.ok and result.error == error and result.log == []


@pytest.mark.parametrize("code", [
    "return jelastic.env.control.GetEnvInfo('x', session);",
    "return {result: 0, v: java.lang.System.getenv('HOME')};",
    "return api.env.file.Read({});",
    # ``session``, ``appid`` and ``signature`` are simulated globals now (jps-semantics.md, "Platform
    # API in scripts"); hivext's own client library is not.
    "return {result: 0, s: hivext.local.GetParam('x')};",
    "return api.dev.scripting.GetScript(appid, session, 'x');",
    "jelastic.env.control.GetEnvs = null; return {result: 0};",
])
def test_anything_else_the_js_touches_is_not_simulated(code: str) -> None:
    with pytest.raises(UnsupportedFeature, match="not simulated|not defined"):
        interp().install(manifest(f"  - script: \"{code}\"\n"))


def test_on_after_clone_reinstalls_itself_from_manifest() -> None:
    extra = ("onAfterClone:\n  - script: 'return {result: 0, jps: MANIFEST};'\n"
             "  - install:\n      jps: ${response.jps}\n      nodeGroup: ${targetNodes.nodeGroup}\n")
    it = interp()
    addon, _ = it.install(manifest("  - log: installed ${targetNodes.nodeGroup}\n", extra), node_group="sqldb")
    cloned = it.fire(addon, "onAfterClone", response={"env": {"envName": "env-7"}})
    assert cloned is not None and cloned.ok and cloned.log == ["installed sqldb"]
    assert [a.label for a in it.addons] == ["t@sqldb", "t@sqldb"]
