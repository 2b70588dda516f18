"""The manifest's certificate flow: each node's requests read right after its own cmd, one signing
run on the CA node, one install on the whole layer (a re-issue: install and reload in one call per
node); restarts one node at a time."""

from __future__ import annotations

import json

from dbtls.addon.actions import CA_NODE, custom_actions

ACTIONS = custom_actions("0" * 64)


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


def test_requests_are_read_in_the_action_after_their_cmd():
    request = ACTIONS["requestCert"]
    assert list(request[0])[0] == "cmd[${this.nodeId}]" and "csr --bundle" in request[0]["cmd[${this.nodeId}]"]
    assert "${response.out.toBase64()}" in request[1]["setGlobals"]["csrs"]
    assert "${this.addresses}" in request[1]["setGlobals"]["nodeList"]


def test_one_sign_one_install_per_layer():
    sign = ACTIONS["signAndInstall"]
    assert [sel for sel, _ in _cmds(sign)] == [CA_NODE, "${@n.id}", "${this.layer}"]
    assert "ca sign --from-manifest" in sign[0][f"cmd[{CA_NODE}]"]
    assert sign[1] == {"setGlobals": {"signed": "${response.out}"}}
    assert "install-certs --from-manifest --allow-none" in sign[3]["else"][0]["cmd[${this.layer}]"]
    assert "jem service" not in sign[3]["else"][0]["cmd[${this.layer}]"]  # installing alone reloads nothing


def test_no_action_iterates_a_response():
    assert "response.responses" not in json.dumps(ACTIONS)
    assert "forEach(r:" not in json.dumps(ACTIONS)


def test_reloads_after_a_reissue_go_node_by_node_in_the_install_call():
    assert ACTIONS["reissueLayer"][-1]["signAndInstall"]["reload"] == "yes"
    per_node = ACTIONS["signAndInstall"][2]["if ('${this.reload}' == 'yes')"]
    assert list(per_node[0]) == ["forEach(n:nodes.${this.layer})"]
    [(sel, script)] = list(_cmds(per_node))
    assert sel == "${@n.id}"
    # install first, then the node's server loads what was installed
    assert script.index("install-certs --from-manifest") < script.index("jem service reload")
    assert "--stage offer" in script and "jem service restart" in script
    # every other caller installs on the whole layer at once
    assert all(step["signAndInstall"]["reload"] == "no" for name in ("issueLayer", "repairLayer", "addNodes")
               for step in ACTIONS[name] if isinstance(step, dict) and "signAndInstall" in step)


def test_secrets_gathered_node_by_node_and_only_where_needed():
    gather = json.dumps(ACTIONS["gatherSecrets"])
    assert "forEach(s:nodes.sqldb)" in gather and "forEach(s:nodes.pgpool)" in gather
    assert "${response.out.toBase64()}" in json.dumps(ACTIONS["sealOne"])
    dumped = json.dumps({k: ACTIONS[k] for k in ("serversOffer", "serversRequire", "proxiesEnable")})
    # Only the primary (offer, require) and Pgpool (offer) ask for secrets; the primary's offer is
    # listed twice: PostgreSQL's, and MySQL's behind the ProxySQL drain.
    assert dumped.count('"secrets": "yes"') == 4


def test_standbys_enable_together():
    offer = json.dumps(ACTIONS["serversOffer"])
    assert '"nodeId": "${globals.replicaIds}", "role": "auto", "stage": "offer"' in offer
    assert '"nodeId": "${globals.replicaIds}", "role": "auto", "stage": "use"' in offer


def test_conditions_on_node_output_compare_base64():
    text = json.dumps(ACTIONS)
    assert "'${response.out}'" not in text
    assert "${response.out.toBase64()}' == 'eWVz'" in text  # "yes"


def test_a_hostile_nodes_output_reaches_the_ca_only_as_base64():
    """Node 12 prints shell text instead of a request: the CA node's script carries it as base64
    only (the agent there refuses it as data), and no line of it appears in any script."""
    from dbtls.addon.manifest import build_manifest
    from dbtls.jps import CmdResult, Environment, Interpreter, Node, User
    from dbtls.jps.cmdwrap import unwrap

    hostile = "x'\nDBTLS_CSR\n\"; touch /tmp/pwned; '\n$(reboot)\n"
    scripts: list[tuple[int, str]] = []

    class Runner:
        def run(self, node, command_b64, user):
            text, _ = unwrap(command_b64)
            scripts.append((node.id, text))
            if "csr --bundle" in text:
                return CmdResult(0, hostile if node.id == 12 else '{"server": "..."}\n')
            if "ca sign --from-manifest" in text:
                return CmdResult(2, "", "dbtls-agent: error: node 12 sent a request that is not the JSON\n")
            return CmdResult(0, "")

    env = Environment("env-5", "env-5.example.org", [
        Node(11, "sqldb", "postgres15", True, "10.0.0.11"), Node(12, "sqldb", "postgres15", False, "10.0.0.12")])
    interp = Interpreter(env, Runner(), user=User(), sleep=lambda s: None, seed=1)
    addon = interp.load(build_manifest("0" * 64), node_group="sqldb")
    result = interp.call(addon, "issueLayer")
    assert not result.ok and "node 12 sent a request" in (result.error or "")
    sign = [text for node, text in scripts if "ca sign --from-manifest" in text]
    assert len(sign) == 1
    for marker in ("touch /tmp/pwned", "reboot", "DBTLS_CSR"):
        assert not any(marker in text for _, text in scripts if "csr --bundle" not in text), marker


def test_redeploy_handler_repairs_the_layer_in_order():
    """onAfterRedeployContainer: the agent back, the options saved, missing certificates issued
    (only-missing), the layer enabled again, replication waited for; no interpreter error."""
    from dbtls.addon.manifest import build_manifest
    from dbtls.jps import CmdResult, Environment, Interpreter, Node, User
    from dbtls.jps.cmdwrap import unwrap

    seen: list[str] = []

    class Runner:
        def run(self, node, command_b64, user):
            text, _ = unwrap(command_b64)
            for marker in ("dbtls-agent.pyz", "options save", "csr --bundle", "ca sign --from-manifest",
                           "install-certs --from-manifest", "set -- enable", "replication wait"):
                if marker in text:
                    seen.append(marker)
                    break
            if "ca sign --from-manifest" in text:
                return CmdResult(0, '{"certificates":[],"roots":[]}\n')
            if "csr --bundle" in text:
                return CmdResult(0, "{}\n")
            if "printf yes" in text:
                return CmdResult(0, "yes")
            if "renew install" in text:  # the agent's answer: its token's SHA-256
                return CmdResult(0, json.dumps({"token_sha256": f"{node.id:064x}"}) + "\n")
            return CmdResult(0, "")

    env = Environment("env-6", "env-6.example.org", [
        Node(11, "sqldb", "postgres15", True, "10.0.0.11"), Node(12, "sqldb", "postgres15", False, "10.0.0.12")])
    interp = Interpreter(env, Runner(), user=User(), sleep=lambda s: None, seed=1)
    addon = interp.load(build_manifest("0" * 64), node_group="sqldb")
    interp.addons = [addon]
    fired = interp.fire_all("onAfterRedeployContainer", params={"nodeGroup": "sqldb"})
    assert [r.ok for _, r in fired] == [True], [r.error for _, r in fired]
    order = [m for i, m in enumerate(seen) if i == 0 or seen[i - 1] != m]
    assert order[:5] == ["dbtls-agent.pyz", "options save", "csr --bundle", "ca sign --from-manifest",
                         "install-certs --from-manifest"], order
    assert "set -- enable" in order and order[-1] == "replication wait", order


def _renew_run(answers: dict[str, str]):
    """Press Renew due certificates on fake PostgreSQL nodes; the CA node's ``certs plan`` answers
    from ``answers`` (by ``--show``). Returns the result and every (node id, script)."""
    from dbtls.addon.manifest import build_manifest
    from dbtls.jps import CmdResult, Environment, Interpreter, Node, User
    from dbtls.jps.cmdwrap import unwrap

    scripts: list[tuple[int, str]] = []

    class Runner:
        def run(self, node, command_b64, user):
            text, _ = unwrap(command_b64)
            scripts.append((node.id, text))
            if "certs plan" in text and "--show summary" in text:
                return CmdResult(0, answers["summary"])
            for show in ("work", "scope"):
                if f"--show {show}" in text:
                    return CmdResult(0, answers[show])
            if "certs due" in text:
                return CmdResult(0, '{"certificates": [], "any_due": false}\n')
            if "csr --bundle" in text:
                return CmdResult(0, '{"server": "..."}\n')
            return CmdResult(0, "")

    env = Environment("env-5", "env-5.example.org", [
        Node(11, "sqldb", "postgres15", True, "10.0.0.11"), Node(12, "sqldb", "postgres15", False, "10.0.0.12")])
    interp = Interpreter(env, Runner(), user=User(), sleep=lambda s: None, seed=1)
    addon = interp.load(build_manifest("0" * 64), node_group="sqldb")
    return interp.click(addon, "Renew due certificates", {}), scripts


def test_renew_with_nothing_due_changes_nothing():
    result, scripts = _renew_run({"summary": "nothing is due within 30 days; nothing was changed.", "work": "no",
                                  "scope": "none"})
    assert result.ok and result.message_type == "success", result.error
    assert "nothing is due" in (result.message or "")
    assert [n for n, t in scripts if "certs due --within-days 30" in t] == [11, 12, 11]
    assert not any(marker in t for _, t in scripts for marker in ("csr --bundle", "ca sign", "kit build", "reload"))


def test_renew_reissues_the_scope_the_plan_names_then_waits_and_reports():
    result, scripts = _renew_run({"summary": "renewing server certificates (due on node12).", "work": "yes",
                                  "scope": "server"})
    assert result.ok and result.message_type == "success", result.error
    assert "renewing server certificates (due on node12)." in (result.message or "")
    csr = [(n, t) for n, t in scripts if "csr --bundle" in t]
    assert [n for n, _ in csr] == [11, 12] and all("--scope 'server'" in t for _, t in csr)
    texts = [t for _, t in scripts]
    first = next(i for i, t in enumerate(texts) if "csr --bundle" in t)
    sign = next(i for i, t in enumerate(texts) if "ca sign --from-manifest" in t)
    kits = next(i for i, t in enumerate(texts) if "kit build" in t)
    assert texts[kits].index("user-cert --user") < texts[kits].index("kit build --user")
    wait = next(i for i, t in enumerate(texts) if "replication wait" in t)
    assert first < sign < kits < wait
    # The reports reach the CA node's planner as base64 only.
    plan = next(t for t in texts if "certs plan" in t)
    assert "b64 '" in plan and "certificates" not in plan
