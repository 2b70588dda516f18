"""The static platform-call counter used on the upstream add-ons (bench/jpscount.py)."""

from __future__ import annotations

import pytest
import yaml

from bench import jpscount

LAYERS = {"sqldb": 2, "pgpool": 1}

LOGIC = yaml.safe_load("""
type: update
onInstall:
  - cmd[${targetNodes.nodeGroup}]: echo layer
  - setGlobals: {a: 1}
  - forEach(nodes.${targetNodes.nodeGroup}):
      - cmd[${@i.id}]: echo one
      - log: engine-local
  - if ('${targetNodes.nodeGroup}'.indexOf('sqldb') > -1):
      - twice
  - if (nodes.pgpool):
      - env.control.AddContainerEnvVars[${targetNodes.nodeGroup}]: {vars: {}}
  - if (nodes.${targetNodes.nodeGroup}.length > 1):
      - restartNodes: {nodeGroup: '${targetNodes.nodeGroup}'}
onUninstall:
  - cmd[${targetNodes.nodeGroup}]: undo
  - stopEvent: {type: warning, message: stop}
  - cmd[${targetNodes.nodeGroup}]: never reached
actions:
  twice:
    - script: 'return {result: 0}'
    - cmd[${targetNodes.nodeGroup}]: again
""")


def test_counts_per_layer_with_loops_conditions_and_custom_actions() -> None:
    db = jpscount.count(LOGIC, "onInstall", "sqldb", LAYERS)
    # layer cmd + 2 loop cmds + twice (script, cmd) + API method + restartNodes
    assert db.calls == 7
    assert db.by_kind == {"cmd": 4, "script": 1, "env.control.AddContainerEnvVars": 1, "restartNodes": 1}
    assert db.by_handler == {"onInstall": 5, "twice": 2}
    proxy = jpscount.count(LOGIC, "onInstall", "pgpool", LAYERS)
    assert proxy.calls == 3  # layer cmd + 1 loop cmd + API method


def test_a_button_is_its_custom_action_and_stop_event_ends_the_handler() -> None:
    assert jpscount.count(LOGIC, "twice", "sqldb", LAYERS).calls == 2
    assert jpscount.count(LOGIC, "onUninstall", "sqldb", LAYERS).calls == 1


def test_nested_install_is_one_call_per_layer_plus_the_nested_on_install() -> None:
    top = yaml.safe_load("onInstall:\n  - install [${settings.nodeGroups}]:\n      jps: logic.jps?_r=1\n")
    got = jpscount.count(top, "onInstall", "", LAYERS, settings={"nodeGroups": "sqldb,pgpool"},
                         resolve=lambda ref: LOGIC)
    assert got.by_kind["install"] == 2 and got.calls == 2 + 7 + 3


def test_an_unevaluable_condition_must_be_assumed() -> None:
    body = yaml.safe_load("onInstall:\n  - if (${globals.x} == 1):\n      - cmd[sqldb]: a\n")
    with pytest.raises(jpscount.CountError, match="give it in assume"):
        jpscount.count(body, "onInstall", "sqldb", LAYERS)
    assert jpscount.count(body, "onInstall", "sqldb", LAYERS, assume={"${globals.x} == 1": True}).calls == 1


def test_table_adds_the_launcher_to_our_install_and_models_both_sides() -> None:
    from bench import platformcalls

    ours = {"pg-cluster": {"ops": {"uninstall": {"sequential": 4, "wall": 2.0},
                                   "install": {"sequential": 10, "wall": 5.0}}}}
    upstream = {"pg-cluster": {"ops": {"install": {"calls": 30}}}}
    rows = platformcalls.table(ours, upstream, {"pg-cluster": 3}).splitlines()
    assert rows[2] == "| pg-cluster | install | 13 | 5.0 | 11.5 | 18.0 | 31.0 | 30 | 15.0 | 30.0 | 60.0 |"
    assert rows[3] == "| pg-cluster | uninstall | 4 | 2.0 | 4.0 | 6.0 | 10.0 | - | - | - | - |"
