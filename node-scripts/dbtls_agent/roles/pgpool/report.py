"""Pre-flight report for a Pgpool-II node: who has a pool_passwd entry, of what kind, and who has none.

Pgpool-II authenticates clients itself, from pool_passwd: an ``md5`` entry can answer md5 only
(client and backends), an ``AES`` entry (decrypted with ``~postgres/.pgpoolkey``) or a text entry
can answer md5 and SCRAM. A role without an entry cannot log in through Pgpool-II with a password
at all ("valid password not found"), before enable as after. Enable writes AES entries for the
users whose passwords it is given (webadmin, Pgpool's own user) and keeps every other entry; md5
entries keep working through a per-role ``md5`` rule in pool_hba.conf.

Read-only. The backend's login roles come from ``pg_roles`` on a backend of pgpool.conf, asked as
Pgpool's health-check user (its password from pgpool.conf); when that fails the report says
"unknown" and why.
"""

from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError
from dbtls_agent.roles import lockout
from dbtls_agent.roles.pgpool import facts, poolkey, poolpasswd
from dbtls_agent.roles.postgres import client, conf, hba

#: Kinds in the report. Pgpool reads an unprefixed secret, or an md5-looking one of the wrong
#: length, as a clear-text password, like a ``TEXT`` one.
MD5, AES, TEXT, OTHER = "md5", "aes", "text", "other"
#: Users whose entries enable rewrites as AES itself (their passwords reach it sealed).
ENABLE_WRITES = ("webadmin", "pgpool")


def split_line(line: str) -> Optional[Tuple[str, str]]:
    """(user, rest) at the first colon not escaped by a backslash; None without one."""
    return poolpasswd.split_user(line)


def classify(text: str, key: Optional[bytes] = None) -> List[Dict[str, Any]]:
    """One entry per non-blank line: user, kind (md5/aes/text/other), line number, and for AES
    whether it decrypts with ``key`` (None when no key was given). Never fails on a bad line."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        parts = split_line(line)
        if parts is None:
            entries.append({"line": number, "user": None, "kind": OTHER, "detail": "no user:secret separator"})
            continue
        user, rest = parts
        secret = rest.split(":", 1)[0]
        kind = poolpasswd.secret_kind(secret)
        entry = {"line": number, "user": user}  # type: Dict[str, Any]
        if kind == poolpasswd.MD5:
            entry["kind"] = MD5
        elif kind == poolpasswd.AES:
            entry["kind"] = AES
            entry["decrypts"] = _decrypts(secret, key)
        elif kind in (poolpasswd.TEXT, poolpasswd.PLAIN):
            entry["kind"] = TEXT
        else:
            entry["kind"] = OTHER
            entry["detail"] = "SCRAM secret: Pgpool cannot log in to the backends with it" \
                if kind == poolpasswd.SCRAM else "unknown secret format"
        entries.append(entry)
    return entries


def _decrypts(secret: str, key: Optional[bytes]) -> Optional[bool]:
    if key is None:
        return None
    try:
        poolpasswd.decrypt_password(secret, key)
    except AgentError:
        return False
    return True


def analyse(entries: List[Dict[str, Any]], backend_roles: Optional[List[str]], hba_text: str,
            enable_pool_hba: Optional[str], backend_error: Optional[str] = None) -> Dict[str, Any]:
    """The report (pure): kinds per user, roles without an entry, md5 rules enable will add."""
    by_kind = {MD5: [], AES: [], TEXT: [], OTHER: []}  # type: Dict[str, List[str]]
    users = []
    for entry in entries:
        if entry.get("user") is not None:
            by_kind[entry["kind"]].append(entry["user"])
            users.append(entry["user"])
    md5_after = sorted(u for u in by_kind[MD5] if u not in ENABLE_WRITES)
    without = None if backend_roles is None else sorted(r for r in backend_roles if r not in users)
    needs = [lockout.pool_md5_entry(u) for u in md5_after]
    undecryptable = [e["user"] for e in entries if e.get("kind") == AES and e.get("decrypts") is False]
    blockers = []
    for user in undecryptable:
        blockers.append({"who": user, "layer": "pgpool", "why": "its AES entry does not decrypt with this node's "
                         "key (~postgres/.pgpoolkey): it cannot log in through Pgpool-II now",
                         "fix": lockout.PGPOOL_STEPS.replace("NAME", user)})
    try:
        remote = [r for r in hba.rules(hba_text, hba.PGPOOL, "pool_hba.conf")
                  if r.type != "local" and not hba.is_loopback(r)]
    except AgentError as exc:
        remote = []
        blockers.append({"who": "pool_hba.conf", "layer": "pgpool", "why": str(exc), "fix": "fix the file first"})
    return {
        "role": "pgpool", "entries": entries, "by_kind": by_kind, "backend_login_roles": backend_roles,
        "without_entry": without, "backend_roles_error": backend_error,
        "enable_pool_hba": enable_pool_hba, "md5_rules_after_enable": md5_after,
        "pool_hba_remote_rules": [{"line": r.lineno, "type": r.type, "user": r.user, "method": r.method}
                                  for r in remote],
        "needs_action": needs, "blockers": blockers,
        # Undecryptable AES entries do not work today either: they are reported, never a reason to stop.
        "not_working_now": undecryptable,
    }


def _health_check_login(conf_text: str, key: Optional[bytes]) -> Tuple[str, Optional[str]]:
    user = conf.get(conf_text, "health_check_user") or conf.get(conf_text, "sr_check_user") or "pgpool"
    password = conf.get(conf_text, "health_check_password") or conf.get(conf_text, "sr_check_password") or ""
    kind = poolpasswd.secret_kind(password) if password else None
    if kind == poolpasswd.AES and key is not None:
        try:
            return user, poolpasswd.decrypt_password(password, key)
        except AgentError:
            return user, None
    if kind in (poolpasswd.PLAIN, poolpasswd.TEXT) and password:
        return user, password[4:] if kind == poolpasswd.TEXT else password
    return user, None


def backend_login_roles(conf_text: str, key: Optional[bytes]) -> Tuple[Optional[List[str]], Optional[str]]:
    """(login roles of the first backend that answers, None) or (None, why not)."""
    user, password = _health_check_login(conf_text, key)
    last = "pgpool.conf names no backend"
    for host, port in facts.backends(conf_text):
        try:
            rows = client.psql("SELECT rolname FROM pg_roles WHERE rolcanlogin ORDER BY 1", os_user="root",
                                 host=host, port=port, db_user=user, password=password or "",
                                 extra_conninfo="sslmode=prefer", timeout=20)
        except AgentError as exc:
            last = "{}:{} as {}: {}".format(host, port, user, exc)
            continue
        return [r[0] for r in rows], None
    return None, last


def gather_and_analyse(conf_path: str, hba_path: str) -> Dict[str, Any]:
    conf_text = fsio.read_text(conf_path)
    if conf_text is None:
        raise AgentError("{} does not exist: no Pgpool-II on this node".format(conf_path))
    passwd_path = poolkey.pool_passwd_path(conf_path, conf_text)
    key_data = fsio.read_bytes(poolkey.key_path())
    key = poolpasswd.key_from_file_text(key_data) if key_data else None
    entries = classify(fsio.read_text(passwd_path) or "", key)
    roles, error = backend_login_roles(conf_text, key)
    report = analyse(entries, roles, fsio.read_text(hba_path) or "", conf.get(conf_text, "enable_pool_hba"), error)
    report["pool_passwd"] = passwd_path
    report["key_file"] = poolkey.key_path() if key is not None else None
    return report
