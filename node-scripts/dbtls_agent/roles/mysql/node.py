"""The edges of the MySQL-family roles: running the client, controlling the service, finding option files.

Everything here touches processes or the file system; the decisions live in mycnf, mysqlflavor,
mysqlusers and proxysql_plan. Credentials reach the client only through the 0600 defaults file of
:mod:`.client` (never argv, never the environment of a long-lived process).
"""

import shutil
import time
from typing import Callable, List, Optional, Sequence, Tuple

from dbtls_agent import fsio, nodeos
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.mysql import client, mycnf

#: Main option files a MySQL-family server reads, in its own order (global ones only: the server
#: runs as root/mysql with no useful ~/.my.cnf).
MAIN_OPTION_FILES = ("/etc/my.cnf", "/etc/mysql/my.cnf")


def one_line(text: str, limit: int = 400) -> str:
    """Squash client/server output into one line for an AgentError."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    joined = " | ".join(lines)
    return joined[:limit] + ("..." if len(joined) > limit else "")


def find_client() -> Tuple[str, str]:
    """(executable, option dialect) of the node's command-line client; ``mariadb`` first."""
    for exe in ("mariadb", "mysql"):
        path = shutil.which(exe)
        if path:
            code, out, err = nodeos.run_status([path, "--version"], timeout=15)
            if code == 0:
                return path, client.client_kind(out + err)
    raise AgentError("no mysql/mariadb command-line client on this node; install the client package")


class Client(object):
    """One account on one server, queried with ``mysql --batch`` through a private defaults file."""

    def __init__(self, user: str = "root", password: Optional[str] = None, host: Optional[str] = None,
                 port: Optional[int] = None, socket: Optional[str] = None, skip_ssl: bool = False,
                 what: str = "the database server", timeout: float = 60.0) -> None:
        self.exe, self.kind = find_client()
        self.user, self.password, self.host, self.port, self.socket = user, password, host, port, socket
        self.skip_ssl = skip_ssl
        self.what = what
        self.timeout = timeout

    def _defaults(self) -> str:
        return client.render_client_defaults(
            user=self.user, password=self.password, host=self.host, port=self.port, socket=self.socket,
            skip_ssl=self.skip_ssl, client=self.kind)

    def try_query(self, sql: str, column_names: bool = False) -> Tuple[int, str, str]:
        with client.private_defaults_file(self._defaults()) as path:
            argv = client.mysql_argv(path, sql, client=self.exe, column_names=column_names,
                                          extra_args=["--connect-timeout=10"])
            return nodeos.run_status(argv, timeout=self.timeout)

    def query(self, sql: str, column_names: bool = False) -> str:
        """Output of ``sql`` in batch form; AgentError with the server's message otherwise."""
        code, out, err = self.try_query(sql, column_names)
        if code != 0:
            raise AgentError("{} refused {!r}: {}".format(self.what, _short(sql), one_line(err or out)))
        return out

    def rows(self, sql: str) -> List[List[Optional[str]]]:
        return client.parse_batch_output(self.query(sql))

    def value(self, sql: str) -> Optional[str]:
        rows = self.rows(sql)
        return rows[0][0] if rows and rows[0] else None

    def execute(self, statements: Sequence[str]) -> None:
        """Run statements in one session, in order; stops at the first error."""
        if statements:
            self.query(";\n".join(statements))

    def wait_ready(self, deadline_s: float = 90.0) -> None:
        """Poll ``SELECT 1`` until the server answers or the deadline passes."""
        deadline = time.monotonic() + deadline_s
        last = ""
        while True:
            code, out, err = self.try_query("SELECT 1")
            if code == 0:
                return
            last = one_line(err or out)
            if time.monotonic() >= deadline:
                raise AgentError("{} did not answer within {:.0f}s: {}".format(self.what, deadline_s, last))
            time.sleep(0.5)


def _short(sql: str) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= 80 else text[:77] + "..."


def error_log_tail(path: Optional[str], since_size: int = 0, lines: int = 400) -> List[str]:
    """Lines the server appended to its error log after ``since_size`` bytes."""
    data = fsio.read_from(path, since_size, 16 << 20)
    return data.decode("utf-8", "replace").splitlines()[-lines:] if data else []


def server_error(log_lines: Sequence[str]) -> str:
    """The server's own reason from its error log (``[ERROR]`` lines), one line."""
    errors = [ln.split("[ERROR]", 1)[1].strip() for ln in log_lines if "[ERROR]" in ln]
    return "; ".join(dict.fromkeys(errors)) if errors else ""


def read_option_files(read: Callable[[str], Optional[str]],
                      mains: Sequence[str] = MAIN_OPTION_FILES) -> Tuple[List[str], List[str]]:
    """(existing main files, include dirs they name, following ``!include`` one level deep)."""
    found, dirs = [], []  # type: List[str], List[str]
    for path in mains:
        text = read(path)
        if text is None:
            continue
        found.append(path)
        for directive in mycnf.include_directives(text):
            if directive.kind == mycnf.INCLUDEDIR:
                dirs.append(directive.path)
            else:
                sub = read(directive.path)
                if sub is not None:
                    dirs.extend(mycnf.included_dirs(sub))
    return found, dirs


def dropin_plan(read: Callable[[str], Optional[str]],
                mains: Sequence[str] = MAIN_OPTION_FILES) -> Tuple[str, Optional[str]]:
    """(drop-in directory, main file that needs an ``!includedir`` or None).

    The platform's ``/etc/mysql/conf.d`` when a main file already includes it; else the last
    included directory; with no include at all, ``/etc/mysql/conf.d`` added to the first main file
    (``/etc/my.cnf`` on the platform).
    """
    found, dirs = read_option_files(read, mains)
    chosen = mycnf.choose_dropin_dir(dirs)
    if chosen is not None:
        return chosen, None
    if not found:
        raise AgentError("no MySQL option file found ({}); is this a MySQL/MariaDB node?".format(
            ", ".join(mains)))
    return mycnf.PLATFORM_CONF_D, found[0]
