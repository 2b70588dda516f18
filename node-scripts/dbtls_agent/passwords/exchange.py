"""Moving database passwords between nodes sealed: the recipient key, what a node knows, opening blobs.

The node that will use passwords (``enable --passwords-sealed``) first runs ``secrets recipient``: a
fresh RSA key, 0600 in ``<cert-dir>/.dbtls-state/seal/``, of which only the public half is printed.
Every node that knows passwords runs ``secrets seal`` with that public key on stdin and prints one
blob line (see :mod:`dbtls_agent.passwords.sealbox`). The recipient's ``enable --passwords-sealed`` reads the
blobs on stdin, opens them in its own process and deletes the private key, so the manifest's
transcript only ever holds public keys and ciphertext.

What a node knows (the same sources the manifest used to read in shell): webadmin's password from
the platform's ``jcm getPswd`` on PostgreSQL nodes, Pgpool-II's check and recovery users from
``pgpool.conf``, the replication user from ``primary_conninfo`` and ``~postgres/.pgpass``. Hashed
values (``md5...``, ``SCRAM-...``, ``AES...``) are skipped: only clear passwords are useful.
"""

import json
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio, state
from dbtls_agent.errors import AgentError
from dbtls_agent.passwords import sealbox

#: A recipient key younger than this is reused by ``secrets recipient`` (the same run asking twice).
REUSE_S = 600.0
PGPOOL_CONF = "/etc/pgpool-II/pgpool.conf"
PG_CONFS = ("/var/lib/pgsql/data/postgresql.auto.conf", "/var/lib/pgsql/data/postgresql.conf")
PGPASS = "/var/lib/pgsql/.pgpass"
METAINF = "/etc/jelastic/metainf.conf"
_HASHED = ("AES", "md5", "SCRAM")
_SETTING = re.compile(r"\s*(\w+)\s*=\s*'((?:[^']|'')*)'")
_CONNINFO = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def key_dir(cert_dir: str) -> str:
    return state.layout(cert_dir).seal_dir


def key_path(cert_dir: str) -> str:
    return os.path.join(key_dir(cert_dir), "recipient.key")


# --- what this node knows ---------------------------------------------------------------------


def _settings(path: str) -> Dict[str, str]:
    out = {}  # type: Dict[str, str]
    for line in (fsio.read_text(path) or "").splitlines():
        match = _SETTING.match(line)
        if match:
            out[match.group(1)] = match.group(2).replace("''", "'")
    return out


def parse_conninfo(text: str) -> Dict[str, str]:
    """``key=value`` pairs of a libpq connection string (values may be single-quoted)."""
    out = {}  # type: Dict[str, str]
    for key, value in _CONNINFO.findall(text):
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[key] = value
    return out


def known_passwords() -> Dict[str, str]:
    """The clear database passwords this node can find (user -> password), first source wins."""
    found = {}  # type: Dict[str, str]

    def add(user: Optional[str], password: Optional[str]) -> None:
        if user and password and not password.startswith(_HASHED) and user not in found:
            found[user] = password

    from dbtls_agent.certs import nodeinfo

    if nodeinfo.compute_type(METAINF).startswith("postgres"):
        from dbtls_agent.roles.postgres import accounts

        add("webadmin", accounts.platform_webadmin_password())
    pool = _settings(PGPOOL_CONF)
    for prefix in ("sr_check", "health_check", "wd_lifecheck", "recovery"):
        add(pool.get(prefix + "_user"), pool.get(prefix + "_password"))
    for conf in PG_CONFS:
        info = parse_conninfo(_settings(conf).get("primary_conninfo", ""))
        add(info.get("user"), info.get("password"))
    for line in (fsio.read_text(PGPASS) or "").splitlines():
        parts = re.split(r"(?<!\\):", line)
        if len(parts) == 5 and not line.startswith("#"):
            add(parts[3].replace("\\:", ":"), parts[4].replace("\\:", ":").replace("\\\\", "\\"))
    return found


# --- recipient side ---------------------------------------------------------------------------


def make_recipient(cert_dir: str, sealer: Any, fresh: bool = False) -> bytes:
    """Public PEM of this node's recipient key, made now (or reused when made within REUSE_S)."""
    path = key_path(cert_dir)
    fsio.ensure_dir(state.state_dir(cert_dir), 0o700)
    fsio.ensure_dir(key_dir(cert_dir), 0o700)
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        age = None
    if fresh or age is None or not 0 <= age < REUSE_S:
        fsio.atomic_write(path, sealer.generate_private_key(), mode=0o600)
    os.chmod(path, 0o600)
    return sealer.public_pem(path)


def forget(cert_dir: str) -> bool:
    """Delete the recipient key; True when there was one."""
    try:
        os.unlink(key_path(cert_dir))
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise AgentError("cannot delete the recipient key {}: {}".format(key_path(cert_dir), exc.strerror)) from None
    return True


def blobs_in(text: str) -> List[str]:
    """The blob lines of ``text`` (blank lines skipped; anything else is an error)."""
    blobs = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not line.startswith(sealbox.PREFIX):
            raise AgentError("--passwords-sealed: stdin holds a line that is not a sealed blob "
                             "(expected lines starting {!r})".format(sealbox.PREFIX))
        blobs.append(line)
    return blobs


def open_all(cert_dir: str, text: str, sealer: Any = None) -> Dict[str, str]:
    """Passwords from every blob in ``text``, merged (earlier blobs win)."""
    blobs = blobs_in(text)
    if not blobs:
        return {}
    path = key_path(cert_dir)
    if not os.path.isfile(path):
        raise AgentError("--passwords-sealed: this node has no recipient key ({}); run 'dbtls-agent secrets "
                         "recipient' on it before sealing".format(path))
    sealer = sealer or sealbox.get_sealer()
    public = sealer.public_pem(path)
    merged = {}  # type: Dict[str, str]
    for blob in blobs:
        try:
            data = json.loads(sealbox.open_blob(sealer, path, public, blob).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise AgentError("sealed secrets: a blob does not hold a JSON object of passwords") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise AgentError("sealed secrets: a blob does not hold a JSON object of user -> password strings")
        for user, password in data.items():
            merged.setdefault(user, password)
    return merged


def blobs_from_manifest(text: str) -> str:
    """The blob lines inside the manifest's list: base64 of ``<node id>:<base64 of a seal output> ...``."""
    from dbtls_agent import payload

    if not text.strip():
        return ""
    lines = []  # type: List[str]
    for node_id, data in payload.decode_list(payload.decode_text(text, "sealed list"), "sealed list"):
        try:
            lines.append(data.decode("ascii").strip())
        except UnicodeDecodeError:
            raise AgentError("sealed list: node {} sent something that is not a sealed blob".format(node_id)) from None
    return "\n".join(lines)


def read_sealed_stdin(cert_dir: str, from_manifest: bool = False) -> Dict[str, str]:
    """``enable --passwords-sealed``: open stdin's blobs, then delete the recipient key (always)."""
    try:
        text = sys.stdin.read()
        return open_all(cert_dir, blobs_from_manifest(text) if from_manifest else text)
    finally:
        forget(cert_dir)


# --- knowing side -----------------------------------------------------------------------------
