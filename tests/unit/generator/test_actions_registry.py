"""The custom actions come from one builder each, registered in manifest order."""

from __future__ import annotations

import pytest

from dbtls.addon import actions


def test_actions_keep_their_registration_order_and_the_agent_pin():
    built = actions.custom_actions("f" * 64)
    names = list(built)
    assert names[:5] == ["checkSupported", "fetchAgent", "fetchAgentEverywhere", "fetchAgentForRotation",
                         "saveOptions"]
    assert names[-1] == "passwordReset"
    assert len(names) == len(set(names)) == len(actions._ACTIONS)
    assert "f" * 64 in built["fetchAgent"][0]["cmd[${this}]"]


def _cmds(items):
    """Every ``cmd[...]`` key and its script in a nested action list, in order."""
    for item in items:
        if isinstance(item, dict):
            for key, value in item.items():
                if key.startswith("cmd["):
                    yield key, value
                elif isinstance(value, list):
                    yield from _cmds(value)


def _steps(items):
    """Every custom-action call ``{name: argument}`` in a nested action list, in order."""
    for item in items:
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(value, list):
                    yield from _steps(value)
                elif not key.startswith(("cmd[", "setGlobals")):
                    yield key, value


def test_fetching_everywhere_is_one_pinned_call_per_branch_on_every_present_layer():
    built = actions.custom_actions("f" * 64)
    for name in ("fetchAgentEverywhere", "fetchAgentForRotation"):
        fetches = [arg for step, arg in _steps(built[name]) if step == "fetchAgent"]
        # one branch per combination of proxy layers, each one multi-layer fetch (the pinned action)
        assert sorted(fetches) == sorted(["sqldb,pgpool,proxy", "sqldb,pgpool", "sqldb,proxy", "sqldb"]), name
    [(selector, script)] = list(_cmds(built["fetchAgent"]))
    assert selector == "cmd[${this}]" and "want=" + "f" * 64 in script and "sha256sum -c" in script


def test_no_step_after_the_start_of_an_operation_fetches_the_agent_again():
    built = actions.custom_actions("f" * 64)
    starters = {"checkSupported", "fetchAgent", "fetchAgentEverywhere", "fetchAgentForRotation", "reissue",
                "renew", "checkTls", "addNodes", "afterRedeploy", "disableLayer", "passwordReset"}
    for name, items in built.items():
        if name not in starters:
            assert "fetchAgent" not in repr(items), name


def test_an_action_name_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        actions.action("report")(lambda: [])


def test_a_database_node_waits_for_its_replication_in_its_report_call():
    built = actions.custom_actions("f" * 64)
    on_sqldb, elsewhere = built["settledReport"]
    scripts = [v for _, v in _cmds([on_sqldb])]
    assert len(scripts) == 1
    assert scripts[0].index("replication wait") < scripts[0].index("status-line")
    assert elsewhere == {"else": ["replicationBack", "report"]}
    assert [k for k, _ in _cmds(built["replicationBack"])] == ["cmd[sqldb]"]
