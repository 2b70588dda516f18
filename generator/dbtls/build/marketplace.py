"""Marketplace listings: one launcher per database family, plus the logo.

A launcher is a ``type: install`` manifest without nodes: its form picks an environment and the
layers, then it installs ``manifest.jps`` on each chosen layer -- the database layer first, because
its primary holds the CA and its servers must offer TLS before a proxy can use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .manifest import (
    HOMEPAGE,
    MYSQL_TYPES,
    PGPOOL_TYPES,
    POSTGRES_TYPES,
    PROXYSQL_TYPES,
    TUTORIAL_MYSQL,
    TUTORIAL_PG,
    install_fields,
)


@dataclass(frozen=True)
class Family:
    """What differs between the PostgreSQL and the MySQL listing."""

    slug: str
    title: str
    db_types: list[str]
    proxy_types: list[str]
    proxy_layer: str
    tutorial: str
    blurb: str


FAMILIES = (
    Family("postgres-ssl", "PostgreSQL", POSTGRES_TYPES, PGPOOL_TYPES, "pgpool", TUTORIAL_PG,
           "PostgreSQL and Pgpool-II: hostssl + scram-sha-256 rules, TLS from Pgpool-II to every "
           "backend, streaming replication over TLS."),
    Family("mysql-ssl", "MySQL/MariaDB/Percona", MYSQL_TYPES, PROXYSQL_TYPES, "proxy", TUTORIAL_MYSQL,
           "MySQL, MariaDB and Percona with ProxySQL: ssl-config.cnf on every server, TLS on both sides "
           "of ProxySQL with CA verification, optional require_secure_transport."),
)

#: Runs in the platform before the form shows: list running environments that have the family's
#: node types, and for each the layers the add-on can go on (as upstream's onBeforeInit does).
_ON_BEFORE_INIT = """\
var dbTypes = %(db)s, proxyTypes = %(proxy)s;
var resp = jelastic.env.control.GetEnvs();
if (resp.result != 0) return resp;
var envs = {}, groups = {}, found = false;
for (var i = 0; i < resp.infos.length; i++) {
  var info = resp.infos[i], layers = {}, hasDb = false;
  if (info.env.status != 1) continue;
  for (var j = 0; j < info.nodes.length; j++) {
    var n = info.nodes[j];
    if (dbTypes.indexOf(n.nodeType) > -1) { layers[n.nodeGroup] = n.nodeGroup + " (database)"; hasDb = true; }
    if (proxyTypes.indexOf(n.nodeType) > -1) layers[n.nodeGroup] = n.nodeGroup + " (proxy)";
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


def _child_settings() -> dict[str, str]:
    return {f["name"]: "${settings." + f["name"] + "}" for f in install_fields()}


def launcher(family: Family, base_url: str) -> dict[str, Any]:
    """The ``type: install`` listing of one family."""
    install = []
    for layer in ("sqldb", family.proxy_layer):
        install.append({f"if ('${{settings.nodeGroups}}'.indexOf('{layer}') > -1)": [
            {"install": {"jps": "${baseUrl}/manifest.jps?_r=${fn.random}", "envName": "${settings.envName}",
                         "nodeGroup": layer, "settings": _child_settings()}},
        ]})
    return {
        "type": "install",
        "jpsVersion": "6.1.1",
        "id": family.slug,
        "name": f"{family.title} SSL/TLS Encryption in Transit",
        "logo": "/marketplace/dbtls.svg",
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
        "baseUrl": base_url,
        "targetNodes": {"nodeType": family.db_types + family.proxy_types},
        "onBeforeInit": _ON_BEFORE_INIT % {"db": json.dumps(family.db_types),
                                          "proxy": json.dumps(family.proxy_types)},
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
    }


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
