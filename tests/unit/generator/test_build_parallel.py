"""The manifest handles a layer's nodes in parallel (issue 7: install time T(8)/T(1))."""

from __future__ import annotations

import json

from dbtls.build import shell
from dbtls.build.actions import CA_NODE, custom_actions


def _cmds(items):
    """(selector, script) of every cmd in an action list, nested ifs and loops included."""
    for item in items if isinstance(items, list) else [items]:
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if key.startswith("cmd["):
                yield key[4:-1], value
            elif isinstance(value, list):
                yield from _cmds(value)


def test_issue_is_one_csr_one_sign_one_install_per_call():
    actions = custom_actions()
    for name in ("issueNode", "reissueNode"):
        cmds = list(_cmds(actions[name]))
        assert [sel for sel, _ in cmds[:3]] == ["${this.nodeId}", CA_NODE, "${this.nodeId}"]
        assert "csr --kind server" in cmds[0][1]
        assert "${globals.csrs}" in cmds[1][1] and "ca sign --format pem" in cmds[1][1]
        assert "install-certs --pick-own" in cmds[2][1]
    # Reloads after a re-issue go one node at a time (Pgpool-II restarts).
    reload = actions["reissueNode"][-1]
    assert list(reload) == ["forEach(r:response.responses)"]
    assert actions["issueLayer"] == [{"issueNode": {"nodeId": "${targetNodes.nodeGroup}", "scope": "all",
                                                    "mode": "install"}}]


def test_secrets_gathered_once_per_layer_and_only_where_needed():
    actions = custom_actions()
    text = json.dumps(actions["gatherSecrets"])
    assert "forEach(s:nodes." not in text  # no per-node visit loop: one cmd per knowing layer
    assert [sel for sel, _ in _cmds(actions["gatherSecrets"])] == ["${this}", "sqldb", "pgpool"]
    dumped = json.dumps({k: actions[k] for k in ("serversOffer", "serversRequire", "proxiesEnable")})
    # Only the primary (offer, require) and Pgpool (offer) ask for secrets; the primary's offer is
    # listed twice: PostgreSQL's, and MySQL's behind the ProxySQL drain.
    assert dumped.count('"secrets": "yes"') == 4


def test_standbys_enable_together():
    offer = json.dumps(custom_actions()["serversOffer"])
    assert '"nodeId": "${globals.replicaIds}", "role": "auto", "stage": "offer"' in offer
    assert '"nodeId": "${globals.replicaIds}", "role": "auto", "stage": "use"' in offer


def test_seal_if_agent_reports_missing_agent():
    script = shell.seal(if_agent=True)
    assert shell.NO_AGENT in script and "${globals.sealTo}" in script
