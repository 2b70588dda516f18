"""The admin database of the double: SQLite with ProxySQL's memory / runtime / disk layers.

main.<table>           memory layer (what admin clients edit)
main.runtime_<table>   runtime layer (read-only for clients; filled by LOAD ... TO RUNTIME)
disk.<table>           <datadir>/proxysql.db, attached like ProxySQL's configdb
stats.*                in-memory stats schema (read-only)
"""

import json
import os
import re
import sqlite3
import time

from . import VERSION_COMMENT, pool, schema, tls


class AdminError(Exception):
    """Error sent to the client. kind: 'admin' -> 1045 like ProxySQL's admin,
    'unsupported' -> not implemented by the double, 'empty', 'unknown_var'."""

    def __init__(self, msg, kind="admin"):
        super().__init__(msg)
        self.msg = msg
        self.kind = kind


DOUBLE = "proxysql_admin_double (TEST DOUBLE of ProxySQL's admin interface)"

_MODULE_RE = re.compile(
    r"^(LOAD|SAVE) (MYSQL VARIABLES|ADMIN VARIABLES|MYSQL SERVERS|MYSQL USERS) "
    r"(TO|FROM) (RUNTIME|RUN|MEMORY|MEM|DISK)$"
)
# (verb, direction, place) -> (source layer, destination layer), as ProxySQL's aliases.
_DIRECTIONS = {
    ("LOAD", "TO", "RUNTIME"): ("memory", "runtime"),
    ("LOAD", "TO", "RUN"): ("memory", "runtime"),
    ("LOAD", "FROM", "MEMORY"): ("memory", "runtime"),
    ("LOAD", "FROM", "MEM"): ("memory", "runtime"),
    ("SAVE", "TO", "MEMORY"): ("runtime", "memory"),
    ("SAVE", "TO", "MEM"): ("runtime", "memory"),
    ("SAVE", "FROM", "RUNTIME"): ("runtime", "memory"),
    ("SAVE", "FROM", "RUN"): ("runtime", "memory"),
    ("LOAD", "FROM", "DISK"): ("disk", "memory"),
    ("LOAD", "TO", "MEMORY"): ("disk", "memory"),
    ("LOAD", "TO", "MEM"): ("disk", "memory"),
    ("SAVE", "TO", "DISK"): ("memory", "disk"),
    ("SAVE", "FROM", "MEMORY"): ("memory", "disk"),
    ("SAVE", "FROM", "MEM"): ("memory", "disk"),
}
_WRITE_ACTIONS = (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE)
_READ_ONLY_SCHEMA_ACTIONS = frozenset(
    getattr(sqlite3, name)
    for name in dir(sqlite3)
    if re.match(r"SQLITE_(CREATE|DROP|ALTER|ATTACH|DETACH|PRAGMA|REINDEX|ANALYZE|"
                r"TRANSACTION|SAVEPOINT)", name)
)
_STRING_RE = re.compile(r"('(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\")", re.S)
_SYSVAR_RE = re.compile(r"@@((?:session\.|global\.|local\.)?[A-Za-z_][A-Za-z0-9_]*)", re.I)
_SYSVAR_COL_RE = re.compile(r"__sysvar\('([^']*)'\)")


def _table(layer, name):
    if layer == "memory":
        return "main." + name
    if layer == "runtime":
        return "main.runtime_" + name
    return "disk." + name


class AdminStore:
    def __init__(self, datadir, seed=None, credentials="admin:admin", server_version="",
                 tls_autogen=True):
        self.datadir = datadir
        self.server_version = server_version
        self._internal = False
        self._denied = None
        self._udf_error = None
        self.session_info = {}
        self._seen = {}  # (layer, hostgroup_id, hostname, port) -> (status, since)
        os.makedirs(datadir, exist_ok=True)
        self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.db.execute("ATTACH DATABASE ? AS disk", (os.path.join(datadir, "proxysql.db"),))
        self.db.execute("ATTACH DATABASE ':memory:' AS stats")
        self._register_functions()
        self._create_tables()
        self.db.set_authorizer(self._authorizer)
        self._bootstrap(seed, credentials)
        self._bootstrap_tls(tls_autogen)

    # ---------------------------------------------------------------- setup
    def _register_functions(self):
        try:
            self.db.execute("SELECT json_valid('{}')")
        except sqlite3.OperationalError:
            self.db.create_function("json_valid", 1, _json_valid)
        self.db.create_function("__sysvar", 1, self._sysvar)
        for name in ("version", "current_version"):
            self.db.create_function(name, 0, lambda: self.server_version)
        for name in ("user", "session_user", "system_user", "current_user"):
            self.db.create_function(name, 0, lambda: self.session_info.get("user", ""))
        for name in ("database", "schema"):
            self.db.create_function(name, 0, lambda: self.session_info.get("database", "main"))
        self.db.create_function("connection_id", 0, lambda: self.session_info.get("id", 0))

    def _create_tables(self):
        with self._as_internal():
            for name, body in schema.TABLE_BODIES.items():
                self.db.execute(f"CREATE TABLE IF NOT EXISTS main.{name} {body}")
                self.db.execute(f"CREATE TABLE IF NOT EXISTS main.runtime_{name} {body}")
                self.db.execute(f"CREATE TABLE IF NOT EXISTS disk.{name} {body}")
            for name, body in schema.STATS_TABLES.items():
                self.db.execute(f"CREATE TABLE IF NOT EXISTS stats.{name} {body}")
            for name, body in schema.DOUBLE_TABLES.items():
                self.db.execute(f"CREATE TABLE IF NOT EXISTS main.{name} {body}")
            self.db.execute(
                "INSERT INTO stats.stats_double_tls (loaded, reloads) VALUES (0, 0)"
            )

    def _bootstrap(self, seed, credentials):
        with self._as_internal():
            self.db.execute("BEGIN")
            try:
                disk_has_data = any(
                    self.db.execute(f"SELECT 1 FROM disk.{t} LIMIT 1").fetchone()
                    for t in schema.CONFIG_TABLES
                )
                self.db.executemany(
                    "INSERT INTO main.global_variables VALUES (?, ?)",
                    sorted(schema.DEFAULT_VARIABLES.items()),
                )
                if disk_has_data:
                    # ProxySQL: proxysql.db exists -> the config file is ignored.
                    for t in schema.CONFIG_TABLES:
                        self.db.execute(f"INSERT OR REPLACE INTO main.{t} SELECT * FROM disk.{t}")
                else:
                    self._apply_seed(seed or {}, credentials)
                    for t in schema.CONFIG_TABLES:
                        self.db.execute(f"DELETE FROM disk.{t}")
                        self.db.execute(f"INSERT INTO disk.{t} SELECT * FROM main.{t}")
                for t in schema.CONFIG_TABLES:
                    self.db.execute(f"INSERT INTO main.runtime_{t} SELECT * FROM main.{t}")
                self.db.execute("COMMIT")
            except Exception:
                self.db.execute("ROLLBACK")
                raise
            self._servers_changed()

    def _apply_seed(self, seed, credentials):
        unknown = set(seed) - {"variables", "mysql_servers", "mysql_users",
                               "mysql_replication_hostgroups"}
        if unknown:
            raise ValueError("unknown keys in seed: {}".format(", ".join(sorted(unknown))))
        variables = dict(seed.get("variables") or {})
        if credentials is not None:
            variables.setdefault("admin-admin_credentials", credentials)
        for name, value in variables.items():
            if name not in schema.DEFAULT_VARIABLES:
                raise ValueError(f"seed variable {name!r} is not known to the double "
                                 "(add it to schema.DEFAULT_VARIABLES)")
            if normalize(name, value) is None:
                raise ValueError(f"seed variable {name!r} has an invalid value {value!r}")
            self.db.execute("UPDATE main.global_variables SET variable_value=? "
                            "WHERE variable_name=?", (normalize(name, value), name))
        for table in ("mysql_servers", "mysql_users", "mysql_replication_hostgroups"):
            for row in seed.get(table) or []:
                cols = list(row)
                self.db.execute(
                    "INSERT INTO main.{} ({}) VALUES ({})".format(table, ",".join(cols), ",".join("?" * len(cols))),
                    [row[c] for c in cols],
                )

    def _bootstrap_tls(self, autogen):
        present = tls.count_present(self.datadir)
        if present not in (0, 3):
            raise SystemExit("Only some SSL files are present. Either all files are present, "
                             f"or none. Exiting. ({DOUBLE})")
        if present == 0:
            if not autogen:
                return
            tls.generate(self.datadir)
        try:
            self._set_tls(tls.load(self.datadir), count_reload=False)
        except tls.TLSError as exc:
            raise SystemExit(f"Unable to initialize SSL. Shutting down... {exc} ({DOUBLE})") from None

    def _set_tls(self, facts, count_reload=True):
        with self._as_internal():
            self.db.execute(
                "UPDATE stats.stats_double_tls SET loaded=1, reloads=reloads+?, cert_sha256=?,"
                " ca_sha256=?, pubkey_sha256=?, cert_subject=?, cert_issuer=?,"
                " cert_not_after=?, loaded_at=?, last_error=''",
                (1 if count_reload else 0, facts["cert_sha256"], facts["ca_sha256"],
                 facts["pubkey_sha256"], facts["cert_subject"], facts["cert_issuer"],
                 facts["cert_not_after"], int(time.time())),
            )

    # ---------------------------------------------------------------- helpers
    class _Internal:
        def __init__(self, store):
            self.store = store

        def __enter__(self):
            self.prev = self.store._internal
            self.store._internal = True

        def __exit__(self, *exc):
            self.store._internal = self.prev

    def _as_internal(self):
        return AdminStore._Internal(self)

    def _authorizer(self, action, arg1, arg2, dbname, source):
        if self._internal:
            return sqlite3.SQLITE_OK
        if action in _WRITE_ACTIONS:
            table = (arg1 or "").lower()
            if table.startswith("runtime_") or dbname == "stats" or table.startswith("sqlite_"):
                self._denied = arg1
                return sqlite3.SQLITE_DENY
        elif action in _READ_ONLY_SCHEMA_ACTIONS:
            self._denied = "schema"
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _sysvar(self, name):
        bare = name.split(".", 1)[-1].lower()
        values = {
            "version": self.server_version,
            "version_comment": VERSION_COMMENT,
            "max_allowed_packet": 67108864,
            "autocommit": 1,
            "sql_mode": "",
            "character_set_client": "utf8mb4",
            "character_set_connection": "utf8mb4",
            "character_set_results": "utf8mb4",
            "character_set_server": "utf8mb4",
            "collation_connection": "utf8mb4_general_ci",
            "collation_server": "utf8mb4_general_ci",
            "tx_isolation": "READ-COMMITTED",
            "transaction_isolation": "READ-COMMITTED",
            "tx_read_only": 0,
            "transaction_read_only": 0,
            "wait_timeout": 28800,
            "interactive_timeout": 28800,
            "net_write_timeout": 60,
            "lower_case_table_names": 0,
            "time_zone": "SYSTEM",
            "system_time_zone": "UTC",
            "license": "GPL",
            "have_ssl": "DISABLED",
            "session_track_gtids": "OFF",
        }
        if bare not in values:
            self._udf_error = AdminError(f"Unknown system variable '{bare}'", "unknown_var")
            raise ValueError(bare)
        return values[bare]

    # ---------------------------------------------------------------- queries
    def run_sql(self, sql):
        """Run a data statement; return (column names, rows) or None for no result set."""
        parts = _STRING_RE.split(sql)
        for i in range(0, len(parts), 2):
            parts[i] = _SYSVAR_RE.sub(lambda m: f"__sysvar('{m.group(1)}')", parts[i])
        rewritten = "".join(parts)
        self._denied = None
        self._udf_error = None
        if "connection_pool" in rewritten.lower():
            with self._as_internal():
                self._rebuild_connection_pool()
        try:
            cur = self.db.execute(rewritten)
            rows = cur.fetchall()
        except sqlite3.Error as exc:
            if self._udf_error is not None:
                raise self._udf_error from None
            if self._denied == "schema":
                raise AdminError(f"{DOUBLE} does not implement schema changes, PRAGMA, ATTACH or"
                                 " transactions", "unsupported") from None
            if self._denied:
                raise AdminError(
                    f"ProxySQL Admin Error: table {self._denied} is read-only: runtime_* and stats tables"
                    " show the running state; edit the memory table and LOAD ... TO RUNTIME"
                    f" [{DOUBLE}]"
                ) from None
            raise AdminError(f"ProxySQL Admin Error: {exc}") from None
        if cur.description is None:
            with self._as_internal():
                self._servers_changed()  # a direct write to disk.mysql_servers counts too
            return None
        names = [_SYSVAR_COL_RE.sub(r"@@\1", d[0]) for d in cur.description]
        return names, [[None if v is None else str(v) for v in row] for row in rows]

    def run_internal(self, sql, params=()):
        """Run a query the double itself composed (SHOW ...); same result shape as run_sql."""
        with self._as_internal():
            try:
                cur = self.db.execute(sql, params)
                rows = cur.fetchall()
            except sqlite3.Error as exc:
                raise AdminError(f"ProxySQL Admin Error: {exc}") from None
        names = [d[0] for d in cur.description]
        return names, [[None if v is None else str(v) for v in row] for row in rows]

    # ---------------------------------------------------------------- admin commands
    def module_command(self, command):
        """Handle LOAD/SAVE <module> ...; return False when command is no such statement."""
        m = _MODULE_RE.match(command)
        if not m:
            return False
        verb, module, direction, place = m.groups()
        route = _DIRECTIONS.get((verb, direction, place))
        if route is None:
            raise AdminError(f"{DOUBLE} does not implement: {command}", "unsupported")
        src, dst = route
        tables, prefix = schema.MODULES[module]
        with self._as_internal():
            self.db.execute("BEGIN")
            try:
                before = self.runtime_variables()
                for t in tables:
                    self._copy(t, prefix, src, dst)
                if src == "memory" and dst == "runtime" and prefix:
                    self._validate_runtime_variables(prefix, before)
                self.db.execute("COMMIT")
            except Exception:
                self.db.execute("ROLLBACK")
                raise
            if module == "MYSQL SERVERS":
                self._servers_changed()
        return True

    def _copy(self, table, prefix, src, dst):
        where = ""
        params = ()
        if prefix:
            where = " WHERE substr(variable_name, 1, ?) = ?"
            params = (len(prefix), prefix)
        self.db.execute(f"DELETE FROM {_table(dst, table)}{where}", params)
        self.db.execute(f"INSERT INTO {_table(dst, table)} SELECT * FROM {_table(src, table)}{where}", params)

    def _validate_runtime_variables(self, prefix, before):
        """ProxySQL drops unknown variables and keeps the previous runtime value of a
        variable whose new value it rejects; afterwards memory mirrors runtime."""
        rows = self.db.execute(
            "SELECT variable_name, variable_value FROM main.runtime_global_variables"
            " WHERE substr(variable_name, 1, ?) = ?", (len(prefix), prefix)).fetchall()
        for name, value in rows:
            if name not in schema.DEFAULT_VARIABLES:
                self.db.execute("DELETE FROM main.runtime_global_variables WHERE variable_name=?",
                                (name,))
                continue
            good = normalize(name, value)
            if good is None:
                good = before.get(name, schema.DEFAULT_VARIABLES[name])
            self.db.execute("UPDATE main.runtime_global_variables SET variable_value=?"
                            " WHERE variable_name=?", (good, name))
        for name, value in schema.DEFAULT_VARIABLES.items():
            if name.startswith(prefix):
                self.db.execute("INSERT OR IGNORE INTO main.runtime_global_variables"
                                " VALUES (?, ?)", (name, value))
        self._copy("global_variables", prefix, "runtime", "memory")

    def runtime_variables(self):
        return dict(self.db.execute(
            "SELECT variable_name, variable_value FROM main.runtime_global_variables"))

    def _servers_changed(self):
        pool.servers_changed(self.db, self._seen)

    def _rebuild_connection_pool(self):
        pool.rebuild_connection_pool(self.db, self._seen)

    def reload_tls(self):
        try:
            facts = tls.load(self.datadir)
        except tls.TLSError as exc:
            with self._as_internal():
                self.db.execute("UPDATE stats.stats_double_tls SET last_error=?", (exc.args[0],))
            raise AdminError(exc.args[0]) from None
        self._set_tls(facts)

    def admin_credentials(self):
        row = self.db.execute(
            "SELECT variable_value FROM main.runtime_global_variables"
            " WHERE variable_name='admin-admin_credentials'").fetchone()
        creds = {}
        for item in (row[0] if row else "").split(";"):
            if ":" in item:
                user, password = item.split(":", 1)
                creds.setdefault(user, password)
        return creds

    def close(self):
        self.db.close()


def normalize(name, value):
    return schema.normalize_variable(name, value)


def _json_valid(text):
    try:
        json.loads(text)
        return 1
    except (TypeError, ValueError):
        return 0
