"""MySQL wire protocol front of the double (mysql-mimic), statement dispatch and login."""

import contextvars
import hmac
import ipaddress
import logging
import re
from hashlib import sha1

from mysql_mimic import MysqlServer
from mysql_mimic.auth import AuthPlugin, Forbidden, IdentityProvider, Success, User
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.results import ResultColumn, ResultSet
from mysql_mimic.session import BaseSession
from mysql_mimic.types import ColumnType
from mysql_mimic.utils import nonce as make_nonce
from mysql_mimic.variables import SYSTEM_VARIABLES, GlobalVariables, SessionVariables

from .store import DOUBLE, AdminError

log = logging.getLogger("proxysql_admin_double")

PEER = contextvars.ContextVar("proxysql_admin_double_peer", default=None)

_ERROR_CODES = {
    "admin": ErrorCode.ACCESS_DENIED_ERROR,  # ProxySQL's admin sends 1045 for most errors
    "unsupported": ErrorCode.NOT_SUPPORTED_YET,
    "empty": ErrorCode.EMPTY_QUERY,
    "unknown_var": ErrorCode.UNKNOWN_SYSTEM_VARIABLE,
}
_STRINGS_RE = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`", re.S)
_LIKE_RE = re.compile(r"\bLIKE\s+'((?:[^'\\]|\\.|'')*)'\s*$", re.I | re.S)
_SCHEMAS = ("main", "disk", "stats")
_DATA_VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "WITH")


def _is_local(peer):
    if peer is None:
        return True  # unix socket
    host = peer[0] if isinstance(peer, (tuple, list)) else peer
    if not host:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _peer_host(peer):
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return "localhost"


# ------------------------------------------------------------------ login
class AdminPasswordPlugin(AuthPlugin):
    """mysql_native_password against the runtime value of admin-admin_credentials."""

    name = "mysql_native_password"
    client_plugin_name = "mysql_native_password"

    def __init__(self, allow_remote_admin):
        self.allow_remote_admin = allow_remote_admin

    async def auth(self, auth_info=None):
        if (auth_info is not None and auth_info.handshake_plugin_name == self.name
                and auth_info.handshake_auth_data):
            nonce = auth_info.handshake_auth_data.rstrip(b"\x00")
        else:
            nonce = make_nonce(20)
            auth_info = yield nonce + b"\x00"
        user = auth_info.user
        scramble = auth_info.data
        peer = PEER.get()
        if user.name == "admin" and not self.allow_remote_admin and not _is_local(peer):
            yield Forbidden("User 'admin' can only connect locally")
            return
        if _scramble_ok(user.auth_string, scramble, nonce):
            yield Success(user.name)
        else:
            yield Forbidden(
                "ProxySQL Error: Access denied for user '{}'@'{}' (using password: {})".format(user.name, _peer_host(peer), "YES" if scramble else "NO")
            )


def _scramble_ok(password, scramble, nonce):
    if password is None:
        return False
    if password == "":
        return scramble == b""
    stage1 = sha1(password.encode("utf-8")).digest()
    stage2 = sha1(stage1).digest()
    mask = sha1(nonce + stage2).digest()
    expected = (int.from_bytes(stage1, "big") ^ int.from_bytes(mask, "big")).to_bytes(20, "big")
    return hmac.compare_digest(expected, scramble)


class AdminIdentityProvider(IdentityProvider):
    def __init__(self, store, allow_remote_admin=False):
        self.store = store
        self.plugin = AdminPasswordPlugin(allow_remote_admin)

    def get_plugins(self):
        return [self.plugin]

    async def get_user(self, username):
        # Unknown users get a user without password so the client sees 1045, not 3162.
        return User(name=username, auth_string=self.store.admin_credentials().get(username))


# ------------------------------------------------------------------ statements
class AdminSession(BaseSession):
    def __init__(self, store, version, comment):
        schema = dict(SYSTEM_VARIABLES)
        schema["version"] = (str, version, False)
        schema["version_comment"] = (str, comment, False)
        self.variables = SessionVariables(GlobalVariables(schema))
        self.store = store
        self.username = None
        self.database = None
        self.connection = None

    async def init(self, connection):
        self.connection = connection

    async def close(self):
        self.connection = None

    async def use(self, database):
        if database.lower() not in _SCHEMAS:
            raise MysqlError("{} knows only the schemas {}".format(DOUBLE, ", ".join(_SCHEMAS)),
                             ErrorCode.NOT_SUPPORTED_YET)
        self.database = database.lower()

    async def handle_query(self, sql, attrs):
        log.debug("query from %s: %s", self.username, sql)
        try:
            result = self.execute(sql)
        except AdminError as exc:
            log.info("error for %r: %s", sql[:200], exc.msg)
            raise MysqlError(exc.msg, _ERROR_CODES[exc.kind]) from None
        if result is None:
            return None
        names, rows = result
        return ResultSet(rows=rows,
                         columns=[ResultColumn(n, ColumnType.VAR_STRING) for n in names])

    def execute(self, sql):
        text = sql.strip()
        while text.endswith(";"):
            text = text[:-1].rstrip()
        if not text:
            raise AdminError("Query was empty", "empty")
        if ";" in _STRINGS_RE.sub("", text):
            raise AdminError(f"{DOUBLE} does not implement several statements in one query", "unsupported")
        command = " ".join(text.split()).upper()
        verb = command.split(" ", 1)[0]
        self.store.session_info = {
            "user": self.username or "",
            "database": self.database or "main",
            "id": self.connection.connection_id if self.connection is not None else 0,
        }
        if verb in ("LOAD", "SAVE") and self.store.module_command(command):
            return None
        if command == "PROXYSQL RELOAD TLS":
            self.store.reload_tls()
            return None
        if verb in _DATA_VERBS:
            return self.store.run_sql(text)
        if verb == "SET":
            return self._set(command)
        if verb == "SHOW":
            return self._show(text, command)
        if verb == "USE":
            name = text.split(None, 1)[1].strip("`").lower() if " " in text else ""
            if name not in _SCHEMAS:
                raise AdminError("{} knows only the schemas {}".format(DOUBLE, ", ".join(_SCHEMAS)),
                                 "unsupported")
            self.database = name
            return None
        raise AdminError(f"{DOUBLE} does not implement this statement: {text[:300]}",
                         "unsupported")

    def _set(self, command):
        # Session settings clients send on connect (SET NAMES, autocommit, sql_mode, ...)
        # are accepted and ignored, as ProxySQL's admin does. Global/persisted settings
        # would mean something else on a real server: refuse them.
        if re.match(r"^SET (GLOBAL|PERSIST|PERSIST_ONLY)\b", command) or "@@GLOBAL." in command:
            raise AdminError(f"{DOUBLE} does not implement SET GLOBAL/PERSIST: change"
                             " global_variables and LOAD ... TO RUNTIME", "unsupported")
        return None

    def _show(self, text, command):
        like = _LIKE_RE.search(text)
        pattern = like.group(1) if like else None
        body = _LIKE_RE.sub("", text).strip() if like else text
        words = " ".join(body.split()).upper().split(" ")
        run = self.store.run_internal
        if words[1:] == ["TABLES"] or (len(words) == 4 and words[1:3] == ["TABLES", "FROM"]):
            db = words[3].lower().strip("`") if len(words) == 4 else (self.database or "main")
            if db not in _SCHEMAS:
                raise AdminError("{} knows only the schemas {}".format(DOUBLE, ", ".join(_SCHEMAS)),
                                 "unsupported")
            sql = (f"SELECT name AS tables FROM {db}.sqlite_master WHERE type='table'"
                   " AND name NOT IN ('sqlite_sequence')")
            params = ()
            if pattern is not None:
                sql += " AND name LIKE ?"
                params = (pattern,)
            return run(sql + " ORDER BY name", params)
        if words[1:] == ["DATABASES"]:
            return run("SELECT seq, name, file FROM pragma_database_list")
        if words[1:] in (["VARIABLES"], ["GLOBAL", "VARIABLES"], ["SESSION", "VARIABLES"],
                         ["MYSQL", "VARIABLES"], ["ADMIN", "VARIABLES"]):
            sql = ("SELECT variable_name AS Variable_name, variable_value AS Value"
                   " FROM main.global_variables WHERE 1=1")
            params = []
            if words[1] in ("MYSQL", "ADMIN"):
                sql += " AND variable_name LIKE ?"
                params.append(words[1].lower() + "-%")
            if pattern is not None:
                sql += " AND variable_name LIKE ?"
                params.append(pattern)
            return run(sql + " ORDER BY variable_name", tuple(params))
        if words[1:] == ["MYSQL", "SERVERS"] and pattern is None:
            return run("SELECT * FROM main.mysql_servers ORDER BY hostgroup_id, hostname, port")
        if words[1:] == ["MYSQL", "USERS"] and pattern is None:
            return run("SELECT * FROM main.mysql_users ORDER BY username")
        if words[1:] == ["WARNINGS"] or words[1:] == ["ERRORS"]:
            return ["Level", "Code", "Message"], []
        if len(words) == 4 and words[1:3] == ["CREATE", "TABLE"] and pattern is None:
            target = body.split()[-1].replace("`", "")
            db, _, table = target.rpartition(".")
            db = (db or self.database or "main").lower()
            if db not in _SCHEMAS:
                raise AdminError("{} knows only the schemas {}".format(DOUBLE, ", ".join(_SCHEMAS)),
                                 "unsupported")
            names, rows = run("SELECT name AS \"table\", sql AS \"Create Table\" FROM"
                              f" {db}.sqlite_master WHERE type='table' AND name=?", (table,))
            if not rows:
                raise AdminError(f"ProxySQL Admin Error: Table '{target}' does not exist")
            return names, rows
        raise AdminError(f"{DOUBLE} does not implement this statement: {text[:300]}",
                         "unsupported")


# ------------------------------------------------------------------ server
class AdminServer(MysqlServer):
    async def _client_connected_cb(self, reader, writer):
        PEER.set(writer.get_extra_info("peername"))
        return await super()._client_connected_cb(reader, writer)


def build_server(store, version, comment, allow_remote_admin=False):
    return AdminServer(
        session_factory=lambda: AdminSession(store, version, comment),
        identity_provider=AdminIdentityProvider(store, allow_remote_admin),
    )
