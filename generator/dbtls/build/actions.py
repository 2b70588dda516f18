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
first enable, a re-issue on Pgpool) stay one node at a time; a MariaDB node that is about to restart
is first drained in ProxySQL (``behindProxies``: OFFLINE_SOFT, wait, restart, ONLINE), replicas first. Only the nodes whose enable uses
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


def _db_names() -> str:
    """Every name ProxySQL may list the sqldb node ``@n`` under: ``node<ID>`` (what the platform's
    cluster manifests put into mysql_servers), its FQDN and its internal IP."""
    return "node${@n.id} ${@n.hostname} ${@n.address}"


def _behind_proxies(step: str, secrets: bool = False) -> dict[str, Any]:
    """``behindProxies`` for the MySQL-family node ``@n``: ``step`` is ``offer``, ``disable``,
    ``disableKeepCerts`` or ``disableCa`` (see the action)."""
    return {"behindProxies": {"nodeId": "${@n.id}", "addresses": _db_names(), "step": step, "role": "auto",
                              "stage": "offer", "secrets": "yes" if secrets else "no"}}


def _proxies_ready() -> list[Any]:
    """ProxySQL nodes get the current agent (their layer's add-on may not be installed yet) and put
    back ONLINE whatever an earlier, unfinished run left OFFLINE_SOFT."""
    return [{"if (nodes.proxy)": [{"fetchAgent": "proxy"}, cmd("proxy", shell.proxysql_backends_recover())]}]


def _disable_servers() -> list[Any]:
    """Uninstall on sqldb, after Pgpool-II: ProxySQL's settings go back first but its agent stays for
    the drains; database nodes one at a time, replicas first (MariaDB restarts: drained); finally
    ProxySQL's certificates, state and agent go."""
    return [
        {"if (nodes.proxy)": [
            {"fetchAgent": "proxy"},
            {"forEach(n:nodes.proxy)": [cmd("${@n.id}", shell.disable(remove_certs=False))]},
        ]},
        {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') == 0)": [
            _each("sqldb", [cmd("${@n.id}", shell.disable())], only="replicas"),
            _each("sqldb", [cmd("${@n.id}", shell.disable(remove_ca=True))], only="master"),
        ]},
        {"else": [
            _each("sqldb", [_behind_proxies("disable")], only="replicas"),
            _each("sqldb", [_behind_proxies("disableCa")], only="master"),
        ]},
        {"if (nodes.proxy)": [{"forEach(n:nodes.proxy)": [cmd("${@n.id}", shell.disable())]}]},
    ]


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
            {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') == 0)": [
                # PostgreSQL reloads: the primary, then every standby at once.
                _each("sqldb", [_enable("offer", secrets=True)], only="master"),
                *_replica_ids(),
                {"if ('${globals.replicaIds}' != '')": [
                    _enable("offer", node="${globals.replicaIds}"),
                    _enable("use", node="${globals.replicaIds}"),
                ]},
            ]},
            {"else": [
                # MariaDB's first enable restarts the server: one node at a time, each drained
                # in ProxySQL first, replicas before the primary; then replicas use TLS.
                *_proxies_ready(),
                _each("sqldb", [_behind_proxies("offer")], only="replicas"),
                _each("sqldb", [_behind_proxies("offer", secrets=True)], only="master"),
                _each("sqldb", [_enable("use")], only="replicas"),
            ]},
        ],
        # One MySQL-family node's step that may restart its server (${this.step}: offer, or
        # disable / disableKeepCerts / disableCa), wrapped in a ProxySQL drain when the node says it
        # will restart: OFFLINE_SOFT on every ProxySQL node, wait for ConnUsed=0, the step, ONLINE.
        # The step is deferred (its exit code kept on the node), so ONLINE runs even when it failed;
        # step_result then fails the handler with the step's own error.
        "behindProxies": [
            {"if ('${this.secrets}' == 'yes')": [{"gatherSecrets": "${this.nodeId}"}]},
            {"setGlobals": {"drained": "no"}},
            {"if (nodes.proxy)": [
                cmd("${this.nodeId}", shell.restart_expected()),
                {"if ('${response.out}' == 'yes')": [
                    {"setGlobals": {"drained": "yes"}},
                    cmd("proxy", shell.proxysql_backend("offline-soft")),
                ]},
            ]},
            {"if ('${this.step}' == 'offer' && '${this.secrets}' == 'yes')": [
                cmd("${this.nodeId}", shell.deferred(shell.enable(sealed=True))),
            ]},
            {"elif ('${this.step}' == 'offer')": [cmd("${this.nodeId}", shell.deferred(shell.enable(sealed=False)))]},
            {"elif ('${this.step}' == 'disableCa')": [
                cmd("${this.nodeId}", shell.deferred(shell.disable(remove_ca=True))),
            ]},
            {"elif ('${this.step}' == 'disableKeepCerts')": [
                cmd("${this.nodeId}", shell.deferred(shell.disable(remove_certs=False))),
            ]},
            {"else": [cmd("${this.nodeId}", shell.deferred(shell.disable()))]},
            {"if ('${globals.drained}' == 'yes')": [cmd("proxy", shell.proxysql_backend("online"))]},
            cmd("${this.nodeId}", shell.step_result()),
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
        # CA rotation, step 1 (after ca init --rotate): every node with our certificates trusts the
        # new root next to the old one before any server presents a certificate from it. Pgpool-II
        # and standbys verify the servers' certificates against root.crt on every new connection;
        # without this, a backend that reloaded its new certificate is refused by Pgpool until
        # Pgpool's own root.crt is replaced (and its health check may detach the backend).
        "trustBothRoots": [
            cmd(CA_NODE, shell.ca_roots()),
            {"setGlobals": {"trustRoots": "${response.out}"}},
            cmd("sqldb", shell.install_roots()),
            *[{f"if (nodes.{layer})": [cmd(layer, shell.install_roots())]} for layer in PROXY_LAYERS],
        ],
        # Reverse of serversRequire (PostgreSQL): the standbys' rules first, then the primary's rules
        # and, once those are live, its md5 secrets; TLS stays offered. Every backend keeps asking
        # Pgpool-II for the same authentication method (roles/postgres_disable.py explains).
        "serversUnrequire": [
            {"fetchAgent": "sqldb"},
            *_replica_ids(),
            {"if ('${globals.replicaIds}' != '')": [cmd("${globals.replicaIds}", shell.disable(stage="require"))]},
            _each("sqldb", [cmd("${@n.id}", shell.disable(stage="require"))], only="master"),
        ],
        "reissue": [
            {"fetchAgent": "${targetNodes.nodeGroup}"},
            {"if ('${settings.scope}' == 'all')": [
                *_agents_for_rotation(),
                cmd(CA_NODE, shell.ca_init(rotate=True)),
                "trustBothRoots",
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
                # Reverse order: servers stop requiring, then proxies drop TLS, then servers stop offering.
                {"if (nodes.pgpool)": [
                    cmd("${nodes.pgpool.master.id}", shell.has_tls()),
                    {"if ('${response.out}' == 'yes')": ["serversUnrequire"]},
                ]},
                {"if (nodes.pgpool)": [{"forEach(n:nodes.pgpool)": [cmd("${@n.id}", shell.disable())]}]},
                *_disable_servers(),
            ]},
            {"else": [
                cmd(CA_NODE, shell.has_tls()),
                {"if ('${response.out}' == 'yes')": [
                    # Servers go back to "offer" first, or the plain-text proxy would be locked out.
                    {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') == 0)": ["serversUnrequire"]},
                    {"else": [
                        # MariaDB restarts to drop require: drained, replicas first.
                        *_proxies_ready(),
                        _each("sqldb", [_behind_proxies("disableKeepCerts")], only="replicas"),
                        _each("sqldb", [_behind_proxies("disableKeepCerts")], only="master"),
                        "serversOffer",
                    ]},
                ]},
                _each("${targetNodes.nodeGroup}", [cmd("${@n.id}", shell.disable())]),
            ]},
        ],
    }


def _agents_for_rotation() -> list[Any]:
    """A CA rotation runs the agent on every layer that has our certificates, not only the one the
    button was pressed on: give those layers the current agent first (nothing has changed yet)."""
    items: list[Any] = [{"if ('${targetNodes.nodeGroup}' != 'sqldb')": [{"fetchAgent": "sqldb"}]}]
    for layer in PROXY_LAYERS:
        items.append({f"if (nodes.{layer})": [{f"if ('${{targetNodes.nodeGroup}}' != '{layer}')": [
            cmd(f"${{nodes.{layer}.master.id}}", shell.has_tls()),
            {"if ('${response.out}' == 'yes')": [{"fetchAgent": layer}]},
        ]}]})
    return items


def _reissue(scope: str, nodes: str) -> dict[str, Any]:
    return {"reissueNode": {"nodeId": nodes, "scope": scope, "mode": "reissue"}}
