"""Pre-flight report for a ProxySQL node (admin interface): its users and what Require TLS refuses.

ProxySQL authenticates application users itself, from ``mysql_users``. Enable without *Require TLS*
leaves that table alone (``use_ssl`` of every user stays as it is) and sets ``mysql-have_ssl=true``,
so clients may use TLS and need not: nobody is refused. With *Require TLS* enable sets
``use_ssl=1`` on every user; a client of such a user that connects without TLS is refused. The
report lists the users from ``runtime_mysql_users`` and names those active frontend users whose
plaintext clients that would refuse. Read-only.
"""

from typing import Any, Dict, List, Optional

from dbtls_agent.errors import AgentError
from dbtls_agent.roles import lockout
from dbtls_agent.roles.mysql import client

USERS_SQL = ("SELECT username, active, use_ssl, frontend, backend, default_hostgroup FROM runtime_mysql_users "
             "ORDER BY username, backend")
SERVERS_SQL = "SELECT hostgroup_id, hostname, port, use_ssl, status FROM runtime_mysql_servers ORDER BY 1, 2, 3"
HAVE_SSL_SQL = "SELECT variable_value FROM runtime_global_variables WHERE variable_name = 'mysql-have_ssl'"
SESSIONS_SQL = "SELECT user, cli_host FROM stats_mysql_processlist"


def analyse(users: List[List[Optional[str]]], servers: List[List[Optional[str]]], have_ssl: Optional[str],
            sessions: Optional[List[List[Optional[str]]]] = None) -> Dict[str, Any]:
    """The report (pure) from the admin interface's rows (strings as the client prints them)."""
    rows = [{"username": u or "", "active": a == "1", "use_ssl": s == "1", "frontend": f == "1",
             "backend": b == "1", "default_hostgroup": int(h or 0)} for u, a, s, f, b, h in users]
    frontend = [r for r in rows if r["frontend"] and r["active"]]
    refused = sorted({r["username"] for r in frontend if not r["use_ssl"]})
    needs = []
    if refused:
        needs.append(lockout.action(", ".join(refused), "proxysql", "these users' clients may connect to ProxySQL "
                                    "without TLS today; with Require TLS (use_ssl=1) such a login is refused",
                                    "before turning on Require TLS, make their applications connect with TLS",
                                    lockout.PLAINTEXT_USERS))
    return {"role": "proxysql", "have_ssl": (have_ssl or "").lower() == "true", "users": rows,
            "require_tls_would_refuse": {"users_without_use_ssl": refused},
            "servers": [{"hostgroup": int(h or 0), "hostname": n or "", "port": int(p or 0), "use_ssl": u == "1",
                         "status": st or ""} for h, n, p, u, st in servers],
            "sessions": None if sessions is None else [{"user": u or "", "address": c or ""} for u, c in sessions],
            "needs_action": needs, "blockers": []}


def gather_and_analyse(admin: Any) -> Dict[str, Any]:
    """Query ``admin`` (a ``roles.proxysql.Admin``) and analyse; sessions are None where ProxySQL
    (or its test double) has no ``stats_mysql_processlist``."""
    def rows(sql: str) -> List[List[Optional[str]]]:
        return client.parse_batch_output(admin.client.query(sql))
    sessions = None  # type: Optional[List[List[Optional[str]]]]
    try:
        sessions = rows(SESSIONS_SQL)
    except AgentError:
        sessions = None
    have = rows(HAVE_SSL_SQL)
    report = analyse(rows(USERS_SQL), rows(SERVERS_SQL), have[0][0] if have else None, sessions)
    report["version"] = ".".join(map(str, admin.version))
    return report
