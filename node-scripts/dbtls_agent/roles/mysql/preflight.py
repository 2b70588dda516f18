"""Pre-flight report for a MySQL/MariaDB/Percona node: remote accounts, plaintext sessions, replication.

Read-only, as root over the local socket (the ``mysql`` role's own login). What TLS changes for
existing clients depends on one option: without *Require TLS* nothing is refused (TLS is only
offered); with it (``require_secure_transport=ON``) every TCP login without TLS is refused, the
loopback address included, while socket logins keep working. So the report names:

* accounts that can log in from another machine (host not ``localhost``/``127.0.0.1``/``::1``) and
  whether they already demand TLS (``REQUIRE SSL``/``X509``/...);
* sessions connected right now over TCP, each with its TLS state: per thread from
  ``performance_schema.status_by_thread`` (``Ssl_cipher``) when performance_schema is on; when it is
  off (MariaDB's default) the TLS state is known only while the server offers no TLS at all
  (every session is plaintext then), and reported as unknown otherwise;
* what *Require TLS* would refuse: plaintext sessions (their next login) and accounts without a TLS
  requirement (any login of theirs without TLS);
* replication: this node's channels (IO/SQL thread, last IO error) and the replicas connected to it
  (``Binlog Dump`` threads).
"""

from typing import Any, Dict, Optional, Sequence

from dbtls_agent.errors import AgentError
from dbtls_agent.roles import lockout
from dbtls_agent.roles.mysql import flavor as mysqlflavor

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
SYSTEM_USERS = ("system user", "event_scheduler", "unauthenticated user")
_PFS_SQL = ("SELECT t.PROCESSLIST_ID, COALESCE(t.CONNECTION_TYPE, ''), COALESCE(s.VARIABLE_VALUE, '') "
            "FROM performance_schema.threads t LEFT JOIN performance_schema.status_by_thread s "
            "ON s.THREAD_ID = t.THREAD_ID AND s.VARIABLE_NAME = 'Ssl_cipher' WHERE t.PROCESSLIST_ID IS NOT NULL")


def channels_query(flavor: str, version: Sequence[int]) -> str:
    """Every replication channel: MariaDB's multi-source form, else SHOW REPLICA/SLAVE STATUS."""
    if flavor == mysqlflavor.MARIADB:
        return "SHOW ALL SLAVES STATUS"
    return mysqlflavor.replica_status_query(flavor, tuple(version))


def split_host(host: str) -> str:
    """``ip:port`` (PROCESSLIST.HOST of a TCP session) -> ip; ``localhost`` (socket) stays as it is."""
    if not host or host == "localhost":
        return host or ""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if ":" in host and host.rsplit(":", 1)[1].isdigit():
        return host.rsplit(":", 1)[0]
    return host


def is_loopback(address: str) -> bool:
    return address in LOCAL_HOSTS or address.startswith("127.") or address in ("::ffff:127.0.0.1",)


def gather(node: Any, proxy_addresses: Sequence[str] = ()) -> Dict[str, Any]:
    """Facts from the local server through a ``roles.mysql.Node`` (root over the socket)."""
    client = node.client
    has_rst = mysqlflavor.has_require_secure_transport(node.flavor, node.version)
    row = client.rows("SELECT @@have_ssl, @@performance_schema, {}, CONNECTION_ID(), UNIX_TIMESTAMP()".format(
        "@@require_secure_transport" if has_rst else "'OFF'"))[0]
    uptime = client.rows("SHOW GLOBAL STATUS LIKE 'Uptime'")
    now = float(row[4] or 0)
    role_filter = "WHERE is_role <> 'Y'" if node.flavor == mysqlflavor.MARIADB else ""
    accounts = [{"user": u or "", "host": h or "", "ssl_type": s or ""} for u, h, s in client.rows(
        "SELECT User, Host, ssl_type FROM mysql.user {} ORDER BY User, Host".format(role_filter))]
    processes = [{"id": int(i), "user": u or "", "host": h or "", "database": d or "", "command": c or ""}
                 for i, u, h, d, c in client.rows(
                     "SELECT ID, USER, HOST, DB, COMMAND FROM information_schema.PROCESSLIST "
                     "WHERE ID <> CONNECTION_ID() ORDER BY ID")]
    pfs = None  # type: Optional[Dict[int, Dict[str, str]]]
    if (row[1] or "0") in ("1", "ON"):
        try:
            pfs = {int(i): {"connection_type": t or "", "cipher": c or ""} for i, t, c in client.rows(_PFS_SQL)}
        except AgentError:
            pfs = None
    channels = mysqlflavor.parse_replica_status(client.query(channels_query(node.flavor, node.version),
                                                             column_names=True))
    return {"flavor": node.flavor, "version": ".".join(map(str, node.version)), "have_ssl": row[0] or "",
            "performance_schema": pfs is not None, "require_secure_transport": row[2] or "OFF",
            "own_connection": int(row[3]), "now": now,
            "server_start": now - float(uptime[0][1]) if uptime else None,
            "accounts": accounts, "processes": processes, "pfs": pfs,
            "channels": [{"name": c.channel, "source": c.source_host, "io_running": c.io_running,
                          "sql_running": c.sql_running, "last_io_error": c.last_io_error,
                          "ssl_allowed": c.ssl_allowed} for c in channels],
            "offered": node.state.get("tls_offered"), "proxy_addresses": list(proxy_addresses)}


def _after_offer(process: Dict[str, Any], offered: Optional[Dict[str, Any]], server_start: Optional[float],
                 have_ssl: str) -> Optional[bool]:
    """Did this session start while TLS was already offered? None: TLS is not offered."""
    if have_ssl.upper() != "YES":
        return None
    if not offered:
        return True  # offered by someone else before us: the client had the choice all along
    if server_start is not None and offered.get("server_start") is not None and \
            server_start > float(offered["server_start"]) + 2.0:
        return True  # restarted since: our configuration was there from the start
    return process["id"] > int(offered.get("conn_id") or 0)


def analyse(facts: Dict[str, Any]) -> Dict[str, Any]:
    """The report (pure); ``blockers`` apply to ``enable --require-tls`` only."""
    have_ssl = (facts.get("have_ssl") or "").upper()
    pfs = facts.get("pfs")
    proxies = set(facts.get("proxy_addresses") or [])
    sessions = []
    for proc in facts.get("processes", []):
        if proc["user"] in SYSTEM_USERS or not proc["host"] or proc["host"] == "localhost":
            continue
        address = split_host(proc["host"])
        if pfs is not None and proc["id"] in pfs:
            tls = bool(pfs[proc["id"]]["cipher"]) or pfs[proc["id"]]["connection_type"] == "SSL/TLS"
        elif have_ssl != "YES":
            tls = False  # the server offers no TLS: every TCP session is plaintext
        else:
            tls = None
        kind = "replication" if proc["command"].startswith("Binlog Dump") else (
            "proxy" if address in proxies else "client")
        sessions.append({"id": proc["id"], "user": proc["user"], "address": address, "application": "",
                         "database": proc["database"], "tls": tls, "kind": kind, "loopback": is_loopback(address),
                         "replication": kind == "replication",
                         "after": "refused" if not tls else "unchanged",
                         "after_offer": _after_offer(proc, facts.get("offered"), facts.get("server_start"), have_ssl)})
    plaintext = [s for s in sessions if s["tls"] is False]
    unknown = [s for s in sessions if s["tls"] is None]
    remote = [a for a in facts.get("accounts", []) if a["host"] not in LOCAL_HOSTS]
    no_requirement = ["{}@{}".format(a["user"], a["host"]) for a in remote if not a["ssl_type"]]
    candidates = [s for s in plaintext if s["kind"] != "proxy"]
    split = lockout.classify_sessions(candidates, None, "mysql")
    needs = list(split["needs_action"])
    if unknown and have_ssl == "YES":
        needs.append(lockout.action("{} session(s)".format(len(unknown)), "mysql", "performance_schema is off, so "
                                    "the TLS state of sessions connected over TCP is unknown",
                                    "check the clients use TLS before turning on Require TLS", lockout.TLS_UNKNOWN))
    channels = facts.get("channels", [])
    return {
        "role": "mysql", "flavor": facts.get("flavor"), "version": facts.get("version"), "have_ssl": have_ssl,
        "require_secure_transport": facts.get("require_secure_transport"),
        "performance_schema": facts.get("performance_schema"),
        "remote_accounts": [{"account": "{}@{}".format(a["user"], a["host"]), "requires": a["ssl_type"] or None}
                            for a in remote],
        "sessions": sessions, "sessions_without_tls": plaintext, "sessions_tls_unknown": unknown,
        "require_tls_would_refuse": {"accounts_without_tls_requirement": no_requirement,
                                     "sessions_without_tls": [lockout.session_label(s) for s in plaintext],
                                     "sessions_tls_unknown": [lockout.session_label(s) for s in unknown]},
        "replication": {"channels": channels,
                        "replicas": sorted({s["address"] for s in sessions if s["kind"] == "replication"})},
        "needs_action": needs, "blockers": split["blockers"],
    }


