"""Which MySQL-family server this is, and what that server can do without a restart.

Pure functions over version strings. The server is
asked once (``SELECT VERSION(), @@version_comment`` or ``mysqld --version``); every later decision
("FLUSH SSL or restart?", "CHANGE MASTER or CHANGE REPLICATION SOURCE?") is a table lookup here, so
the rules are tested without a server and live in one place.
"""

import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql.client import parse_batch_output
from dbtls_agent.roles.mysql.users import sql_literal as _quote

MARIADB = "mariadb"
MYSQL = "mysql"
PERCONA = "percona"
FLAVORS = (MARIADB, MYSQL, PERCONA)

Version = Tuple[int, int, int]

ServerInfo = NamedTuple("ServerInfo", [("flavor", str), ("version", Version)])

_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def _version_tuple(text: str) -> Version:
    match = _VERSION_RE.search(text)
    if not match:
        raise AgentError("cannot find a version number in {!r}".format(text.strip()[:120]))
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


def _flavor_of(text: str) -> str:
    lowered = text.lower()
    if "mariadb" in lowered:
        return MARIADB
    if "percona" in lowered:
        return PERCONA
    return MYSQL


def _strip_mariadb_prefix(version: str) -> str:
    # MariaDB 10.x announced itself as "5.5.5-10.x.y-MariaDB" to old clients; VERSION() may echo it.
    return version[len("5.5.5-"):] if version.startswith("5.5.5-") else version


def parse_version_query(output: str) -> ServerInfo:
    """Parse ``SELECT VERSION(), @@version_comment`` in ``--batch --skip-column-names`` form,
    e.g. ``10.11.6-MariaDB-0+deb12u1<TAB>Debian 12`` or ``8.0.36-28<TAB>Percona Server (GPL), ...``."""
    line = next((ln for ln in output.splitlines() if ln.strip()), "")
    version, _, comment = line.partition("\t")
    version = _strip_mariadb_prefix(version.strip())
    if not version:
        raise AgentError("empty answer to SELECT VERSION(); is this a MySQL/MariaDB server?")
    return ServerInfo(_flavor_of(version + " " + comment), _version_tuple(version))


def parse_version_line(output: str) -> ServerInfo:
    """Parse ``mysqld --version`` / ``mariadbd --version`` (and the clients' ``--version``).

    Forms: ``mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)``,
    ``mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu ...``,
    ``mysql  Ver 15.1 Distrib 10.11.6-MariaDB, for ...`` (the client's own 15.1 is not the version),
    ``mariadb from 11.4.2-MariaDB, client 15.2 for ...``,
    ``mariadbd  Ver 11.8.3-MariaDB-0+deb13u1 from Debian-log for debian-linux-gnu ...``.
    """
    line = next((ln for ln in output.splitlines() if ln.strip()), "")
    # "from" only before a number: MariaDB 11.8's server says "Ver 11.8.3-MariaDB-... from Debian-log".
    match = re.search(r"\b(?:Distrib|from)\s+(\d\S*)", line) or re.search(r"\bVer\s+(\S+)", line)
    if not match:
        raise AgentError("cannot parse the server version from {!r}".format(line.strip()[:120]))
    version = _strip_mariadb_prefix(match.group(1).rstrip(","))
    return ServerInfo(_flavor_of(line), _version_tuple(version))


def _check(flavor: str) -> None:
    if flavor not in FLAVORS:
        raise AgentError("unknown MySQL flavor {!r} (expected one of {})".format(flavor, ", ".join(FLAVORS)))


def first_enable_needs_restart(flavor: str, version: Version) -> bool:
    """MariaDB's ``ssl_*`` are read-only (and FLUSH SSL does nothing on a server started without
    TLS), so turning TLS on needs one restart; MySQL/Percona 8.0.16+ switch live with SET PERSIST."""
    _check(flavor)
    if flavor == MARIADB:
        return True
    return version < (8, 0, 16)


def cert_swap_statement(flavor: str, version: Version) -> Optional[str]:
    """The statement that re-reads certificate files at unchanged paths, or None: restart."""
    _check(flavor)
    if flavor == MARIADB:
        return "FLUSH SSL" if version >= (10, 4, 1) else None
    return "ALTER INSTANCE RELOAD TLS" if version >= (8, 0, 16) else None


def can_set_require_secure_transport_live(flavor: str, version: Version) -> bool:
    """``require_secure_transport`` is dynamic on MariaDB 10.5.2+ and MySQL/Percona 5.7.8+."""
    _check(flavor)
    return version >= ((10, 5, 2) if flavor == MARIADB else (5, 7, 8))


def has_require_secure_transport(flavor: str, version: Version) -> bool:
    """Whether the variable exists at all: an unknown variable in my.cnf stops mysqld from starting."""
    return can_set_require_secure_transport_live(flavor, version)


def has_tls_version(flavor: str, version: Version) -> bool:
    """``tls_version`` exists on MariaDB 10.4.6+ and MySQL 5.7.10+ (unknown = server will not start)."""
    _check(flavor)
    return version >= ((10, 4, 6) if flavor == MARIADB else (5, 7, 10))


def supports_tls13(flavor: str, version: Version) -> bool:
    """TLSv1.3 in ``tls_version``: MySQL/Percona 8.0.16+, MariaDB 10.4.6+ (with OpenSSL 1.1.1)."""
    _check(flavor)
    return version >= ((10, 4, 6) if flavor == MARIADB else (8, 0, 16))


def has_set_persist(flavor: str, version: Version) -> bool:
    """SET PERSIST exists on MySQL/Percona 8.0; MariaDB has none (settings go to a cnf file)."""
    _check(flavor)
    return flavor != MARIADB and version >= (8, 0, 11)


def sql_literal(value: str) -> str:
    """A string literal for a MySQL server in its default sql_mode (see :mod:`.users`)."""
    return _quote(value, backslash_escapes=True)


def require_secure_transport_statement(flavor: str, version: Version, on: bool) -> str:
    """Switch ``require_secure_transport`` live; PERSIST where it exists so a restart keeps it.
    (MariaDB additionally needs the value in the cnf: :func:`mycnf.render_ssl_config`.)"""
    if not can_set_require_secure_transport_live(flavor, version):
        raise AgentError("{} {} cannot change require_secure_transport without a restart".format(
            flavor, ".".join(map(str, version))))
    scope = "PERSIST" if has_set_persist(flavor, version) else "GLOBAL"
    return "SET {} require_secure_transport = {}".format(scope, "ON" if on else "OFF")


#: Server variables that decide which certificate mysqld serves.
TLS_VARIABLES = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_cipher", "tls_version")


def persist_statements(
    flavor: str,
    version: Version,
    ca_path: str,
    cert_path: str,
    key_path: str,
    cipher: Optional[str] = None,
    tls_versions: Optional[Sequence[str]] = None,
) -> List[str]:
    """MySQL/Percona 8.0.16+: point the live server at our files without a restart.

    ALTER INSTANCE RELOAD TLS fails and keeps the old context on bad files, so the caller can
    run these before anything else relies on TLS. Never ``NO ROLLBACK ON ERROR``.
    """
    if first_enable_needs_restart(flavor, version):
        raise AgentError("{} {} cannot load TLS settings live; write the cnf file and restart".format(
            flavor, ".".join(map(str, version))))
    values = [("ssl_ca", ca_path), ("ssl_cert", cert_path), ("ssl_key", key_path)]
    if cipher:
        values.append(("ssl_cipher", cipher))
    if tls_versions:
        values.append(("tls_version", ",".join(tls_versions)))
    statements = ["SET PERSIST {} = {}".format(name, sql_literal(value)) for name, value in values]
    statements.append("ALTER INSTANCE RELOAD TLS")
    return statements


def tls_snapshot_query() -> str:
    """Current and persisted TLS variables, to restore exactly on disable.
    Output rows: ``name<TAB>global value<TAB>persisted value or NULL``."""
    names = ", ".join(sql_literal(n) for n in TLS_VARIABLES)
    return ("SELECT g.VARIABLE_NAME, g.VARIABLE_VALUE, p.VARIABLE_VALUE "
            "FROM performance_schema.global_variables g "
            "LEFT JOIN performance_schema.persisted_variables p ON p.VARIABLE_NAME = g.VARIABLE_NAME "
            "WHERE g.VARIABLE_NAME IN ({})".format(names))


def restore_tls_statements(snapshot: Dict[str, Tuple[Optional[str], Optional[str]]]) -> List[str]:
    """Undo :func:`persist_statements` from ``{name: (global value, persisted value)}``.

    A variable the user had persisted is persisted again with its old value; otherwise our
    persisted entry is removed and the live value set back (``DEFAULT`` when it was empty).
    """
    statements = []
    for name in TLS_VARIABLES:
        if name not in snapshot:
            continue
        live, persisted = snapshot[name]
        if persisted is not None:
            statements.append("SET PERSIST {} = {}".format(name, sql_literal(persisted)))
            continue
        statements.append("RESET PERSIST IF EXISTS {}".format(name))
        statements.append("SET GLOBAL {} = {}".format(name, sql_literal(live) if live else "DEFAULT"))
    statements.append("ALTER INSTANCE RELOAD TLS")
    return statements


def _uses_replica_words(flavor: str, version: Version) -> bool:
    # START/STOP REPLICA and SHOW REPLICA STATUS: MySQL 8.0.22+, MariaDB 10.5.1+.
    return version >= ((10, 5, 1) if flavor == MARIADB else (8, 0, 22))


def _uses_source_syntax(flavor: str, version: Version) -> bool:
    # CHANGE REPLICATION SOURCE TO: MySQL 8.0.23+ (CHANGE MASTER removed in 8.4). MariaDB: never.
    return flavor != MARIADB and version >= (8, 0, 23)


def _replica_change(flavor: str, version: Version, options: Sequence[Tuple[str, str]],
                    restart_threads: bool) -> List[str]:
    """``CHANGE MASTER TO`` / ``CHANGE REPLICATION SOURCE TO`` with ``(suffix, value)`` options
    (``SSL_CA`` becomes ``MASTER_SSL_CA`` or ``SOURCE_SSL_CA``), wrapped in STOP/START when asked."""
    _check(flavor)
    source = _uses_source_syntax(flavor, version)
    prefix = "SOURCE" if source else "MASTER"
    change = "CHANGE REPLICATION SOURCE TO " if source else "CHANGE MASTER TO "
    statements = [change + ", ".join("{}_{} = {}".format(prefix, name, value) for name, value in options)]
    if restart_threads:
        noun = "REPLICA" if _uses_replica_words(flavor, version) else "SLAVE"
        statements = ["STOP " + noun] + statements + ["START " + noun]
    return statements


def replica_ssl_statements(
    flavor: str,
    version: Version,
    ca_path: str,
    verify_server_cert: bool = False,
    enable: bool = True,
    restart_threads: bool = True,
) -> List[str]:
    """Make a replica connect to its source with TLS (or, ``enable=False``, without).

    Only the replica's IO thread reconnects; no server restart. ``verify_server_cert`` also checks
    the source's host name against the certificate: turn it on only when the replica's source host
    (Master_Host) is one of the SANs, or replication stops. ``restart_threads=False`` leaves out
    STOP/START for a replica that was not running.
    """
    options = [("SSL", "1" if enable else "0")]
    if enable:
        options.append(("SSL_CA", sql_literal(ca_path)))
    options.append(("SSL_VERIFY_SERVER_CERT", "1" if (enable and verify_server_cert) else "0"))
    return _replica_change(flavor, version, options, restart_threads)


def replica_ssl_restore_statements(
    flavor: str,
    version: Version,
    ssl: bool,
    ca_path: Optional[str],
    verify_server_cert: bool,
    restart_threads: bool = True,
) -> List[str]:
    """Put the channel's TLS options back exactly as recorded by :meth:`ReplicaStatus.ssl_settings`.

    ``ca_path`` ``""`` clears the CA file (MariaDB 11.x then verifies a self-signed source by
    its password-derived fingerprint again); None leaves the CA option out.
    """
    options = [("SSL", "1" if ssl else "0")]
    if ca_path is not None:
        options.append(("SSL_CA", sql_literal(ca_path)))
    options.append(("SSL_VERIFY_SERVER_CERT", "1" if verify_server_cert else "0"))
    return _replica_change(flavor, version, options, restart_threads)


def replica_status_query(flavor: str, version: Version) -> str:
    """SHOW REPLICA STATUS where it exists (MySQL 8.4 removed the SLAVE form), else SHOW SLAVE STATUS."""
    _check(flavor)
    return "SHOW REPLICA STATUS" if _uses_replica_words(flavor, version) else "SHOW SLAVE STATUS"


class ReplicaStatus(object):
    """The columns of SHOW REPLICA/SLAVE STATUS that say whether replication runs over TLS."""

    __slots__ = ("ssl_allowed", "io_running", "sql_running", "verify_server_cert", "ssl_ca_file",
                 "last_io_error", "source_host", "channel")

    def __init__(self, row: Dict[str, str]) -> None:
        def pick(*names: str) -> str:
            for name in names:
                if name in row:
                    return row[name]
            return ""

        self.ssl_allowed = pick("Master_SSL_Allowed", "Source_SSL_Allowed")
        self.io_running = pick("Slave_IO_Running", "Replica_IO_Running")
        self.sql_running = pick("Slave_SQL_Running", "Replica_SQL_Running")
        self.verify_server_cert = pick("Master_SSL_Verify_Server_Cert", "Source_SSL_Verify_Server_Cert")
        self.ssl_ca_file = pick("Master_SSL_CA_File", "Source_SSL_CA_File")
        self.last_io_error = pick("Last_IO_Error")
        self.source_host = pick("Master_Host", "Source_Host")
        self.channel = pick("Channel_Name", "Connection_name")

    def ssl_settings(self) -> Dict[str, str]:
        """The TLS options the agent changes, as SHOW ... STATUS prints them (for an exact undo)."""
        return {"ssl_allowed": self.ssl_allowed, "ca_file": self.ssl_ca_file, "verify": self.verify_server_cert}

    @property
    def uses_tls(self) -> bool:
        """TLS is configured and the IO thread is connected (``Yes``; ``Connecting`` is not enough)."""
        return self.ssl_allowed == "Yes" and self.io_running == "Yes"

    def problems(self) -> List[str]:
        """Why this channel is not replicating over TLS; empty when it is."""
        found = []
        name = "replication channel {!r}".format(self.channel) if self.channel else "replication"
        if self.ssl_allowed != "Yes":
            found.append("{} is not configured for TLS (SSL_Allowed={})".format(name, self.ssl_allowed or "?"))
        if self.io_running != "Yes":
            found.append("{} IO thread is {}{}".format(
                name, self.io_running or "?", ": " + self.last_io_error if self.last_io_error else ""))
        if self.sql_running != "Yes":
            found.append("{} SQL thread is {}".format(name, self.sql_running or "?"))
        return found


_VERTICAL_ROW_RE = re.compile(r"^\*+ \d+\. row \*+$")


def parse_status_rows(output: str) -> List[Dict[str, str]]:
    """Rows of a SHOW ... STATUS printed vertically (``\\G``) or as ``--batch`` with column names.

    In tab form the first line must be the header: run the query *without* ``--skip-column-names``,
    the column order differs between versions. Batch escapes (``\\t``, ``\\n``, ``\\\\``) are decoded.
    """
    lines = output.splitlines()
    if any(_VERTICAL_ROW_RE.match(ln.strip()) for ln in lines):
        rows: List[Dict[str, str]] = []
        for ln in lines:
            if _VERTICAL_ROW_RE.match(ln.strip()):
                rows.append({})
            elif rows and ":" in ln:
                key, _, value = ln.partition(":")
                rows[-1][key.strip()] = value[1:] if value.startswith(" ") else value
        return rows
    table = parse_batch_output(output)
    if not table:
        return []
    header = [h or "" for h in table[0]]
    width = len(header)
    return [{header[i]: (row[i] if row[i] is not None else "") for i in range(min(width, len(row)))}
            for row in table[1:]]


def parse_replica_status(output: str) -> List[ReplicaStatus]:
    """One :class:`ReplicaStatus` per channel; empty list = this server is no replica."""
    return [ReplicaStatus(row) for row in parse_status_rows(output)]
