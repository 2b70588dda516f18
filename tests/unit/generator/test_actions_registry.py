"""The custom actions come from one builder each, registered in manifest order."""

from __future__ import annotations

import pytest

from dbtls.addon import actions


def test_actions_keep_their_registration_order_and_the_agent_pin():
    built = actions.custom_actions("f" * 64)
    names = list(built)
    assert names[:3] == ["checkSupported", "fetchAgent", "saveOptions"]
    assert names[-1] == "passwordReset"
    assert len(names) == len(set(names)) == len(actions._ACTIONS)
    assert "f" * 64 in built["fetchAgent"][0]["cmd[${this}]"]


def test_an_action_name_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        actions.action("report")(lambda: [])
