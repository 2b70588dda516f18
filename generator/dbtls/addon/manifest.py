"""The add-on manifest (``manifest.jps``) as Python data.

One ``type: update`` add-on for the four node kinds. It is installed once per layer (the platform's
Add-ons tab, or the marketplace launchers in marketplace.py, which install the database layer first).
Key order here is the order in the YAML, so the output is stable and reads top-down like upstream's.
"""

from __future__ import annotations

from typing import Any

from dbtls.addon.actions import LAYER, custom_actions

ADDON_ID = "dbtls"
NAME = "SSL/TLS Encryption in Transit"
HOMEPAGE = "https://github.com/dbtls/dbtls"
DOCS = f"{HOMEPAGE}/blob/main/docs"

#: Canonical nodeTypes and their aliases, as the Cloud Scripting docs list them
#: (selecting-containers.md), plus the versioned names working add-ons use for newer stacks. The
#: docs say aliases cannot be used in filters, yet the platform's own add-ons list them: both are
#: listed. The marketplace launchers match node types by family name instead (see marketplace.py).
POSTGRES_TYPES = ["postgresql", "postgres11", "postgres12", "postgres13", "postgres14", "postgres15",
                  "postgres16", "postgres17"]
PGPOOL_TYPES = ["pgpool2", "pgpool2-4"]
MYSQL_TYPES = ["mysql", "mysql5", "mysql8",
               "mariadb-dockerized", "mariadb", "mariadb10", "mariadb103", "mariadb104", "mariadb105",
               "mariadb106", "mariadb107", "mariadb108", "mariadb109", "mariadb1010", "mariadb1011",
               "perconadb", "percona5", "percona5.7", "percona8", "percona8.0"]
PROXYSQL_TYPES = ["proxysql"]
ALL_TYPES = POSTGRES_TYPES + PGPOOL_TYPES + MYSQL_TYPES + PROXYSQL_TYPES

KEY_TYPES = {"rsa2048": "RSA 2048", "rsa3072": "RSA 3072", "rsa4096": "RSA 4096",
             "ecdsa-p256": "ECDSA P-256"}


def install_fields() -> list[dict[str, Any]]:
    """Fields of the install form (shared with the marketplace launchers)."""
    return [
        {"type": "list", "name": "keyType", "caption": "Key type", "values": KEY_TYPES,
         "default": "rsa2048", "required": True},
        {"type": "list", "name": "minTls",
         "caption": "Minimum TLS version (database servers and Pgpool-II; ProxySQL has no such setting for "
                    "its clients)",
         "values": {"TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}, "default": "TLSv1.2", "required": True},
        {"type": "toggle", "name": "requireTls", "value": False,
         "caption": "Require TLS for every remote connection (MySQL/MariaDB/Percona; PostgreSQL always "
                    "requires it with hostssl rules)"},
        {"type": "toggle", "name": "clientCertAuth", "value": False,
         "caption": "Log in with client certificates instead of passwords (remote connections)"},
        {"type": "toggle", "name": "md5Compat", "value": False,
         "caption": "Keep md5 password logins working (roles not yet re-hashed to SCRAM)"},
        {"type": "string", "name": "extraNames", "caption": "Extra DNS names for the certificates",
         "default": "", "required": False, "regex": "^[A-Za-z0-9.*:, -]*$",
         "regexText": "DNS names or IP addresses, separated by commas",
         "tooltip": "Custom domains or endpoints clients use; node names, the environment domain and "
                    "IPs are always included."},
        {"type": "toggle", "name": "enforceAnyway", "value": False,
         "caption": "Enable TLS even if a client that does not use TLS would then be locked out (otherwise the "
                    "installation stops before requiring TLS and names the client)"},
        # Benchmarks only (bench/downtime.py): behave like the upstream add-on and restart every
        # node's service on enable, re-issue and uninstall. Hidden: never offered to users.
        {"type": "toggle", "name": "upstreamMode", "value": False, "hidden": True,
         "caption": "Restart services like the upstream add-on (benchmarks only)"},
    ]


def settings() -> dict[str, Any]:
    return {
        "main": {"fields": install_fields()},
        "reissue": {"fields": [
            {"type": "radiolist", "name": "scope", "caption": "Re-issue", "default": "server",
             "values": {"server": "Server certificates (the CA is kept, clients keep trusting)",
                        "client": "Client certificates",
                        "all": "Everything, including a new CA (clients need the new root.crt)"}},
        ]},
        "clientKit": {"fields": [
            {"type": "string", "name": "dbUser", "caption": "Database user", "required": True,
             "regex": "^[A-Za-z0-9_.@%-]+$", "regexText": "a database user name",
             "tooltip": "webadmin (PostgreSQL) or root (MySQL family), or a user a client-certificate "
                        "button registered"},
        ]},
        "clientCert": {"fields": [
            {"type": "string", "name": "dbUser", "caption": "Database user", "required": True,
             "regex": "^[A-Za-z0-9_.@%-]+$", "regexText": "a MySQL account name"},
        ]},
    }


def buttons() -> list[dict[str, Any]]:
    return [
        {"caption": "Re-issue certificates", "action": "reissue", "settings": "reissue",
         "confirmText": "Issue new certificates? Servers reload them; with a new CA clients need the new "
                        "root.crt.",
         "loadingText": "Re-issuing certificates...", "successText": "Certificates re-issued.",
         "submitButtonText": "Re-issue"},
        # A button's href is one fixed link for every layer; the action names the layer's own guide.
        {"caption": "Renew due certificates", "action": "renew",
         "confirmText": "Renew every certificate of this layer that ends within 30 days? Servers reload "
                        "them as on a re-issue; nothing changes when nothing is due.",
         "loadingText": "Checking and renewing certificates...",
         "successText": "Renewal finished: the message lists what was renewed."},
        {"caption": "Configuration Tutorial", "action": "tutorial"},
        {"caption": "Certificate status", "action": "certStatus", "loadingText": "Reading certificates..."},
        {"caption": "Check before enabling TLS", "action": "checkTls", "loadingText": "Checking logins, sessions "
         "and replication..."},
        {"caption": "Client connection kit", "action": "clientKit", "settings": "clientKit",
         "loadingText": "Writing the client kit...", "submitButtonText": "Write kit"},
        {"caption": "Require client certificate for a user", "action": "requireClientCert",
         "settings": "clientCert", "loadingText": "Applying...",
         "successText": "The user now needs a client certificate (MySQL/MariaDB/Percona only)."},
    ]


def success() -> dict[str, Any]:
    return {
        "text": "TLS is set up on **${targetNodes.nodeGroup}** of ${env.envName}. "
                "${globals.pending}\n"
                "${globals.report}\n\n"
                "What TLS changed for existing logins, sessions and replication (checked before anything "
                "changed; the lines starting 'to do' need your action):${globals.preflight}\n\n"
                "Each node keeps `root.crt` in /var/lib/jelastic/keys/SSL-TLS/server; database nodes "
                "keep client certificates in /var/lib/jelastic/keys/SSL-TLS/client. How to connect: "
                f"{DOCS}/postgresql.md and {DOCS}/mysql.md",
        "email": False,
    }


def events() -> dict[str, Any]:
    """Platform events. Every installed instance hears every event, so each handler is filtered to
    the instance's own layer and checks what it needs before touching another layer."""
    return {
        f"onAfterServiceScaleOut[{LAYER}]": ["addNodes", "enableLayer", "replicationBack", "refreshProxies",
                                                     "renewSchedule", "report"],
        f"onAfterRedeployContainer[{LAYER}]": ["afterRedeploy"],
        f"onAfterResetServicePassword[{LAYER}]": ["passwordReset"],
        "onAfterClone": [
            {"script": "return {result: 0, jps: MANIFEST};"},
            {"install": {"jps": "${response.jps}", "envName": "${event.response.env.envName}",
                         "nodeGroup": LAYER, "settings": {
                             f["name"]: "${settings." + f["name"] + "}" for f in install_fields()}}},
        ],
    }


def build_manifest(agent_sha256: str, base_url: str | None = None) -> dict[str, Any]:
    """The whole add-on manifest for agent ``agent_sha256``.

    Without ``base_url`` the manifest declares none: the platform then takes the folder the manifest
    was imported from (a tag or commit of this repository), which is where the agent lies. A
    declared baseUrl would beat the import URL, so only ``dbtls build --base-url`` pins one.
    """
    manifest: dict[str, Any] = {
        "type": "update",
        "jpsVersion": "6.1.1",
        "id": ADDON_ID,
        "name": NAME,
        "logo": "/marketplace/dbtls.svg",
        "description": {
            "short": "TLS for PostgreSQL/Pgpool-II and MySQL/MariaDB/Percona/ProxySQL with one CA per "
                     "environment",
            "text": "Turns on SSL/TLS encryption in transit for the layer: certificates with full names "
                    "(verify-full works) from a private CA whose key never leaves the primary database "
                    "node, scram-sha-256 and hostssl rules for PostgreSQL, TLS between proxies and "
                    "servers, and a clean uninstall that restores every changed file.",
        },
        "homepage": HOMEPAGE,
        "categories": ["apps/dev-and-admin-tools", "apps/clustered-dbs"],
        "targetEditions": "any",
    }
    if base_url:
        manifest["baseUrl"] = base_url
    manifest.update({
        "targetNodes": {"nodeType": ALL_TYPES},
        "settings": settings(),
        "globals": {"report": "", "pending": ""},
        "onInstall": ["checkSupported", "preflightLayer", {"saveOptions": LAYER}, "prepareCa", "issueLayer",
                      "enableLayer", "renewSchedule", "settledReport"],
        "onUninstall": ["renewUnschedule", "disableLayer"],
        **events(),
        "buttons": buttons(),
        "actions": custom_actions(agent_sha256),
        "success": success(),
    })
    return manifest
