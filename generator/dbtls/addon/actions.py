"""Custom actions of the add-on: the cross-stack order of enabling TLS, as JPS.

Each add-on instance is bound to one layer (``${targetNodes.nodeGroup}``). The database layer
(``sqldb``) holds the CA on its primary. Order across the stack: servers *offer* TLS, standbys and
proxies *use* it, proxies *require* it, and only then servers *require* it, because requiring first
would lock Pgpool-II/ProxySQL out of their backends. So the ``sqldb`` instance stops after "use"
when a proxy layer exists that does not speak TLS yet; the proxy instance finishes the order.

How the engine is used (see docs/jps-semantics.md for the sources):

* ``${response}`` holds the previous action's result only, so a node's output is read in the very
  next action, and per-node output is collected by visiting the nodes one by one
  (``forEach(n:nodes.<layer>)`` + ``cmd[${@n.id}]``), never by iterating ``response.responses``.
* A node's output is stored as data (``setGlobals``) and reaches another node only as
  ``${....toBase64()}``; conditions compare node output in its base64 form, so nothing a node prints
  is ever JavaScript or shell text.
* Buttons get only their own form's values: everything else they need (key type, extra names,
  toggles) was saved on the nodes at install (``options save``).
* Work runs on a whole layer in one ``cmd`` wherever the order allows (fetching the agent,
  installing certificates, the standbys' stages); restarts stay one node at a time.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from typing import Any

from dbtls.addon import shell
from dbtls.addon.links import TUTORIAL_MYSQL, TUTORIAL_PG

ROOT = "root"
CA_NODE = "${nodes.sqldb.master.id}"
PROXY_LAYERS = ("pgpool", "proxy")
LAYER = "${targetNodes.nodeGroup}"


def cmd(selector: str, script: str) -> dict[str, Any]:
    """One ``cmd`` item run as root with an empty stdin (``sayYes: false``)."""
    return {f"cmd[{selector}]": script, "user": ROOT, "sayYes": False}


def output_is(value: str, source: str = "response.out") -> str:
    """A condition: ``source`` equals ``value``, compared in base64 so the output is never code."""
    return one_of(source, [value])


def one_of(source: str, values: list[str]) -> str:
    """A condition: ``source`` (node output or a form value) is one of ``values``, compared in base64
    so that whatever it holds is never JavaScript."""
    tests = [f"'${{{source}.toBase64()}}' == '{base64.b64encode(v.encode()).decode()}'" for v in values]
    return " || ".join(tests)


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
    cluster manifests put into mysql_servers), its FQDN and its internal address."""
    return "node${@n.id} node${@n.id}-${env.domain} ${@n.address}"


def _behind_proxies(step: str, secrets: bool = False) -> dict[str, Any]:
    """``behindProxies`` for the MySQL-family node ``@n``: ``step`` is ``offer``, ``disable``,
    ``disableKeepCerts`` or ``disableCa``."""
    return {"behindProxies": {"nodeId": "${@n.id}", "addresses": _db_names(), "step": step, "role": "auto",
                              "stage": "offer", "secrets": "yes" if secrets else "no"}}


def _if_layer_has_tls(layer: str, body: list[Any]) -> dict[str, Any]:
    """Run ``body`` when ``layer`` exists and its first node carries our certificates and agent."""
    return {f"if (nodes.{layer})": [
        cmd(f"${{nodes.{layer}.master.id}}", shell.has_tls()),
        {f"if ({output_is('yes')})": body},
    ]}


def _replica_ids() -> list[Any]:
    """``${globals.replicaIds}`` = comma-separated ids of the sqldb nodes that are not the primary."""
    return [
        {"setGlobals": {"replicaIds": ""}},
        _each("sqldb", [
            {"if ('${globals.replicaIds.toBase64()}' == '')": [{"setGlobals": {"replicaIds": "${@n.id}"}}]},
            {"else": [{"setGlobals": {"replicaIds": "${globals.replicaIds},${@n.id}"}}]},
        ], only="replicas"),
    ]


def _have_replicas() -> str:
    return "'${globals.replicaIds.toBase64()}' != ''"


def _request(iterable: str, scope: str, mode: str) -> list[Any]:
    """Ask every node of ``iterable`` for its requests, one node after the other."""
    return [
        {"setGlobals": {"csrs": "", "nodeList": ""}},
        {f"forEach(n:{iterable})": [
            {"requestCert": {"nodeId": "${@n.id}", "addresses": "${@n.intIP},${@n.address}", "scope": scope,
                             "mode": mode}},
        ]},
    ]


def _sign_and_install(layer: str, previous: str = "no") -> dict[str, Any]:
    return {"signAndInstall": {"layer": layer, "previous": previous, "reload": "no"}}


def _proxies_ready() -> list[Any]:
    """ProxySQL nodes put back ONLINE whatever an earlier, unfinished run left OFFLINE_SOFT. Every
    caller runs after ``fetchAgentEverywhere``: the ProxySQL nodes have the current agent."""
    return [{"if (nodes.proxy)": [cmd("proxy", shell.proxysql_backends_recover())]}]


def _collect_proxy_ips() -> list[Any]:
    """Addresses of proxy nodes: they log in to the servers without a client certificate."""
    items: list[Any] = [{"setGlobals": {"proxyIps": ""}}]
    for layer in PROXY_LAYERS:
        items.append({f"if (nodes.{layer})": [
            {f"forEach(p:nodes.{layer})": [{"setGlobals": {"proxyIps": "${globals.proxyIps} ${@p.address}"}}]},
        ]})
    return items


def _disable_servers() -> list[Any]:
    """Uninstall on sqldb, after Pgpool-II: ProxySQL's settings go back first but its agent stays for
    the drains; database nodes one at a time, replicas first (MariaDB restarts: drained); finally
    ProxySQL's certificates, state and agent go."""
    return [
        {"if (nodes.proxy)": [{"forEach(n:nodes.proxy)": [cmd("${@n.id}", shell.disable(remove_certs=False))]}]},
        {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') > -1)": [
            _each("sqldb", [cmd("${@n.id}", shell.disable())], only="replicas"),
            _each("sqldb", [cmd("${@n.id}", shell.disable(remove_ca=True))], only="master"),
        ]},
        {"else": [
            _each("sqldb", [_behind_proxies("disable")], only="replicas"),
            _each("sqldb", [_behind_proxies("disableCa")], only="master"),
        ]},
        {"if (nodes.proxy)": [{"forEach(n:nodes.proxy)": [cmd("${@n.id}", shell.disable())]}]},
    ]


def _reissue_layer(layer: str, scope: str, previous: str = "no") -> dict[str, Any]:
    return {"reissueLayer": {"group": layer, "scope": scope, "previous": previous}}


def _lines_per_node(name: str, script: str) -> list[Any]:
    """``${globals.<name>}`` = one ``- node<ID>: <output>`` line per node of the layer (display text)."""
    return [
        {"setGlobals": {name: ""}},
        {f"forEach(n:nodes.{LAYER})": [
            cmd("${@n.id}", script),
            {"setGlobals": {name: f"${{globals.{name}}}\n- node${{@n.id}}: ${{response.out}}"}},
        ]},
    ]


# -- the actions ---------------------------------------------------------------------------------
# One builder per custom action. The manifest lists them in the order they are registered here.

#: action name -> (builder, whether the builder takes the agent's sha256)
_ACTIONS: dict[str, tuple[Callable[..., list[Any]], bool]] = {}


def action(name: str, *, takes_agent_sha256: bool = False) -> Callable[[Callable[..., list[Any]]],
                                                                          Callable[..., list[Any]]]:
    """Register the decorated function as the builder of custom action ``name``."""
    def register(builder: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        if name in _ACTIONS:
            raise ValueError(f"custom action {name} is registered twice")
        _ACTIONS[name] = (builder, takes_agent_sha256)
        return builder
    return register


def custom_actions(agent_sha256: str) -> dict[str, Any]:
    """Every custom action, in registration order."""
    return {name: builder(agent_sha256) if takes_sha else builder()
            for name, (builder, takes_sha) in _ACTIONS.items()}


# Setting up: checks, the agent, the options, the CA and the first certificates.

@action("checkSupported")
def _check_supported() -> list[Any]:
    """Before anything changes: Python and the agent on every layer the installation touches (the
    layer, the CA node, the layers whose nodes seal passwords or drain backends), a supported
    database, and for a proxy layer a database layer that is done."""
    return [
        "fetchAgentEverywhere",
        {f"if ('{LAYER}' != 'sqldb')": [
            # One call on the CA node for both checks: each call is a platform round trip.
            cmd(CA_NODE, shell.require_database_layer() + "\n" + shell.check_version()),
        ]},
        {"else": [cmd(CA_NODE, shell.check_version())]},
    ]


@action("fetchAgent", takes_agent_sha256=True)
def _fetch_agent(agent_sha256: str) -> list[Any]:
    """The agent pinned by its sha256 on ``${this}`` (a node id or a layer)."""
    return [cmd("${this}", shell.fetch_agent(agent_sha256))]


@action("fetchAgentEverywhere")
def _fetch_agent_everywhere() -> list[Any]:
    """The agent pinned by its sha256 on the database layer and every proxy layer the environment
    has, in one call at the start of an operation that may touch them all (sealing passwords,
    draining backends, uninstall's restores); the steps after it fetch nothing."""
    return _on_database_and_proxy_layers("", step=lambda selector: {"fetchAgent": selector})


@action("fetchAgentForRotation")
def _fetch_agent_for_rotation() -> list[Any]:
    """Before a CA rotation, in one call: the agent on the database layer, on this instance's layer,
    and on every other proxy layer whose first node carries our certificates and agent (a proxy
    layer without them keeps whatever it has, as its nodes have nothing to re-issue)."""
    items: list[Any] = [{"setGlobals": {f"fetch_{layer}": "no" for layer in PROXY_LAYERS}}]
    for layer in PROXY_LAYERS:
        items.append({f"if (nodes.{layer})": [
            {f"if ('{LAYER}' == '{layer}')": [{"setGlobals": {f"fetch_{layer}": "yes"}}]},
            {"else": [
                cmd(f"${{nodes.{layer}.master.id}}", shell.has_tls()),
                {f"if ({output_is('yes')})": [{"setGlobals": {f"fetch_{layer}": "yes"}}]},
            ]},
        ]})
    return items + _on_database_and_proxy_layers(
        "", present=lambda layer: output_is("yes", f"globals.fetch_{layer}"),
        step=lambda selector: {"fetchAgent": selector})


@action("saveOptions")
def _save_options() -> list[Any]:
    return [cmd("${this}", shell.save_options())]


@action("prepareCa")
def _prepare_ca() -> list[Any]:
    """The CA (kept when it exists) and this layer's extra names, in one call on the CA node."""
    return [cmd(CA_NODE, shell.prepare_ca())]


@action("requestCert")
def _request_cert() -> list[Any]:
    """One node's requests; the platform's addresses of the node go with them to the CA."""
    return [
        cmd("${this.nodeId}", shell.csr()),
        {"setGlobals": {"csrs": "${globals.csrs} ${this.nodeId}:${response.out.toBase64()}",
                        "nodeList": "${globals.nodeList} ${this.nodeId}=${this.addresses}"}},
    ]


@action("signAndInstall")
def _sign_and_install_action() -> list[Any]:
    """Sign every collected request in one run; every node of the layer installs what is its own:
    all at once, or with ``${this.reload}`` = yes (a re-issue) one node after the other, each node
    loading its new certificates in the same call (Pgpool-II, and MySQL without live TLS reload,
    restart to do so)."""
    return [
        cmd(CA_NODE, shell.ca_sign()),
        {"setGlobals": {"signed": "${response.out}"}},
        {"if ('${this.reload}' == 'yes')": [
            {"forEach(n:nodes.${this.layer})": [cmd("${@n.id}", shell.install_certs_reload())]},
        ]},
        {"else": [cmd("${this.layer}", shell.install_certs())]},
    ]


@action("issueLayer")
def _issue_layer() -> list[Any]:
    return [*_request(f"nodes.{LAYER}", "all", "install"), _sign_and_install(LAYER)]


@action("repairLayer")
def _repair_layer() -> list[Any]:
    return [*_request(f"nodes.{LAYER}", "all", "repair"), _sign_and_install(LAYER)]


# Passwords cross nodes sealed: the node that uses them (${this} = its id) prints a one-run public
# key, every node that knows some seals them to it, and only that node's agent opens the blobs
# (enable --passwords-sealed). The transcript holds a public key and ciphertext.

@action("gatherSecrets")
def _gather_secrets() -> list[Any]:
    return [
        cmd("${this}", shell.seal_recipient()),
        {"setGlobals": {"sealTo": "${response.out}", "sealed": ""}},
        {"forEach(s:nodes.sqldb)": [{"sealOne": {"nodeId": "${@s.id}"}}]},
        {"if (nodes.pgpool)": [{"forEach(s:nodes.pgpool)": [{"sealOne": {"nodeId": "${@s.id}"}}]}]},
    ]


@action("sealOne")
def _seal_one() -> list[Any]:
    return [
        cmd("${this.nodeId}", shell.seal()),
        {"setGlobals": {"sealed": "${globals.sealed} ${this.nodeId}:${response.out.toBase64()}"}},
    ]


@action("enableNode")
def _enable_node() -> list[Any]:
    """The primary's offer and require (the SCRAM re-hash) and Pgpool's offer (its AES pool_passwd
    entries) need passwords: the caller says so; ``${this.nodeId}`` is one node then."""
    return [
        {"if ('${this.secrets}' == 'yes')": [
            {"gatherSecrets": "${this.nodeId}"},
            cmd("${this.nodeId}", shell.enable(sealed=True)),
        ]},
        {"else": [cmd("${this.nodeId}", shell.enable(sealed=False))]},
    ]


# Enabling, in the cross-stack order.

@action("serversOffer")
def _servers_offer() -> list[Any]:
    return [
        {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') > -1)": [
            # PostgreSQL reloads: the primary, then every standby at once.
            _each("sqldb", [_enable("offer", secrets=True)], only="master"),
            *_replica_ids(),
            {f"if ({_have_replicas()})": [
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
    ]


@action("behindProxies")
def _behind_proxies_action() -> list[Any]:
    """One MySQL-family node's step that may restart its server (``${this.step}``: offer, or
    disable / disableKeepCerts / disableCa), wrapped in a ProxySQL drain when the node says it will
    restart: OFFLINE_SOFT on every ProxySQL node, wait for ConnUsed=0, the step, ONLINE. The step is
    deferred (its exit code kept on the node), so ONLINE runs even when it failed; step_result then
    fails the handler with the step's own error."""
    return [
        {"if ('${this.secrets}' == 'yes')": [{"gatherSecrets": "${this.nodeId}"}]},
        {"setGlobals": {"drained": "no"}},
        {"if (nodes.proxy)": [
            cmd("${this.nodeId}", shell.restart_expected()),
            {f"if ({output_is('yes')})": [
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
        {f"if ({output_is('yes', 'globals.drained')})": [cmd("proxy", shell.proxysql_backend("online"))]},
        cmd("${this.nodeId}", shell.step_result()),
    ]


@action("serversRequire")
def _servers_require() -> list[Any]:
    return [
        *_collect_proxy_ips(),
        # The primary re-hashes passwords first; then every standby at once.
        _each("sqldb", [_enable("require", secrets=True)], only="master"),
        *_replica_ids(),
        {f"if ({_have_replicas()})": [
            {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') > -1)": [
                _enable("require", node="${globals.replicaIds}"),
            ]},
            {"else": [_each("sqldb", [_enable("require")], only="replicas")]},
        ]},
    ]


@action("proxiesEnable")
def _proxies_enable() -> list[Any]:
    return [
        {f"if ('{LAYER}' == 'pgpool')": [
            # Pgpool-II restarts to load TLS: one node at a time.
            _each("pgpool", [_enable("offer", "pgpool", secrets=True)]),
            _each("pgpool", [_enable("require", "pgpool")]),
        ]},
        {"else": ["proxysqlEnable"]},
    ]


@action("proxysqlEnable")
def _proxysql_enable() -> list[Any]:
    """ProxySQL: backends over TLS (new rows too: the platform adds a scaled-out node's row with
    use_ssl=0), then TLS required of the users."""
    return [
        _each("proxy", [_enable("use", "proxysql")]),
        _each("proxy", [_enable("require", "proxysql")]),
    ]


@action("enableLayer")
def _enable_layer() -> list[Any]:
    return [
        {f"if ('{LAYER}' == 'sqldb')": [
            "serversOffer",
            {"setGlobals": {"proxyReady": "yes"}},
            *[{f"if (nodes.{layer})": [
                cmd(f"${{nodes.{layer}.master.id}}", shell.has_tls()),
                {f"if (!({output_is('yes')}))": [{"setGlobals": {"proxyReady": "no"}}]},
            ]} for layer in PROXY_LAYERS],
            {f"if ({output_is('yes', 'globals.proxyReady')})": ["serversRequire"]},
            {"else": [{"setGlobals": {"pending": "TLS is offered but not yet required: install the "
                                      "add-on on the proxy layer too; it finishes the order."}}]},
        ]},
        {"else": ["proxiesEnable", "serversRequire"]},
    ]


@action("replicationBack")
def _replication_back() -> list[Any]:
    """Every standby/replica streams again before the run says it is done (a MariaDB replica's IO
    thread is restarted when it sits out its retry timer after its primary restarted): one call on
    the database layer, every node waits for its own replication at once."""
    return [cmd("sqldb", shell.replication_wait())]


@action("settledReport")
def _settled_report() -> list[Any]:
    """``replicationBack`` then ``report``. On the database layer each node's report call waits for
    its replication first, so the two steps are one call per node; elsewhere the two steps."""
    return [
        {f"if ('{LAYER}' == 'sqldb')": _lines_per_node("report", shell.replication_wait_status())},
        {"else": ["replicationBack", "report"]},
    ]


# Reporting; read only.

@action("preflightLayer")
def _preflight_layer() -> list[Any]:
    """What TLS changes for existing logins, sessions and replication, node by node."""
    return _lines_per_node("preflight", shell.preflight())


@action("checkTls")
def _check_tls() -> list[Any]:
    return [
        {"fetchAgent": LAYER},
        "preflightLayer",
        {"return": {"type": "success", "message": f"What TLS changes on {LAYER} (nothing was changed):"
                                                  "${globals.preflight}"}},
    ]


@action("report")
def _report() -> list[Any]:
    return _lines_per_node("report", shell.status_line())


@action("certStatus")
def _cert_status() -> list[Any]:
    return [
        "report",
        *_lines_per_node("renewal", shell.certs_due(text=True)),
        {"return": {"type": "success", "message": f"Certificates of {LAYER}:${{globals.report}}\n\n"
                    f"Renewal (a certificate is due {shell.RENEW_WITHIN_DAYS} days before it ends; "
                    "Renew due certificates renews it):${globals.renewal}"}},
    ]


@action("tutorial")
def _tutorial() -> list[Any]:
    """The platform's guide for the family of the environment's database layer (PostgreSQL or the
    MySQL family), whichever layer the add-on is on."""
    return [
        {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') > -1)": [
            {"return": {"type": "success", "message": f"Connecting to PostgreSQL over TLS: {TUTORIAL_PG}"}},
        ]},
        {"return": {"type": "success", "message": f"Connecting to MySQL, MariaDB or Percona over TLS: {TUTORIAL_MYSQL}"}},
    ]


# Re-issuing certificates and rotating the CA.

@action("trustBothRoots")
def _trust_both_roots() -> list[Any]:
    """CA rotation, step 1 (after ca init --rotate): every node with our certificates trusts the new
    root next to the old one before any server presents a certificate from it. Pgpool-II and
    standbys verify the servers' certificates against root.crt on every new connection."""
    return [
        cmd(CA_NODE, shell.ca_roots()),
        {"setGlobals": {"roots": "${response.out}"}},
        *_on_database_and_proxy_layers(shell.install_roots()),
    ]


def _on_database_and_proxy_layers(script: str, present: Callable[[str], str] = lambda layer: f"nodes.{layer}",
                                   step: Callable[[str], Any] | None = None) -> list[Any]:
    """One ``cmd`` on the database layer and every proxy layer for which the condition ``present``
    holds (by default: the environment has it): a multi-layer selector is one platform call, one
    ``cmd`` per layer is one call each. A branch per combination of proxy layers, the largest first,
    because a selector may name only existing layers (a condition other than the default must imply
    that the layer exists). ``step`` (selector -> item) replaces the ``cmd`` of ``script``, e.g. a
    custom action that takes the selector, so that a long script is not repeated in every branch."""
    combos = [c for n in range(len(PROXY_LAYERS), -1, -1) for c in itertools.combinations(PROXY_LAYERS, n)]
    items = []  # type: list[Any]
    for i, chosen in enumerate(combos):
        selector = ",".join(("sqldb",) + chosen)
        body = [step(selector) if step else cmd(selector, script)]
        if i == len(combos) - 1:
            items.append({"else": body})
            continue
        condition = " && ".join(f"({present(layer)})" if layer in chosen else f"!({present(layer)})"
                                for layer in PROXY_LAYERS)
        items.append({f"{'if' if i == 0 else 'elif'} ({condition})": body})
    return items


@action("reissueLayer")
def _reissue_layer_action() -> list[Any]:
    """New certificates for the nodes of ``${this.group}`` that have ours; each node installs and
    loads them in one call, one node at a time (Pgpool-II restarts to do so)."""
    return [
        *_request("nodes.${this.group}", "${this.scope}", "reissue"),
        {"signAndInstall": {"layer": "${this.group}", "previous": "${this.previous}", "reload": "yes"}},
    ]


@action("reissue")
def _reissue() -> list[Any]:
    return [
        {f"if ({one_of('settings.scope', ['all'])})": ["fetchAgentForRotation"]},
        {"else": [{"fetchAgent": LAYER}]},
        {f"if ({one_of('settings.scope', ['all'])})": [
            # A new CA: every layer with our certificates moves to it, the database layer first.
            cmd(CA_NODE, shell.ca_init(rotate=True)),
            "trustBothRoots",
            _reissue_layer("sqldb", "all", "yes"),
            *[{f"if (nodes.{layer})": [_reissue_layer(layer, "all", "yes")]} for layer in PROXY_LAYERS],
        ]},
        {f"elif ({one_of('settings.scope', ['client'])})": [_reissue_layer(LAYER, "client")]},
        {"else": [_reissue_layer(LAYER, "server")]},
        "settledReport",
        {"return": {"type": "success", "message": "Re-issued (${settings.scope}):${globals.report}"}},
    ]


@action("renew")
def _renew() -> list[Any]:
    """Renew what ends within 30 days: every node of the layer and the CA node report (``certs
    due``), kept as data; the CA node's agent turns the reports into a plan, whose one-word answers
    pick the existing steps: ``reissueLayer`` with the scope the plan names (the cluster order and
    reload path of a re-issue), then kits and user certificates on the CA node. A due CA is only
    reported. Nothing due: no change. The renewal job of docs/renewal.md is to call this action by
    its name, ``renew``."""
    return [
        # The agent on the layer and the CA node's layer in one call.
        {f"if ('{LAYER}' == 'sqldb')": [{"fetchAgent": "sqldb"}]},
        {"else": [{"fetchAgent": f"sqldb,{LAYER}"}]},
        {"setGlobals": {"dueReports": ""}},
        {f"forEach(n:nodes.{LAYER})": [
            cmd("${@n.id}", shell.certs_due()),
            {"setGlobals": {"dueReports": "${globals.dueReports} ${@n.id}:${response.out.toBase64()}"}},
        ]},
        cmd(CA_NODE, shell.certs_due()),
        {"setGlobals": {"caReport": "${response.out}"}},
        cmd(CA_NODE, shell.renew_plan("summary")),
        {"setGlobals": {"renewSummary": "${response.out}"}},
        cmd(CA_NODE, shell.renew_plan("work")),
        {f"if (!({output_is('yes')}))": [
            {"return": {"type": "success", "message": f"Renewal on {LAYER}: ${{globals.renewSummary}}"}},
        ]},
        cmd(CA_NODE, shell.renew_plan("scope")),
        {"setGlobals": {"renewScope": "${response.out}"}},
        {f"if ({output_is('all', 'globals.renewScope')})": [_reissue_layer(LAYER, "all")]},
        {f"elif ({output_is('server', 'globals.renewScope')})": [_reissue_layer(LAYER, "server")]},
        {f"elif ({output_is('client', 'globals.renewScope')})": [_reissue_layer(LAYER, "client")]},
        {f"if ('{LAYER}' == 'sqldb')": [cmd(CA_NODE, shell.renew_ca_node())]},
        "settledReport",
        {"return": {"type": "success", "message": f"Renewal on {LAYER}: ${{globals.renewSummary}}"
                                                  "${globals.report}"}},
    ]


@action("clientKit")
def _client_kit() -> list[Any]:
    """The CA node writes (or refreshes) the user's client kit and says where it is; the files stay there."""
    return [
        cmd(CA_NODE, shell.client_kit()),
        {"return": {"type": "success", "message": "${response.out}"}},
    ]


@action("requireClientCert")
def _require_client_cert() -> list[Any]:
    return [
        cmd(CA_NODE, shell.require_client_cert()),
        {"return": {"type": "success", "message": "${settings.dbUser} must now log in with a client "
                    "certificate signed by the environment's CA: ${response.out}"}},
    ]


# The automatic renewal trigger (docs/renewal.md): a platform script per installation that runs the
# ``renew`` action when called with the installation's token, and a daily cron job on every node of
# the layer that calls it when one of the node's certificates is due.

#: The platform script's name: one per environment and layer.
RENEW_SCRIPT = "${env.envName}-" + LAYER + "-dbtls-renew"

#: The script the platform serves at ``/<name>``. It takes no parameter but the token: whatever else
#: a caller sends, it can only make the add-on run ``renew``, which re-derives everything from the
#: certificates. It holds no token, only the SHA-256 digests of the layer's nodes' tokens
#: (``__DIGESTS__``, a JSON list of hex strings checked by the script action): it hashes the token
#: it receives with ``java.security.MessageDigest`` and compares it with every digest in constant
#: time. It finds the installation the way the Let's Encrypt add-on does (GetApps by app id and
#: layer).
_RENEW_SCRIPT_BODY = r"""//@url('/__NAME__')
var digests = __DIGESTS__;
var given = String(getParam('token', '') || '');
if (!/^[A-Za-z0-9]{64,1024}$/.test(given)) return {result: 4, error: 'wrong token'};
var md = java.security.MessageDigest.getInstance('SHA-256');
for (var i = 0; i < given.length; i++) md.update(given.charCodeAt(i));
var raw = md.digest(), hex = '';
for (var j = 0; j < raw.length; j++) {
  var h = (raw[j] & 0xff).toString(16);
  hex += h.length < 2 ? '0' + h : h;
}
var found = 0;
for (var k = 0; k < digests.length; k++) {
  var diff = 0;
  for (var c = 0; c < 64; c++) diff |= hex.charCodeAt(c) ^ digests[k].charCodeAt(c);
  found |= diff == 0 ? 1 : 0;
}
if (!found) return {result: 4, error: 'wrong token'};
var resp = api.dev.scripting.Eval('appstore', signature, 'GetApps', {
  targetAppid: '__ENVAPPID__',
  search: {appstore: 1, app_id: 'dbtls', nodeGroup: '__GROUP__'}
});
if (resp.result != 0) return resp;
var apps = ((resp.response || {}).apps || []).filter(function (a) { return a.isInstalled; });
if (apps.length != 1) return {result: 99, error: 'expected one dbtls installation on __GROUP__, found ' + apps.length};
return api.marketplace.installation.ExecuteAction({appid: appid, session: signature,
                                                    appUniqueName: apps[0].uniqueName, action: 'renew'});"""

#: The script's URL, which the nodes need before they answer with their digests.
_RENEW_URL = ("""return {result: 0, url: 'https://' + window.location.host + '/""" + RENEW_SCRIPT
              + """?appid=' + appid};""")

#: The installation's script action: read the nodes' answers (``renew install`` JSON, each base64 as
#: the engine made it, in a base64 list ``<node id>:<base64> ...``), keep each node's
#: ``token_sha256`` after checking it is 64 hex digits (anything else fails the run, naming the
#: node), and (re)create the platform script with the digests. The decoding is plain JavaScript:
#: node output never becomes code.
_RENEW_CREATE = ("""var name = '""" + RENEW_SCRIPT + """';
var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
var unb64 = function (text) {
  if (!/^[A-Za-z0-9+\\/]*={0,2}$/.test(text) || text.length % 4 != 0) return null;
  var out = '', bits = 0, n = 0;
  for (var i = 0; i < text.length && text.charAt(i) != '='; i++) {
    bits = (bits << 6) | B64.indexOf(text.charAt(i)); n += 6;
    if (n >= 8) { n -= 8; out += String.fromCharCode((bits >> n) & 0xff); }
  }
  return out;
};
var listed = unb64('${globals.renewNodes.toBase64()}');
var entries = listed === null ? [] : listed.split(' ').filter(function (e) { return e != ''; });
if (entries.length == 0) return {result: 99, error: 'renewal check: no node of """ + LAYER + """ answered'};
var digests = [];
for (var e = 0; e < entries.length; e++) {
  var id = entries[e].split(':')[0], answer = unb64(entries[e].split(':')[1] || ''), digest = null;
  try { digest = JSON.parse(answer).token_sha256; } catch (err) { digest = null; }
  if (typeof digest != 'string' || !/^[0-9a-f]{64}$/.test(digest)) {
    return {result: 99, error: 'renewal check: node ' + id + ' did not answer the SHA-256 of its token (64 hex digits)'};
  }
  digests.push(digest);
}
var body = BODY.split('__NAME__').join(name).split('__DIGESTS__').join(JSON.stringify(digests))
  .split('__ENVAPPID__').join('${env.appid}').split('__GROUP__').join('""" + LAYER + """');
api.dev.scripting.DeleteScript(appid, session, name);
var resp = api.dev.scripting.CreateScript(appid, session, name, 'js', body);
if (resp.result != 0) {
  return {result: 0, scheduled: 'no', error: 'CreateScript ' + name + ': ' + resp.result + ' ' + (resp.error || '')};
}
return {result: 0, scheduled: 'yes', nodes: digests.length, error: ''};""")

_RENEW_DELETE = ("""var name = '""" + RENEW_SCRIPT + """';
var resp = api.dev.scripting.DeleteScript(appid, session, name);
return {result: 0, name: name, deleted: resp.result == 0 ? 'yes' : 'no (' + resp.result + ')'};""")


def _renew_create_code() -> str:
    import json

    return "var BODY = " + json.dumps(_RENEW_SCRIPT_BODY) + ";\n" + _RENEW_CREATE


@action("renewSchedule")
def _renew_schedule() -> list[Any]:
    """Every node of the layer keeps (or draws) its own token and its cron job and answers the
    token's SHA-256; the platform script is (re)created with those digests. Nothing secret crosses
    the manifest: the platform records every cmd's text and every node's output. Run at install,
    after a scale-out and after a redeploy: a node keeps a valid token, so the others stay valid.

    A platform that refuses the script (an error result) does not undo the TLS just set up: the
    nodes' cron jobs and tokens go again, the run goes on without the daily check and says so
    (``globals.pending``, the action log). An exception in the script, or a node that answers no
    digest, fails the run."""
    return [
        {"script": _RENEW_URL},
        {"setGlobals": {"renewUrl": "${response.url}", "renewNodes": ""}},
        {f"forEach(n:nodes.{LAYER})": [
            cmd("${@n.id}", shell.renew_install()),
            {"setGlobals": {"renewNodes": "${globals.renewNodes} ${@n.id}:${response.out.toBase64()}"}},
        ]},
        {"script": _renew_create_code()},
        {"setGlobals": {"renewScheduled": "${response.scheduled}", "renewError": "${response.error}"}},
        {f"if (!({output_is('yes', 'globals.renewScheduled')}))": [
            cmd(LAYER, shell.renew_remove()),
            {"setGlobals": {"pending": "${globals.pending} No daily renewal check: the platform refused its "
                                       "script (${globals.renewError}); renew with Re-issue certificates."}},
            {"log": "${globals.pending}"},
        ]},
    ]


@action("renewUnschedule")
def _renew_unschedule() -> list[Any]:
    """Uninstall: the cron job, token and URL leave every node of the layer; the platform script goes."""
    return [
        cmd(LAYER, shell.renew_remove()),
        {"script": _RENEW_DELETE},
        {"log": "platform script ${response.name} deleted: ${response.deleted}"},
    ]


# The layer's life cycle: scale-out, uninstall, redeploy, password reset.

@action("addNodes")
def _add_nodes() -> list[Any]:
    return [
        "fetchAgentEverywhere",
        {"forEach(n:event.response.nodes)": [{"saveOptions": "${@n.id}"}]},
        *_request("event.response.nodes", "all", "install"),
        _sign_and_install(LAYER),
        {"forEach(n:event.response.nodes)": [cmd("${@n.id}", shell.start_if_stopped())]},
    ]


@action("refreshProxies")
def _refresh_proxies() -> list[Any]:
    """After a new database node joined: ProxySQL's rows for it get use_ssl=1 too."""
    return [
        {f"if ('{LAYER}' == 'sqldb')": [_if_layer_has_tls("proxy", ["proxysqlEnable"])]},
    ]


@action("disableLayer")
def _disable_layer() -> list[Any]:
    return [
        "fetchAgentEverywhere",
        {f"if ('{LAYER}' == 'sqldb')": [
            # Reverse order: servers stop requiring, then proxies drop TLS, then servers stop offering.
            _if_layer_has_tls("pgpool", ["serversUnrequire"]),
            {"if (nodes.pgpool)": [{"forEach(n:nodes.pgpool)": [cmd("${@n.id}", shell.disable())]}]},
            *_disable_servers(),
            "replicationBack",
            cmd("sqldb", shell.cleanup()),
            *[{f"if (nodes.{layer})": [cmd(layer, shell.cleanup())]} for layer in PROXY_LAYERS],
        ]},
        {"else": [
            cmd(CA_NODE, shell.has_tls()),
            {f"if ({output_is('yes')})": [
                # Servers go back to "offer" first, or the plain-text proxy would be locked out.
                {"if ('${nodes.sqldb.nodeType}'.indexOf('postgres') > -1)": ["serversUnrequire"]},
                {"else": [
                    # MariaDB restarts to drop require: drained, replicas first.
                    *_proxies_ready(),
                    _each("sqldb", [_behind_proxies("disableKeepCerts")], only="replicas"),
                    _each("sqldb", [_behind_proxies("disableKeepCerts")], only="master"),
                    "serversOffer",
                ]},
            ]},
            _each(LAYER, [cmd("${@n.id}", shell.disable())]),
            "replicationBack",
            cmd(LAYER, shell.cleanup()),
        ]},
    ]


@action("serversUnrequire")
def _servers_unrequire() -> list[Any]:
    """Reverse of serversRequire (PostgreSQL): the standbys' rules first, then the primary's rules
    and, once those are live, its md5 secrets; TLS stays offered. Every backend keeps asking
    Pgpool-II for the same authentication method."""
    return [
        *_replica_ids(),
        {f"if ({_have_replicas()})": [cmd("${globals.replicaIds}", shell.disable(stage="require"))]},
        _each("sqldb", [cmd("${@n.id}", shell.disable(stage="require"))], only="master"),
    ]


@action("afterRedeploy")
def _after_redeploy() -> list[Any]:
    """A redeploy keeps our folders (redeploy.conf), but the configuration files it replaces lose
    our settings: put back whatever is missing. Every step is idempotent."""
    return [
        "fetchAgentEverywhere",
        {"saveOptions": LAYER},
        "repairLayer",
        "enableLayer",
        "replicationBack",
        "renewSchedule",
    ]


@action("passwordReset")
def _password_reset() -> list[Any]:
    """After the password of webadmin was reset on the database layer: Pgpool-II's AES entry
    follows, on the Pgpool-II nodes that carry our agent."""
    return [
        {f"if ('{LAYER}' == 'sqldb')": [_if_layer_has_tls("pgpool", [
            "fetchAgentEverywhere",
            _each("pgpool", [_enable("offer", "pgpool", secrets=True)]),
        ])]},
    ]

