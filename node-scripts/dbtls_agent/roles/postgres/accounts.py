"""Role passwords for the md5 -> SCRAM move, and the conninfo edit for standbys.

Kept apart from the role module because both are plain logic: which password to use, whether it is
the right one, and how to add ``sslmode``/``sslrootcert`` to a libpq connection string.
"""

import json
import re
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

from dbtls_agent.errors import AgentError
from dbtls_agent.roles.postgres import client


def read_passwords_stdin() -> Dict[str, str]:
    """The JSON object of ``--passwords-stdin``; values must be strings."""
    text = sys.stdin.read()
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        raise AgentError("--passwords-stdin: stdin is not a JSON object like {\"webadmin\": \"...\"}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise AgentError("--passwords-stdin: expected a JSON object of user -> password strings")
    return data


def platform_webadmin_password() -> Optional[str]:
    """webadmin's password from the platform's ``jcm getPswd``, or None when that tool is absent."""
    try:
        proc = subprocess.run(["jcm", "getPswd"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    value = proc.stdout.decode("utf-8", "replace").rstrip("\r\n")
    return value or None


def with_webadmin(passwords: Dict[str, str]) -> Dict[str, str]:
    """Passwords plus webadmin's from the platform when stdin did not give it."""
    result = dict(passwords)
    if "webadmin" not in result:
        found = platform_webadmin_password()
        if found is not None:
            result["webadmin"] = found
    return result


def plan_rehash(secrets: Dict[str, Optional[str]], passwords: Dict[str, str]) -> Tuple[List[str], List[str]]:
    """(roles to re-hash, roles skipped) after checking each given password against its stored hash.

    A wrong password is an error before anything changes: re-hashing with it would lock the user
    out, which is exactly what the move to SCRAM must not do.
    """
    todo, skipped = [], []
    for user in sorted(passwords):
        if user not in secrets:
            skipped.append(user)
            continue
        secret = secrets[user]
        ok = client.secret_matches(user, secret, passwords[user])
        if ok is False:
            raise AgentError("the password given for {} does not match its stored password; "
                             "nothing was changed".format(user))
        if secret and secret.startswith("md5") and ok:
            todo.append(user)
    return todo, skipped


def md5_roles(secrets: Dict[str, Optional[str]]) -> List[str]:
    return sorted(u for u, s in secrets.items() if s and s.startswith("md5"))


# --- libpq connection strings ----------------------------------------------------------------------

_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)")


def parse_conninfo(text: str) -> List[Tuple[str, str]]:
    """key=value pairs of a libpq keyword/value string, values unquoted, order kept."""
    pairs = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PAIR.match(text, pos)
        if not match:
            raise AgentError("cannot parse primary_conninfo near {!r}".format(text[pos:pos + 20]))
        value = match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs.append((match.group(1), value))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return pairs


def format_conninfo(pairs: List[Tuple[str, str]]) -> str:
    out = []
    for key, value in pairs:
        if value == "" or re.search(r"[\s'\\]", value):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out.append("{}={}".format(key, value))
    return " ".join(out)


def set_conninfo(text: str, updates: Dict[str, str]) -> str:
    """``text`` with ``updates`` replacing existing keys or appended (no duplicate keys)."""
    pairs = parse_conninfo(text)
    done = set()
    result = []
    for key, value in pairs:
        if key in updates:
            if key in done:
                continue
            value = updates[key]
            done.add(key)
        result.append((key, value))
    for key in sorted(updates):
        if key not in done:
            result.append((key, updates[key]))
    return format_conninfo(result)
