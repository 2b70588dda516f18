"""Running the ``mysql``/``mariadb`` client without a secret on its command line, and reading its output.

argv is world-readable in /proc, so credentials travel in a ``[client]`` option file that only we can
read (0600 in a 0700 temp dir) and the client gets ``--defaults-extra-file=PATH``. That option must
be the very first argument: the client ignores it anywhere else.

Output is read in ``--batch`` mode *without* ``--raw``: the client then escapes tab, newline, backslash
and NUL inside values (``\\t \\n \\\\ \\0``), so rows and columns split unambiguously. SQL NULL is
printed as the bare word ``NULL`` and comes back as None; a string value ``'NULL'`` is
indistinguishable from it — none of the values we read can legitimately be that string.
"""

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, List, Optional, Sequence

from dbtls_agent.errors import AgentError

MYSQL_CLIENT = "mysql"  # Oracle MySQL / Percona client: --ssl-mode=...
MARIADB_CLIENT = "mariadb"  # MariaDB client (also installed as "mysql" on MariaDB nodes): --ssl, --skip-ssl

# Option-file value syntax lives here, in the one module with no dbtls imports, because both the
# client defaults file (below) and the my.cnf parser (mycnf) need it. It mirrors mysys
# my_default.c: one pair of matching quotes is removed, then these backslash escapes apply.
_UNESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "s": " ", '"': '"', "'": "'", "\\": "\\"}


def unquote_value(raw_value: str) -> str:
    """The value the server sees for the text after ``=`` (comment already removed)."""
    value = raw_value.strip()
    if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
        value = value[1:-1]
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i < len(value) - 1:
            nxt = value[i + 1]
            out.append(_UNESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_QUOTE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b"}


def quote_value(value: str) -> str:
    """Write ``value`` so :func:`unquote_value` (and mysys) give it back unchanged.

    Always double-quoted: inside quotes ``#`` is no comment and leading/trailing spaces survive;
    a backslash before ``"`` keeps the quote from ending the value.
    """
    if "\0" in value:
        raise AgentError("a value for a MySQL option file cannot contain a NUL character")
    return '"' + "".join(_QUOTE_ESCAPES.get(ch, ch) for ch in value) + '"'


_BATCH_UNESCAPES = {"t": "\t", "n": "\n", "\\": "\\", "0": "\0"}


def client_kind(version_output: str) -> str:
    """Which option dialect a client speaks, from its ``--version`` line (a MariaDB build of
    ``mysql`` says ``Distrib 10.11.6-MariaDB``; Oracle's does not know ``--ssl``)."""
    return MARIADB_CLIENT if "mariadb" in version_output.lower() else MYSQL_CLIENT


def render_client_defaults(
    user: Optional[str] = None,
    password: Optional[str] = None,
    host: Optional[str] = None,
    port: Optional[int] = None,
    socket: Optional[str] = None,
    ssl_ca: Optional[str] = None,
    ssl_verify_server_cert: bool = False,
    skip_ssl: bool = False,
    client: str = MARIADB_CLIENT,
) -> str:
    """Text of a ``[client]`` option file for one connection.

    Every string value is double-quoted with :func:`quote_value`, so quotes, backslashes,
    spaces, ``#`` and non-ASCII in a password survive the client's option-file reader.
    ``client`` picks the TLS option dialect: MySQL 8 clients reject ``ssl-verify-server-cert`` and
    ``skip-ssl`` (``--ssl-mode`` instead) and MariaDB clients reject ``ssl-mode``; an unknown option
    in the file would make the client exit. ``skip_ssl`` is for loopback admin calls (ProxySQL
    6032), where a MariaDB 11.4+ client would refuse ProxySQL's self-signed certificate.
    """
    if client not in (MYSQL_CLIENT, MARIADB_CLIENT):
        raise AgentError("unknown mysql client kind {!r}".format(client))
    if skip_ssl and (ssl_ca or ssl_verify_server_cert):
        raise AgentError("cannot both skip TLS and verify the server certificate")
    lines = ["# written by dbtls for one client call; removed right after", "[client]"]
    for key, value in (("user", user), ("password", password), ("host", host), ("socket", socket)):
        if value is not None:
            lines.append("{}={}".format(key, quote_value(value)))
    if port is not None:
        lines.append("port={:d}".format(int(port)))
    lines.append("default-character-set=utf8mb4")
    if ssl_ca:
        lines.append("ssl-ca={}".format(quote_value(ssl_ca)))
    if client == MYSQL_CLIENT:
        if skip_ssl:
            lines.append("ssl-mode=DISABLED")
        elif ssl_verify_server_cert:
            lines.append("ssl-mode=VERIFY_IDENTITY")
        elif ssl_ca:
            lines.append("ssl-mode=VERIFY_CA")
    else:
        if skip_ssl:
            lines.append("skip-ssl")
        elif ssl_verify_server_cert:
            lines.append("ssl-verify-server-cert")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def private_defaults_file(text: str, parent: Optional[str] = None) -> Iterator[str]:
    """Write ``text`` to a fresh 0600 file in a private 0700 temp dir; yield its path; remove both.

    O_EXCL|O_NOFOLLOW: we never write through a file or symlink someone planted first. The mode is
    given at creation, so there is no moment when the file is readable by others.
    """
    directory = tempfile.mkdtemp(prefix="dbtls-client-", dir=parent)
    path = os.path.join(directory, "client.cnf")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def mysql_argv(
    defaults_file: str,
    sql: str,
    client: str = "mysql",
    column_names: bool = False,
    extra_args: Sequence[str] = (),
) -> List[str]:
    """argv for one batch call: ``client --defaults-extra-file=F --batch [--skip-column-names] ... -e SQL``.

    ``client`` is the executable (``mysql`` or ``mariadb``). SQL is not secret, it may be on argv;
    a password option in ``extra_args`` is refused so nobody adds one by accident.
    """
    for arg in extra_args:
        if arg.startswith("--password") or (arg.startswith("-p") and not arg.startswith("--")):
            raise AgentError("refusing to put a password on the command line; use the defaults file")
        if arg.startswith("--defaults"):
            raise AgentError("--defaults-* options must come first; pass the file as defaults_file")
    argv = [client, "--defaults-extra-file=" + defaults_file, "--batch"]
    if not column_names:
        argv.append("--skip-column-names")
    argv.extend(extra_args)
    argv.extend(["-e", sql])
    return argv


def _unescape_batch_field(field: str) -> Optional[str]:
    if field == "NULL":
        return None
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        ch = field[i]
        if ch == "\\" and i + 1 < len(field):
            nxt = field[i + 1]
            out.append(_BATCH_UNESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_batch_output(output: str) -> List[List[Optional[str]]]:
    """Rows of ``mysql --batch`` (not ``--raw``) output: one row per line, cells split at tabs,
    escapes decoded, ``NULL`` as None. A header line, if asked for, is simply the first row."""
    if not output:
        return []
    text = output[:-1] if output.endswith("\n") else output  # "\n" alone is one row holding ''
    return [[_unescape_batch_field(cell) for cell in line.split("\t")] for line in text.split("\n")]


def escape_batch_field(value: Optional[str]) -> str:
    """What the client prints for one value in batch mode (inverse of the parser; for test doubles)."""
    if value is None:
        return "NULL"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\0", "\\0")
