"""What dbtls sends to ProxySQL's admin interface (port 6032), as plain lists of SQL statements.

ProxySQL keeps three copies of its configuration (memory, runtime, disk). Every plan
therefore edits memory, then ``LOAD ... TO RUNTIME``, then ``SAVE ... TO DISK``, and is checked
against the ``runtime_*`` tables afterwards. Before enabling, the applier records the previous values
(:func:`snapshot_queries`), and :func:`disable_plan` puts exactly those back, instead of the upstream
add-on's blanket ``use_ssl=0`` / ``have_ssl=false``.

The admin interface is SQLite underneath: string literals use standard SQL quoting (no backslash
escapes).
"""

import posixpath
import re
from typing import Dict, List, Optional, Sequence, Tuple

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql.client import parse_batch_output
from dbtls_agent.roles.mysql.users import sql_literal

#: Frontend TLS files ProxySQL loads from its datadir (fixed names; all three or none).
FRONTEND_CA = "proxysql-ca.pem"
FRONTEND_CERT = "proxysql-cert.pem"
FRONTEND_KEY = "proxysql-key.pem"
FRONTEND_FILES = (FRONTEND_CA, FRONTEND_CERT, FRONTEND_KEY)
#: The platform's ProxySQL datadir (jelastic-jps/mysql-cluster configs/proxysql.cnf).
PLATFORM_DATADIR = "/var/lib/proxysql"

HAVE_SSL = "mysql-have_ssl"
P2S_CA = "mysql-ssl_p2s_ca"
P2S_CERT = "mysql-ssl_p2s_cert"
P2S_KEY = "mysql-ssl_p2s_key"
#: Global variables a plan may change, recorded before enabling.
RECORDED_VARIABLES = (HAVE_SSL, P2S_CA, P2S_CERT, P2S_KEY)

#: PROXYSQL RELOAD TLS exists from 2.3.0; older versions read the files only at start.
RELOAD_TLS_SINCE = (2, 3, 0)

Version = Tuple[int, int, int]


def _lit(value: str) -> str:
    return sql_literal(value, backslash_escapes=False)


def frontend_tls_paths(datadir: str = PLATFORM_DATADIR) -> Dict[str, str]:
    """``{"ca": ..., "cert": ..., "key": ...}``: where the three frontend files go.
    ``proxysql-cert.pem`` holds the leaf only (ProxySQL reads its first PEM block), the issuing CA
    goes to ``proxysql-ca.pem``."""
    return {
        "ca": posixpath.join(datadir, FRONTEND_CA),
        "cert": posixpath.join(datadir, FRONTEND_CERT),
        "key": posixpath.join(datadir, FRONTEND_KEY),
    }


def version_query() -> str:
    """ProxySQL's own version (``SELECT @@version`` gives the MySQL version it pretends to be)."""
    return "SELECT variable_value FROM global_variables WHERE variable_name='admin-version'"


def parse_version(output: str) -> Version:
    """``2.5.5-10-g195cd61`` -> (2, 5, 5)."""
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", output)
    if not match:
        raise AgentError("cannot read the ProxySQL version from {!r}".format(output.strip()[:80]))
    return (int(match.group(1)), int(match.group(2)), int(match.group(3)))


class Snapshot(object):
    """ProxySQL settings before dbtls changed them; stored as JSON in the state directory."""

    __slots__ = ("variables", "servers", "users")

    def __init__(
        self,
        variables: Optional[Dict[str, Optional[str]]] = None,
        servers: Optional[Sequence[Sequence]] = None,
        users: Optional[Sequence[Sequence]] = None,
    ) -> None:
        self.variables = dict(variables or {})  # name -> value (None when the row was missing)
        # (hostgroup_id, hostname, port, use_ssl) per mysql_servers row
        self.servers = [(int(h), str(n), int(p), int(u)) for h, n, p, u in (servers or [])]
        # (username, backend, use_ssl) per mysql_users row; (username, backend) is the key
        self.users = [(str(n), int(b), int(u)) for n, b, u in (users or [])]

    def to_dict(self) -> Dict[str, object]:
        return {"variables": dict(self.variables), "servers": [list(s) for s in self.servers],
                "users": [list(u) for u in self.users]}

    @classmethod
    def from_dict(cls, data: Dict) -> "Snapshot":
        return cls(data.get("variables"), data.get("servers"), data.get("users"))

    def __eq__(self, other):
        return isinstance(other, Snapshot) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return "Snapshot({!r})".format(self.to_dict())


def snapshot_queries() -> Dict[str, str]:
    """Queries whose ``--batch --skip-column-names`` output :func:`parse_snapshot` reads."""
    names = ", ".join(_lit(n) for n in RECORDED_VARIABLES)
    return {
        "variables": "SELECT variable_name, variable_value FROM global_variables "
                     "WHERE variable_name IN ({}) ORDER BY variable_name".format(names),
        "servers": "SELECT hostgroup_id, hostname, port, use_ssl FROM mysql_servers "
                   "ORDER BY hostgroup_id, hostname, port",
        "users": "SELECT username, backend, use_ssl FROM mysql_users ORDER BY username, backend",
    }


def _int(cell: Optional[str], what: str) -> int:
    try:
        return int(cell or "")
    except ValueError:
        raise AgentError("unexpected {} value {!r} from ProxySQL".format(what, cell)) from None


def _rows(output: str, columns: int, what: str) -> List[List[Optional[str]]]:
    rows = parse_batch_output(output)
    for row in rows:
        if len(row) != columns:
            raise AgentError("unexpected {} row from ProxySQL: {!r}".format(what, row))
    return rows


def parse_variables(output: str) -> Dict[str, Optional[str]]:
    """``name<TAB>value`` rows (global_variables or runtime_global_variables)."""
    return {row[0] or "": row[1] for row in _rows(output, 2, "variable")}


def parse_servers(output: str) -> List[Tuple[int, str, int, int]]:
    """``hostgroup_id, hostname, port, use_ssl`` rows."""
    return [(_int(r[0], "hostgroup_id"), r[1] or "", _int(r[2], "port"), _int(r[3], "use_ssl"))
            for r in _rows(output, 4, "mysql_servers")]


def parse_users(output: str) -> List[Tuple[str, int, int]]:
    """``username, backend, use_ssl`` rows."""
    return [(r[0] or "", _int(r[1], "backend"), _int(r[2], "use_ssl")) for r in _rows(output, 3, "mysql_users")]


def parse_snapshot(variables_output: str, servers_output: str, users_output: str) -> Snapshot:
    """Build a :class:`Snapshot` from the outputs of :func:`snapshot_queries`."""
    variables = parse_variables(variables_output)
    recorded = {name: variables.get(name) for name in RECORDED_VARIABLES}
    return Snapshot(recorded, parse_servers(servers_output), parse_users(users_output))


class Plan(object):
    """Statements to send in order, and whether ProxySQL must still be restarted afterwards."""

    __slots__ = ("statements", "restart_required", "notes")

    def __init__(
        self,
        statements: List[str],
        restart_required: bool = False,
        notes: Optional[List[str]] = None,
    ) -> None:
        self.statements = statements
        self.restart_required = restart_required
        self.notes = notes or []

    def __repr__(self):
        return "Plan({!r}, restart_required={!r})".format(self.statements, self.restart_required)


def _set_variable(name: str, value: str) -> str:
    return "UPDATE global_variables SET variable_value={} WHERE variable_name={}".format(_lit(value), _lit(name))


def min_tls_note(tls_versions: Optional[List[str]]) -> Optional[str]:
    """ProxySQL has no variable for its frontend's lowest TLS version (it sets TLS 1.0 as the minimum
    in its own code, after any OpenSSL configuration is read), so a minimum above the default cannot
    be honoured there; its backends keep the minimum the database servers enforce themselves."""
    if not tls_versions:
        return None
    return ("ProxySQL has no setting for its clients' lowest TLS version: the minimum {} is not enforced on "
            "ProxySQL's frontend (the database servers behind it enforce it)".format(tls_versions[0]))


def enable_plan(
    version: Version,
    backend_ca: str,
    require_tls: bool = False,
    backend_cert: Optional[str] = None,
    backend_key: Optional[str] = None,
) -> Plan:
    """Turn TLS on, backend side first so nothing depends on a hop not ready yet.

    1. ProxySQL -> MySQL: ``mysql-ssl_p2s_ca`` (+ client cert/key if the servers demand X509) and
       ``use_ssl=1`` on *every* mysql_servers row, whatever its port (the upstream add-on only
       touched port 3306).
    2. Client -> ProxySQL: ``PROXYSQL RELOAD TLS`` picks up the three files the caller wrote into
       the datadir beforehand, then ``mysql-have_ssl=true`` advertises TLS.
    3. Only with ``require_tls``: ``mysql_users.use_ssl=1`` (plaintext logins refused).
    """
    if bool(backend_cert) != bool(backend_key):
        raise AgentError("a ProxySQL backend client certificate needs both the certificate and the key")
    notes = []
    statements = [_set_variable(P2S_CA, backend_ca)]
    if backend_cert and backend_key:
        statements += [_set_variable(P2S_CERT, backend_cert), _set_variable(P2S_KEY, backend_key)]
    statements += [
        "LOAD MYSQL VARIABLES TO RUNTIME",
        "UPDATE mysql_servers SET use_ssl=1",
        "LOAD MYSQL SERVERS TO RUNTIME",
    ]
    restart = version < RELOAD_TLS_SINCE
    if restart:
        notes.append("ProxySQL {} has no PROXYSQL RELOAD TLS: restart it to serve the new frontend "
                     "certificate".format(".".join(map(str, version))))
    else:
        statements.append("PROXYSQL RELOAD TLS")
    statements += [_set_variable(HAVE_SSL, "true"), "LOAD MYSQL VARIABLES TO RUNTIME"]
    if require_tls:
        statements += ["UPDATE mysql_users SET use_ssl=1", "LOAD MYSQL USERS TO RUNTIME"]
    statements += ["SAVE MYSQL VARIABLES TO DISK", "SAVE MYSQL SERVERS TO DISK"]
    if require_tls:
        statements.append("SAVE MYSQL USERS TO DISK")
    notes.append("pooled plaintext backend connections stay until they close; cycle servers through "
                 "OFFLINE_SOFT to drain them")
    return Plan(statements, restart, notes)


def disable_plan(snapshot: Snapshot, reload_tls_version: Optional[Version] = None) -> Plan:
    """Restore exactly what :class:`Snapshot` recorded; rows added later (nodes added after enabling)
    get ``use_ssl=0``, the default. Pass ``reload_tls_version`` when the caller has put the previous
    frontend files back and wants them served (RELOAD TLS needs 2.3+)."""
    statements = []
    for name in RECORDED_VARIABLES:
        if name in snapshot.variables:
            # A missing/NULL value is stored back as '' (ProxySQL's "not set").
            statements.append(_set_variable(name, snapshot.variables[name] or ""))
    statements.append("UPDATE mysql_servers SET use_ssl=0")
    for hostgroup, hostname, port, use_ssl in snapshot.servers:
        if use_ssl:
            statements.append("UPDATE mysql_servers SET use_ssl={:d} WHERE hostgroup_id={:d} AND hostname={} "
                              "AND port={:d}".format(use_ssl, hostgroup, _lit(hostname), port))
    statements.append("UPDATE mysql_users SET use_ssl=0")
    for username, backend, use_ssl in snapshot.users:
        if use_ssl:
            statements.append("UPDATE mysql_users SET use_ssl={:d} WHERE username={} AND backend={:d}".format(
                use_ssl, _lit(username), backend))
    notes = []
    restart = False
    if reload_tls_version is not None:
        if reload_tls_version >= RELOAD_TLS_SINCE:
            statements.append("PROXYSQL RELOAD TLS")
        else:
            restart = True
            notes.append("restart ProxySQL to serve the restored frontend certificate")
    statements += ["LOAD MYSQL VARIABLES TO RUNTIME", "LOAD MYSQL SERVERS TO RUNTIME", "LOAD MYSQL USERS TO RUNTIME",
                   "SAVE MYSQL VARIABLES TO DISK", "SAVE MYSQL SERVERS TO DISK", "SAVE MYSQL USERS TO DISK"]
    return Plan(statements, restart, notes)


def verify_queries() -> Dict[str, str]:
    """What is *active* (runtime_*), for :func:`check_runtime`."""
    names = ", ".join(_lit(n) for n in RECORDED_VARIABLES)
    return {
        "variables": "SELECT variable_name, variable_value FROM runtime_global_variables "
                     "WHERE variable_name IN ({})".format(names),
        "servers": "SELECT hostgroup_id, hostname, port, use_ssl FROM runtime_mysql_servers",
        "users": "SELECT username, backend, use_ssl FROM runtime_mysql_users WHERE frontend=1",
    }


def check_runtime(
    variables_output: str,
    servers_output: str,
    backend_ca: str,
    users_output: Optional[str] = None,
    require_tls: bool = False,
) -> List[str]:
    """Problems in the runtime state after :func:`enable_plan`; an empty list means all is active."""
    problems = []
    variables = parse_variables(variables_output)
    if (variables.get(HAVE_SSL) or "").lower() != "true":
        problems.append("ProxySQL does not offer TLS to clients: runtime {}={!r}".format(
            HAVE_SSL, variables.get(HAVE_SSL)))
    if variables.get(P2S_CA) != backend_ca:
        problems.append("ProxySQL backend CA is {!r}, expected {!r}".format(variables.get(P2S_CA), backend_ca))
    for hostgroup, hostname, port, use_ssl in parse_servers(servers_output):
        if use_ssl != 1:
            problems.append("ProxySQL connects to {}:{} (hostgroup {}) without TLS".format(hostname, port, hostgroup))
    if require_tls:
        if users_output is None:
            problems.append("runtime_mysql_users was not checked")
        else:
            for username, _backend, use_ssl in parse_users(users_output):
                if use_ssl != 1:
                    problems.append("ProxySQL user {!r} may still log in without TLS".format(username))
    return problems


# -- Draining one backend around its restart ------------------------------------------
# ``status='OFFLINE_SOFT'`` + LOAD: ProxySQL sends no new work to the server and closes its pooled
# connections once their current work is done (stats_mysql_connection_pool.ConnUsed drops to 0);
# ``ONLINE`` + LOAD takes it back. These changes are transient: never SAVEd to disk.

ONLINE = "ONLINE"
OFFLINE_SOFT = "OFFLINE_SOFT"

#: (hostgroup_id, hostname, port): the primary key of a mysql_servers row.
ServerKey = Tuple[int, str, int]


def server_status_query(layer: str = "") -> str:
    """Every mysql_servers row with its status; ``layer`` is ``""`` (memory), ``runtime_`` or ``disk.``."""
    if layer not in ("", "runtime_", "disk."):
        raise AgentError("unknown ProxySQL layer {!r}".format(layer))
    return "SELECT hostgroup_id, hostname, port, status FROM {}mysql_servers ORDER BY hostgroup_id, hostname, port".format(
        layer)


def parse_server_status(output: str) -> List[Tuple[int, str, int, str]]:
    """``hostgroup_id, hostname, port, status`` rows; status upper-cased (ProxySQL accepts any case)."""
    return [(_int(r[0], "hostgroup_id"), r[1] or "", _int(r[2], "port"), (r[3] or "").upper())
            for r in _rows(output, 4, "mysql_servers")]


def normalize_host(name: str) -> str:
    """How a backend name compares: case-insensitive, no trailing dot, IPv6 without brackets."""
    return name.strip().lower().rstrip(".").strip("[]")


def match_servers(rows: Sequence[Tuple[int, str, int, str]], names: Sequence[str],
                  port: Optional[int] = None) -> List[Tuple[int, str, int, str]]:
    """The rows that name one of ``names`` (hostnames, FQDNs, IPs of the same backend), on ``port``
    when given. A backend may sit in several hostgroups: every such row matches."""
    wanted = {normalize_host(n) for n in names if n and n.strip()}
    return [row for row in rows if normalize_host(row[1]) in wanted and (port is None or row[2] == port)]


def set_status_statements(keys: Sequence[ServerKey], status: str, only_if: str) -> List[str]:
    """Set ``status`` on the given rows of the memory layer, each only while it still has status
    ``only_if`` (a row someone else changed meanwhile is left alone), then LOAD to runtime.
    Deliberately no SAVE: a drain is transient and must never reach disk."""
    for value in (status, only_if):
        if value not in (ONLINE, OFFLINE_SOFT):
            raise AgentError("unexpected backend status {!r}".format(value))
    statements = ["UPDATE mysql_servers SET status={} WHERE hostgroup_id={:d} AND hostname={} AND port={:d} "
                  "AND UPPER(status)={}".format(_lit(status), hg, _lit(host), port, _lit(only_if))
                  for hg, host, port in keys]
    return statements + ["LOAD MYSQL SERVERS TO RUNTIME"] if statements else []


def disk_online_statements(keys: Sequence[ServerKey]) -> List[str]:
    """Put ONLINE back into ``disk.mysql_servers`` for rows someone SAVEd while we had them
    OFFLINE_SOFT, without saving anything else of the memory layer."""
    return ["UPDATE disk.mysql_servers SET status={} WHERE hostgroup_id={:d} AND hostname={} AND port={:d} "
            "AND UPPER(status)={}".format(_lit(ONLINE), hg, _lit(host), port, _lit(OFFLINE_SOFT))
            for hg, host, port in keys]


def pool_query() -> str:
    """Connections in use per backend and hostgroup (ProxySQL's stats schema)."""
    return "SELECT hostgroup, srv_host, srv_port, status, ConnUsed FROM stats_mysql_connection_pool"


def parse_pool(output: str) -> List[Tuple[int, str, int, str, int]]:
    """``hostgroup, srv_host, srv_port, status, ConnUsed`` rows of :func:`pool_query`."""
    return [(_int(r[0], "hostgroup"), r[1] or "", _int(r[2], "srv_port"), (r[3] or "").upper(),
             _int(r[4], "ConnUsed")) for r in _rows(output, 5, "stats_mysql_connection_pool")]


def conn_used(pool: Sequence[Tuple[int, str, int, str, int]], backends: Sequence[Tuple[str, int]]) -> int:
    """Connections still in use to ``backends`` ((hostname, port) as in mysql_servers), every hostgroup."""
    wanted = {(normalize_host(h), p) for h, p in backends}
    return sum(used for _hg, host, port, _status, used in pool if (normalize_host(host), port) in wanted)
