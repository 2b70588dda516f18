"""Custom actions of the add-on: the cross-stack order of reference/db-tls.md §6 as JPS.

Each add-on instance is bound to one layer (``${targetNodes.nodeGroup}``). The database layer
(``sqldb``) holds the CA on its primary. Order across the stack: servers *offer* TLS, standbys and
proxies *use* it, proxies *require* it, and only then servers *require* it, because requiring first
would lock Pgpool/ProxySQL out of their backends. So the ``sqldb`` instance stops after "use" when a
proxy layer exists that does not speak TLS yet; the proxy instance finishes the order.

Iterators are not visible inside custom actions, so loops pass node ids as ``${this.*}``.

Nodes are handled in parallel wherever the order allows (jps.md §5.2: one ``cmd`` on a layer or an
id list runs on its nodes at once): one ``csr`` on the layer, one ``ca sign`` for all the requests,
one ``install-certs --pick-own`` on the layer (each node keeps the certificates of its own keys);
standbys' offer/use and every server's require in one cmd each. Restarts (Pgpool-II, MariaDB's
first enable, a re-issue on Pgpool) stay one node at a time. Only the nodes whose enable uses
passwords (database primary at offer/require, Pgpool at offer) gather sealed secrets.
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


def _enable(stage: str, role: str = "auto", node: str = "${@n.id}", secrets: bool = False) -> dict[str, Any]:
    """``enableNode`` on ``node`` (an id, an id list or a layer: all at once); ``secrets`` = the
    enable needs passwords, gathered sealed for that one node."""
    return {"enableNode": {"nodeId": node, "role": role, "stage": stage, "secrets": "yes" if secrets else "no"}}


def _replica_ids() -> list[Any]:
    """``${globals.replicaIds}`` = comma-separated ids of the sqldb nodes that are not the primary."""
    return [
        {"setGlobals": {"replicaIds": ""}},
        _each("sqldb", [
            {"if ('${globals.replicaIds}' == '')": [{"setGlobals": {"replicaIds": "${@n.id}"}}]},
            {"else": [{"setGlobals": {"replicaIds": "${globals.replicaIds},${@n.id}"}}]},
        ], only="replicas"),
    ]


def _issue_steps(reload_after: bool) -> list[Any]:
    """CSRs of every node of ``${this.nodeId}`` at once, one signing run, one parallel install."""
    steps: list[Any] = [
        cmd("${this.nodeId}", shell.csr()),
        {"setGlobals": {"csrs": ""}},
        {"forEach(r:response.responses)": [{"setGlobals": {"csrs": "${globals.csrs}\n${@r.out}"}}]},
        cmd(CA_NODE, shell.ca_sign()),
        cmd("${this.nodeId}", shell.install_certs()),
    ]
    if reload_after:
        # Servers load the new files one node at a time (Pgpool-II restarts to do so).
        steps.append({"forEach(r:response.responses)": [cmd("${@r.nodeid}", shell.reload_certs())]})
    return steps


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
        # ${this.nodeId}: one node id, an id list or a layer; all its nodes work at once.
        "issueNode": _issue_steps(reload_after=False),
        "reissueNode": _issue_steps(reload_after=True),
        "issueLayer": [{"issueNode": {"nodeId": "${targetNodes.nodeGroup}", "scope": "all", "mode": "install"}}],
        # Passwords cross nodes sealed: the node that uses them (${this} = its id) prints a one-run
        # public key, every node that knows some seals them to it, and only that node's agent opens
        # the blobs (enable --passwords-sealed). The transcript holds a public key and ciphertext.
        # Each knowing layer is visited once per recipient, all its nodes at once: O(N) per run.
        "gatherSecrets": [
            cmd("${this}", shell.seal_recipient()),
            {"setGlobals": {"sealTo": "${response.out}", "sealed": ""}},
            *[{f"if (nodes.{layer})": [
                cmd(layer, shell.seal(if_agent=True)),
                {"forEach(s:response.responses)": [
                    # A node of a layer the add-on is not installed on may have no agent yet.
                    {f"if ('${{@s.out}}' == '{shell.NO_AGENT}')": [{"sealFrom": "${@s.nodeid}"}]},
                    {"else": [{"setGlobals": {"sealed": "${globals.sealed}\n${@s.out}"}}]},
                ]},
            ]} for layer in ("sqldb", "pgpool")],
        ],
        "sealFrom": [
            {"fetchAgent": "${this}"},
            cmd("${this}", shell.seal()),
            {"setGlobals": {"sealed": "${globals.sealed}\n${response.out}"}},
        ],
        "enableNode": [
            # The primary's offer (password checks) and require (the SCRAM re-hash, done just
            # before scram-sha-256 is required) and Pgpool's offer (AES pool_passwd entries) need
            # the passwords: the caller says so, and then ${this.nodeId} is one node.
            {"if ('${this.secrets}' == 'yes')": [
                {"gatherSecrets": "${this.nodeId}"},
                cmd("${this.nodeId}", shell.enable(sealed=True)),
            ]},
            {"else": [cmd("${this.nodeId}", shell.enable(sealed=False))]},
        ],
        "serversOffer": [
            _each("sqldb", [_enable("offer", secrets=True)], only="master"),
            *_replica_ids(),
            {"if ('${globals.replicaIds}' != '')": [
                # PostgreSQL standbys reload: all at once. MariaDB's first enable restarts the
                # server: one replica at a time.
                {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') == 0)": [
                    _enable("offer", node="${globals.replicaIds}"),
                    _enable("use", node="${globals.replicaIds}"),
                ]},
                {"else": [
                    _each("sqldb", [_enable("offer")], only="replicas"),
                    _each("sqldb", [_enable("use")], only="replicas"),
                ]},
            ]},
        ],
        "serversRequire": [
            *_collect_proxy_ips(),
            # The primary re-hashes passwords first; then every standby at once.
            _each("sqldb", [_enable("require", secrets=True)], only="master"),
            *_replica_ids(),
            {"if ('${globals.replicaIds}' != '')": [
                {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') == 0)": [
                    _enable("require", node="${globals.replicaIds}"),
                ]},
                {"else": [_each("sqldb", [_enable("require")], only="replicas")]},
            ]},
        ],
        "proxiesEnable": [
            {"if ('${targetNodes.nodeGroup}' == 'pgpool')": [
                # Pgpool-II restarts to load TLS: one node at a time.
                _each("pgpool", [_enable("offer", "pgpool", secrets=True)]),
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
            # Every node of the layer at once; the lines are joined in node order.
            cmd("${targetNodes.nodeGroup}", shell.status_line()),
            {"forEach(r:response.responses)": [
                {"setGlobals": {"report": "${globals.report}\n- node${@r.nodeid}: ${@r.out}"}},
            ]},
        ],
        "reissue": [
            {"fetchAgent": "${targetNodes.nodeGroup}"},
            {"if ('${settings.scope}' == 'all')": [
                cmd(CA_NODE, shell.ca_init(rotate=True)),
                _reissue("all", "sqldb"),
                *[{f"if (nodes.{layer})": [_reissue("all", layer)]} for layer in PROXY_LAYERS],
            ]},
            {"else": [_reissue("${settings.scope}", "${targetNodes.nodeGroup}")]},
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


def _reissue(scope: str, nodes: str) -> dict[str, Any]:
    return {"reissueNode": {"nodeId": nodes, "scope": scope, "mode": "reissue"}}
