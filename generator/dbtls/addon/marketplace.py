"""Marketplace listings: one launcher per database family, plus the logo.

A launcher is a ``type: install`` manifest without nodes: its form picks an environment and the
layers, then it installs ``manifest.jps`` on each chosen layer -- the database layer first, because
its primary holds the CA and its servers must offer TLS before a proxy can use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dbtls.addon.actions import one_of
from dbtls.addon.links import TUTORIAL_MYSQL, TUTORIAL_PG
from dbtls.addon.manifest import (
    HOMEPAGE,
    MYSQL_TYPES,
    PGPOOL_TYPES,
    POSTGRES_TYPES,
    PROXYSQL_TYPES,
    install_fields,
)


@dataclass(frozen=True)
class Family:
    """What differs between the PostgreSQL and the MySQL listing."""

    slug: str
    title: str
    db_types: list[str]
    proxy_types: list[str]
    #: Substrings of nodeType that mark the family's database / proxy nodes (as upstream matches).
    db_match: list[str]
    proxy_match: list[str]
    #: Oldest major version the family's databases need (0: none).
    min_major: int
    proxy_layer: str
    tutorial: str
    blurb: str


FAMILIES = (
    Family("dbtls-postgres", "PostgreSQL", POSTGRES_TYPES, PGPOOL_TYPES, ["postgres"], ["pgpool"], 11, "pgpool",
           TUTORIAL_PG, "PostgreSQL and Pgpool-II: hostssl + scram-sha-256 rules, TLS from Pgpool-II to every "
           "backend, streaming replication over TLS."),
    Family("dbtls-mysql", "MySQL/MariaDB/Percona", MYSQL_TYPES, PROXYSQL_TYPES, ["mysql", "mariadb", "percona"],
           ["proxysql"], 0, "proxy", TUTORIAL_MYSQL,
           "MySQL, MariaDB and Percona with ProxySQL: ssl-config.cnf on every server, TLS on both sides "
           "of ProxySQL, optional require_secure_transport."),
)

#: Runs in the platform before the form shows: the running environments that have the family's
#: databases, and for each the layers the add-on can go on. Node types are matched by family name
#: (``postgres15``, ``mariadb-dockerized`` ...), as the platform's own add-ons do, so a new version
#: of a stack is offered without a new release of this add-on.
_ON_BEFORE_INIT = """\
var dbMatch = %(db)s, proxyMatch = %(proxy)s, minMajor = %(min_major)d;
function matches(type, names) {
  for (var k = 0; k < names.length; k++) if (String(type).indexOf(names[k]) > -1) return true;
  return false;
}
var resp = jelastic.env.control.GetEnvs();
if (resp.result != 0) return resp;
var envs = {}, groups = {}, found = false;
for (var i = 0; i < resp.infos.length; i++) {
  var info = resp.infos[i], layers = {}, hasDb = false;
  if (info.env.status != 1) continue;
  for (var j = 0; j < info.nodes.length; j++) {
    var n = info.nodes[j];
    var major = parseInt(String(n.version || "0").split(".")[0], 10) || 0;
    if (matches(n.nodeType, dbMatch) && major >= minMajor) { layers[n.nodeGroup] = n.nodeGroup + " (database)"; hasDb = true; }
    else if (matches(n.nodeType, proxyMatch)) layers[n.nodeGroup] = n.nodeGroup + " (proxy)";
  }
  if (!hasDb) continue;
  found = true;
  envs[info.env.envName] = info.env.displayName || info.env.envName;
  groups[info.env.envName] = [];
  for (var g in layers) groups[info.env.envName].push({value: g, caption: layers[g]});
}
if (!found) return {result: 0, settings: {fields: [{type: "displayfield", caption: "No running environment has a supported database."}]}};
jps.settings.fields[0].values = envs;
jps.settings.fields[1].dependsOn = {envName: groups};
return {result: 0, settings: jps.settings};
"""

#: The repository root, from the launcher's own base URL: the platform derives baseUrl from the
#: folder the launcher was imported from (``.../marketplace``), and manifest.jps lies one level up.
_ROOT_SCRIPT = """\
var base = String('${baseUrl}').replace(/\\/+$/, '');
if (/\\/marketplace$/.test(base)) base = base.replace(/\\/marketplace$/, '');
return {result: 0, root: base};
"""


def selections(layer: str, proxy_layer: str) -> list[str]:
    """Every value of the multi-select "Node Group(s)" that includes ``layer``: the form offers the
    database layer and the proxy layer, and sends the chosen ones joined by commas."""
    both = [f"sqldb{sep}{proxy_layer}" for sep in (",", ", ")] + [f"{proxy_layer}{sep}sqldb" for sep in (",", ", ")]
    return [layer, *both]


def _child_settings() -> dict[str, str]:
    return {f["name"]: "${settings." + f["name"] + "}" for f in install_fields()}


def launcher(family: Family, base_url: str | None = None) -> dict[str, Any]:
    """The ``type: install`` listing of one family (``base_url`` pins one, see build_manifest)."""
    install: list[Any] = [
        {"script": _ROOT_SCRIPT},
        {"setGlobals": {"root": "${response.root}"}},
    ]
    for layer in ("sqldb", family.proxy_layer):
        install.append({f"if ({one_of('settings.nodeGroups', selections(layer, family.proxy_layer))})": [
            {"install": {"jps": "${globals.root}/manifest.jps?_r=${fn.random}", "envName": "${settings.envName}",
                         "nodeGroup": layer, "settings": _child_settings()}},
        ]})
    manifest: dict[str, Any] = {
        "type": "install",
        "jpsVersion": "6.1.1",
        "id": family.slug,
        "name": f"{family.title} SSL/TLS Encryption in Transit",
        "logo": "/dbtls.svg",
        "description": {
            "short": f"Encryption in transit for {family.title} clusters",
            "text": f"Turns on SSL/TLS for {family.blurb} One private CA per environment (its key stays "
                    "on the primary database node), certificates valid for every node name, the "
                    "environment domain and IPs, re-issue and status buttons, and an uninstall that "
                    f"restores the original configuration. Connection guide: {family.tutorial}",
        },
        "homepage": HOMEPAGE,
        "categories": ["apps/dev-and-admin-tools", "apps/clustered-dbs"],
        "targetEditions": "any",
    }
    if base_url:
        manifest["baseUrl"] = base_url
        manifest["logo"] = "/marketplace/dbtls.svg"
    manifest.update({
        "targetNodes": {"nodeType": family.db_types + family.proxy_types},
        "onBeforeInit": _ON_BEFORE_INIT % {"db": json.dumps(family.db_match), "proxy": json.dumps(family.proxy_match),
                                          "min_major": family.min_major},
        "settings": {"fields": [
            {"type": "list", "name": "envName", "caption": "Environment", "required": True, "values": {}},
            {"type": "list", "name": "nodeGroups", "caption": "Node Group(s)", "multiSelect": True,
             "required": True, "dependsOn": {"envName": {}},
             "tooltip": f"Choose the database layer and, in a cluster, the {family.proxy_layer} layer too."},
            *install_fields(),
        ]},
        "onInstall": install,
        "success": {"text": "TLS is on for ${settings.nodeGroups} of ${settings.envName}. Find the "
                            "per-node result and the Re-issue / Certificate status buttons in each "
                            f"layer's Add-Ons tab. Connecting with TLS: {family.tutorial}",
                    "email": False},
    })
    return manifest


LOGO_SVG = """\
<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">
  <title>dbtls</title>
  <ellipse cx="40" cy="22" rx="28" ry="10" fill="#2f6f9f"/>
  <path d="M12 22v44c0 5.5 12.5 10 28 10s28-4.5 28-10V22c0 5.5-12.5 10-28 10S12 27.5 12 22z" fill="#3b82c4"/>
  <path d="M12 44c0 5.5 12.5 10 28 10s28-4.5 28-10" fill="none" stroke="#2f6f9f" stroke-width="3"/>
  <rect x="52" y="52" width="34" height="28" rx="4" fill="#f2b01e"/>
  <path d="M59 52v-8a10 10 0 0 1 20 0v8" fill="none" stroke="#f2b01e" stroke-width="5"/>
  <circle cx="69" cy="64" r="4" fill="#6b4a00"/>
  <rect x="67.5" y="66" width="3" height="8" fill="#6b4a00"/>
</svg>
"""
