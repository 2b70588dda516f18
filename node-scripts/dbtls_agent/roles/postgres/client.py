"""Talk to the local PostgreSQL (or Pgpool-II) with ``psql``, never with a secret on argv.

The agent is stdlib-only, so it cannot speak the wire protocol for queries; ``psql`` is on every
PostgreSQL and Pgpool node of the platform. Local admin queries run as the service OS user over the
Unix socket (peer authentication, no password at all). Remote logins get their password through
``PGPASSWORD`` in the child's environment, which, unlike argv, other users cannot read in /proc.
SQL always goes in on stdin, so even non-secret statements never show up in ``ps``.
"""

import base64
import hashlib
import hmac
import os
import pwd
import subprocess
import unicodedata
from typing import Dict, List, Optional, Sequence

from dbtls_agent.errors import AgentError

SOCKET_DIRS = ("/var/run/postgresql", "/run/postgresql", "/tmp")
FIELD_SEP = "\x1f"
PSQL_TIMEOUT_S = 60


def find_socket_dir(port: int = 5432, dirs: Sequence[str] = SOCKET_DIRS) -> Optional[str]:
    """The directory holding the server's socket for ``port``, or None when nothing listens."""
    for directory in dirs:
        if os.path.exists(os.path.join(directory, ".s.PGSQL.{}".format(port))):
            return directory
    return None


def _demote(user: str):
    """preexec_fn switching to ``user`` (only when we are root and someone else is asked for)."""
    if os.geteuid() != 0 or user in ("", "root"):
        return None
    entry = pwd.getpwnam(user)

    def switch() -> None:
        os.setgid(entry.pw_gid)
        os.initgroups(user, entry.pw_gid)
        os.setuid(entry.pw_uid)
    return switch


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip()
        for tag in ("ERROR:", "FATAL:", "psql: error:", "psql:"):
            if tag in line:
                return line[line.index(tag):]
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return lines[0] if lines else "psql failed"


def psql(sql: str, os_user: str = "postgres", host: Optional[str] = None, port: int = 5432,
         dbname: str = "postgres", db_user: Optional[str] = None, password: Optional[str] = None,
         extra_conninfo: str = "", timeout: float = PSQL_TIMEOUT_S) -> List[List[str]]:
    """Run ``sql`` (from stdin) and return rows as lists of strings; AgentError with psql's error.

    Without ``host`` the local socket directory is used. ``password`` is passed via PGPASSWORD.
    """
    if host is None:
        host = find_socket_dir(port)
        if host is None:
            raise AgentError("no PostgreSQL socket for port {} in {}: the server is not running on this "
                             "node; start it first".format(port, ", ".join(SOCKET_DIRS)))
    conninfo = "host={} port={} dbname={} connect_timeout=10".format(host, port, dbname)
    if db_user:
        conninfo += " user={}".format(db_user)
    if extra_conninfo:
        conninfo += " " + extra_conninfo
    env = dict(os.environ)
    for name in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS"):
        env.pop(name, None)
    env["PGAPPNAME"] = "dbtls-agent"
    if password is not None:
        env["PGPASSWORD"] = password
    try:
        entry = pwd.getpwnam(os_user) if os.geteuid() == 0 and os_user not in ("", "root") else None
    except KeyError:
        raise AgentError("service user {!r} does not exist on this node".format(os_user)) from None
    if entry is not None:
        env["HOME"] = entry.pw_dir
    argv = ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", FIELD_SEP, "-d", conninfo, "-f", "-"]
    try:
        proc = subprocess.run(argv, input=sql.encode("utf-8"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, timeout=timeout, preexec_fn=_demote(os_user) if entry else None,
                              cwd="/")
    except FileNotFoundError:
        raise AgentError("psql is not installed on this node") from None
    except subprocess.TimeoutExpired:
        raise AgentError("psql to {} port {} timed out after {:.0f}s".format(host, port, timeout)) from None
    if proc.returncode != 0:
        raise AgentError(_first_error(proc.stderr.decode("utf-8", "replace")))
    out = proc.stdout.decode("utf-8", "replace")
    return [line.split(FIELD_SEP) for line in out.splitlines() if line != ""]


def scalar(sql: str, **kwargs: object) -> Optional[str]:
    rows = psql(sql, **kwargs)  # type: ignore
    return rows[0][0] if rows and rows[0] else None


def literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings is on since 9.1)."""
    if "\x00" in value:
        raise AgentError("value contains a NUL byte")
    return "'" + value.replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- password secrets ------------------------------------------------------------------------------

def md5_secret(user: str, password: str) -> str:
    return "md5" + hashlib.md5((password + user).encode("utf-8")).hexdigest()


def _salted(password: str, salt: bytes, iterations: int) -> bytes:
    # Close enough to SASLprep for real passwords (NFKC); ASCII passwords are unchanged by both.
    prepared = unicodedata.normalize("NFKC", password).encode("utf-8")
    return hashlib.pbkdf2_hmac("sha256", prepared, salt, iterations)


def scram_verifier(password: str, salt: Optional[bytes] = None, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores, computed here so the cleartext never reaches SQL.

    ``ALTER ROLE … PASSWORD 'SCRAM-SHA-256$…'`` stores a verifier as it is; sending the verifier
    instead of the password keeps the cleartext out of server logs and pg_stat_activity.
    """
    salt = salt if salt is not None else os.urandom(16)
    salted = _salted(password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda data: base64.b64encode(data).decode("ascii")  # noqa: E731
    return "SCRAM-SHA-256${}:{}${}:{}".format(iterations, b64(salt), b64(stored_key), b64(server_key))


def secret_matches(user: str, secret: Optional[str], password: str) -> Optional[bool]:
    """Whether ``password`` is the one behind ``secret`` (md5 or SCRAM); None when it cannot tell."""
    if not secret:
        return None
    if secret.startswith("md5") and len(secret) == 35:
        return hmac.compare_digest(secret, md5_secret(user, password))
    if secret.startswith("SCRAM-SHA-256$"):
        try:
            head, keys = secret[len("SCRAM-SHA-256$"):].split("$", 1)
            iterations, salt = head.split(":", 1)
            stored = keys.split(":", 1)[0]
            again = scram_verifier(password, base64.b64decode(salt), int(iterations))
        except (ValueError, TypeError):
            return None
        return hmac.compare_digest(again.split("$")[2].split(":")[0], stored)
    return None


def role_secrets(os_user: str = "postgres", port: int = 5432) -> Dict[str, Optional[str]]:
    """rolname -> stored secret for every login role (superuser only: reads pg_authid)."""
    rows = psql("SELECT rolname, coalesce(rolpassword, '') FROM pg_authid WHERE rolcanlogin ORDER BY 1",
                os_user=os_user, port=port)
    return {r[0]: (r[1] or None) for r in rows}
