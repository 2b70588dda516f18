"""ProxySQL's admin interface: where it listens and with which account (from proxysql.cnf), and a client.

The credentials come from ``/etc/proxysql.cnf`` (``admin_credentials``, ``mysql_ifaces``,
``datadir``) or from ``--passwords-stdin`` (``{"proxysql-admin": "user:password"}``) and reach the
client only through a 0600 defaults file (:mod:`dbtls_agent.roles.mysql.node`).
"""

import re
from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.base import Context
from dbtls_agent.roles.mysql import node
from dbtls_agent.roles.proxysql import plan as proxysql_plan

CONFIG_FILES = ("/etc/proxysql.cnf", "/etc/proxysql/proxysql.cnf")
DEFAULT_ADMIN = ("admin", "admin")

_SETTING_RE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*[=:]\s*"((?:[^"\\]|\\.)*)"\s*;?\s*$')


def parse_config(text: str) -> Dict[str, str]:
    """The few string settings we need from ProxySQL's libconfig file, keyed ``section.name``
    (top level without a section): ``datadir``, ``admin_variables.admin_credentials``,
    ``admin_variables.mysql_ifaces``. Comments (``#``, ``//``) and other settings are ignored."""
    found = {}  # type: Dict[str, str]
    section = ""
    depth = 0
    pending = None  # type: Optional[str]
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        line = re.sub(r"//.*$", "", line).strip()
        if not line:
            continue
        opener = re.match(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*[=:]\s*(\{)?\s*$", line)
        if opener and depth == 0:
            pending = opener.group(1)
            if opener.group(2):
                section, depth, pending = pending, 1, None
            continue
        if line.startswith("{") and pending and depth == 0:
            section, depth, pending = pending, 1, None
            line = line[1:].strip()
            if not line:
                continue
        if line.startswith("}"):
            depth = max(0, depth - 1)
            if depth == 0:
                section = ""
            continue
        match = _SETTING_RE.match(line)
        if match and depth <= 1:
            key = match.group(1) if not section else section + "." + match.group(1)
            found[key] = match.group(2).replace('\\"', '"').replace("\\\\", "\\")
    return found


def admin_endpoint(settings: Dict[str, str], override: Optional[str] = None) -> Dict[str, Any]:
    """user, password, port and datadir for the admin connection (loopback only: the user named
    ``admin`` may only log in locally)."""
    credentials = override or settings.get("admin_variables.admin_credentials") or ":".join(DEFAULT_ADMIN)
    first = credentials.split(";")[0]
    if ":" not in first:
        raise AgentError("ProxySQL admin credentials must look like user:password")
    user, password = first.split(":", 1)
    port = 6032
    ifaces = settings.get("admin_variables.mysql_ifaces", "")
    for iface in ifaces.split(";"):
        if ":" in iface and not iface.startswith("/"):
            try:
                port = int(iface.rsplit(":", 1)[1])
                break
            except ValueError:
                continue
    return {"user": user, "password": password, "port": port,
            "datadir": settings.get("datadir") or proxysql_plan.PLATFORM_DATADIR}


def read_settings() -> Tuple[Optional[str], Dict[str, str]]:
    for path in CONFIG_FILES:
        text = fsio.read_text(path)
        if text is not None:
            return path, parse_config(text)
    return None, {}



class Admin(object):
    """The admin interface on 127.0.0.1 (never ``localhost``: that is a Unix socket)."""

    def __init__(self, ctx: Any) -> None:
        ctx = Context.of(ctx)
        self.config_path, settings = read_settings()
        override = ctx.first_password("proxysql-admin", "proxysql_admin")
        endpoint = admin_endpoint(settings, override)
        self.datadir = endpoint["datadir"]
        self.port = endpoint["port"]
        self.client = node.Client(user=endpoint["user"], password=endpoint["password"], host="127.0.0.1",
                                       port=self.port, skip_ssl=True,
                                       what="the ProxySQL admin interface (127.0.0.1:{})".format(self.port))
        code, out, err = self.client.try_query("SELECT 1")
        if code != 0:
            reason = node.one_line(err or out)
            hint = ""
            if "Access denied" in reason:
                hint = "; the credentials in {} may be stale: pass the current ones with --passwords-stdin " \
                       "{{\"proxysql-admin\": \"user:password\"}}".format(self.config_path or "/etc/proxysql.cnf")
            raise AgentError("cannot log in to the ProxySQL admin interface at 127.0.0.1:{} as {!r}: {}{}".format(
                self.port, endpoint["user"], reason, hint))
        self.version = proxysql_plan.parse_version(self.client.query(proxysql_plan.version_query()))

    def snapshot(self) -> proxysql_plan.Snapshot:
        queries = proxysql_plan.snapshot_queries()
        return proxysql_plan.parse_snapshot(self.client.query(queries["variables"]),
                                            self.client.query(queries["servers"]),
                                            self.client.query(queries["users"]))

    def runtime_problems(self, backend_ca: str, require_tls: bool) -> List[str]:
        queries = proxysql_plan.verify_queries()
        return proxysql_plan.check_runtime(self.client.query(queries["variables"]),
                                           self.client.query(queries["servers"]), backend_ca,
                                           self.client.query(queries["users"]), require_tls)
