"""Custom actions of the add-on: the cross-stack order of reference/db-tls.md §6 as JPS.

Each add-on instance is bound to one layer (``${targetNodes.nodeGroup}``). The database layer
(``sqldb``) holds the CA on its primary. Order across the stack: servers *offer* TLS, standbys and
proxies *use* it, proxies *require* it, and only then servers *require* it, because requiring first
would lock Pgpool/ProxySQL out of their backends. So the ``sqldb`` instance stops after "use" when a
proxy layer exists that does not speak TLS yet; the proxy instance finishes the order.

Iterators are not visible inside custom actions, so loops pass node ids as ``${this.*}``.
"""

from __future__ import annotations

from typing import Any

from . import shell

ROOT = "root"
CA_NODE = "${nodes.sqldb.master.id}"
PROXY_LAYERS = ("pgpool", "proxy")


def cmd(selector: str, script: str, *, say_yes: bool = False) -> dict[str, Any]:
    """One ``cmd`` item run as root; ``sayYes: false`` so heredocs and the agent see a clean stdin."""
    item: dict[str, Any] = {f"cmd[{selector}]": script, "user": ROOT}
    if not say_yes:
        item["sayYes"] = False
    return item


def _each(layer: str, body: list[Any], only: str | None = None) -> dict[str, Any]:
    """``forEach`` over a layer's nodes; ``only`` = ``master``/``replicas`` filters by ismaster."""
    if only == "master":
        body = [{"if (${@n.ismaster})": body}]
    elif only == "replicas":
        body = [{"if (!${@n.ismaster})": body}]
    return {f"forEach(n:nodes.{layer})": body}


def _enable(stage: str, role: str = "auto") -> dict[str, Any]:
    return {"enableNode": {"nodeId": "${@n.id}", "role": role, "stage": stage}}


def _issue(scope: str, mode: str) -> dict[str, Any]:
    return {"issueNode": {"nodeId": "${@n.id}", "scope": scope, "mode": mode}}


def _collect_proxy_ips() -> list[Any]:
    """Addresses of proxy nodes: they log in to the servers without a client certificate."""
    items: list[Any] = [{"setGlobals": {"proxyIps": ""}}]
    for layer in PROXY_LAYERS:
        items.append({f"if (nodes.{layer})": [
            {f"forEach(p:nodes.{layer})": [{"setGlobals": {"proxyIps": "${globals.proxyIps} ${@p.address}"}}]},
        ]})
    return items


def custom_actions() -> dict[str, Any]:
    """Every custom action, in a stable order."""
    return {
        "checkSupported": [
            cmd(CA_NODE, shell.check_version()),
            {"if ('${response.out}'.indexOf('unsupported') == 0)": [
                {"stopEvent": {"type": "warning", "message":
                               "${response.out}: the add-on needs PostgreSQL 11 or newer "
                               "(like the platform's own SSL add-on)."}},
            ]},
        ],
        "fetchAgent": [cmd("${this}", shell.fetch_agent())],
        "prepareLayer": [
            {"fetchAgent": "${targetNodes.nodeGroup}"},
            {"if ('${targetNodes.nodeGroup}' != 'sqldb')": [{"fetchAgent": CA_NODE}]},
            cmd(CA_NODE, shell.ca_init(rotate=False)),
        ],
        "issueNode": [
            cmd("${this.nodeId}", shell.csr()),
            cmd(CA_NODE, shell.ca_sign()),
            cmd("${this.nodeId}", shell.install_certs(reload_after=False)),
        ],
        "reissueNode": [
            cmd("${this.nodeId}", shell.csr()),
            cmd(CA_NODE, shell.ca_sign()),
            cmd("${this.nodeId}", shell.install_certs(reload_after=True)),
        ],
        "issueLayer": [_each("${targetNodes.nodeGroup}", [_issue("all", "install")])],
        "gatherSecrets": [
            cmd(CA_NODE, "echo '{}'"),
            *[{f"if (nodes.{layer})": [
                {f"forEach(s:nodes.{layer})": [cmd("${@s.id}", shell.merge_secrets())]},
            ]} for layer in ("sqldb", "pgpool")],
        ],
        "enableNode": [
            # Offer (AES pool_passwd entries, password checks) and require (the SCRAM re-hash,
            # done just before scram-sha-256 is required) both need the passwords.
            {"if ('${this.stage}' == 'offer' || '${this.stage}' == 'require')": [
                "gatherSecrets",
                cmd("${this.nodeId}", shell.enable(with_secrets=True)),
            ]},
            {"else": [cmd("${this.nodeId}", shell.enable(with_secrets=False))]},
        ],
        "serversOffer": [
            _each("sqldb", [_enable("offer")], only="master"),
            _each("sqldb", [_enable("offer")], only="replicas"),
            _each("sqldb", [_enable("use")], only="replicas"),
        ],
        "serversRequire": [
            *_collect_proxy_ips(),
            _each("sqldb", [_enable("require")]),
        ],
        "proxiesEnable": [
            {"if ('${targetNodes.nodeGroup}' == 'pgpool')": [
                _each("pgpool", [_enable("offer", "pgpool")]),
                _each("pgpool", [_enable("require", "pgpool")]),
            ]},
            {"else": [
                _each("${targetNodes.nodeGroup}", [_enable("use", "proxysql")]),
                _each("${targetNodes.nodeGroup}", [_enable("require", "proxysql")]),
            ]},
        ],
        "enableLayer": [
            {"if ('${targetNodes.nodeGroup}' == 'sqldb')": [
                "serversOffer",
                {"setGlobals": {"proxyReady": "yes"}},
                *[{f"if (nodes.{layer})": [
                    cmd(f"${{nodes.{layer}.master.id}}", shell.has_tls()),
                    {"if ('${response.out}' != 'yes')": [{"setGlobals": {"proxyReady": "no"}}]},
                ]} for layer in PROXY_LAYERS],
                {"if ('${globals.proxyReady}' == 'yes')": ["serversRequire"]},
                {"else": [{"setGlobals": {"pending": "TLS is offered but not yet required: install the "
                                          "add-on on the proxy layer too; it finishes the order."}}]},
            ]},
            {"else": [
                cmd(CA_NODE, shell.has_tls()),
                {"if ('${response.out}' != 'yes')": [
                    {"stopEvent": {"type": "warning", "message":
                                   "Install the add-on on the database layer (sqldb) first: its primary "
                                   "holds the environment's CA and must offer TLS before "
                                   "${targetNodes.nodeGroup} can use it."}},
                ]},
                "proxiesEnable",
                "serversRequire",
            ]},
        ],
        "report": [
            {"setGlobals": {"report": ""}},
            _each("${targetNodes.nodeGroup}", [
                cmd("${@n.id}", shell.status_line().replace("${this.nodeId}", "${@n.id}")),
                {"setGlobals": {"report": "${globals.report}\n- ${response.out}"}},
            ]),
        ],
        "reissue": [
            {"fetchAgent": "${targetNodes.nodeGroup}"},
            {"if ('${settings.scope}' == 'all')": [
                cmd(CA_NODE, shell.ca_init(rotate=True)),
                _each("sqldb", [_reissue("all")]),
                *[{f"if (nodes.{layer})": [_each(layer, [_reissue("all")])]} for layer in PROXY_LAYERS],
            ]},
            {"else": [_each("${targetNodes.nodeGroup}", [_reissue("${settings.scope}")])]},
            "report",
            {"return": {"type": "success", "message": "Re-issued (${settings.scope}):${globals.report}"}},
        ],
        "certStatus": [
            "report",
            {"return": {"type": "info", "message": "Certificates of ${targetNodes.nodeGroup}:${globals.report}"}},
        ],
        "requireClientCert": [
            cmd(CA_NODE, shell.require_client_cert()),
            {"return": {"type": "success", "message": "${settings.dbUser} must now log in with a client "
                        "certificate signed by the environment's CA: ${response.out}"}},
        ],
        "addNodes": [
            {"forEach(n:event.response.nodes)": [
                {"fetchAgent": "${@n.id}"},
                _issue("all", "install"),
                cmd("${@n.id}", shell.start_if_stopped()),
            ]},
        ],
        "disableLayer": [
            {"if ('${targetNodes.nodeGroup}' == 'sqldb')": [
                *[{f"if (nodes.{layer})": [
                    {f"forEach(n:nodes.{layer})": [cmd("${@n.id}", shell.disable())]},
                ]} for layer in PROXY_LAYERS],
                _each("sqldb", [cmd("${@n.id}", shell.disable())], only="replicas"),
                _each("sqldb", [cmd("${@n.id}", shell.disable(remove_ca=True))], only="master"),
            ]},
            {"else": [
                cmd(CA_NODE, shell.has_tls()),
                {"if ('${response.out}' == 'yes')": [
                    # Servers go back to "offer" first, or the plain-text proxy would be locked out.
                    _each("sqldb", [cmd("${@n.id}", shell.disable(remove_certs=False))]),
                    "serversOffer",
                ]},
                _each("${targetNodes.nodeGroup}", [cmd("${@n.id}", shell.disable())]),
            ]},
        ],
    }


def _reissue(scope: str) -> dict[str, Any]:
    return {"reissueNode": {"nodeId": "${@n.id}", "scope": scope, "mode": "reissue"}}
