"""Pgpool-II's AES key file and pool_passwd entries, written natively or through ``pg_enc``.

The key (``~/.pgpoolkey`` of the Pgpool service user) is what protects every AES entry, so it is
random, 0600, and kept once it exists; the platform's well-known ``defaultpgpoolkey`` is replaced
(entries that decrypt with it are re-encrypted). ``pg_enc`` never sees a password on argv: it reads
``user:password`` lines from a 0600 file in a private temporary directory (``-i``, Pgpool 4.2+).
"""

import os
import pwd
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional, Tuple

from dbtls_agent import fsio, pgconf, pgenc, state
from dbtls_agent.errors import AgentError

SERVICE_USER = "postgres"
DEFAULT_CONF = "/etc/pgpool-II/pgpool.conf"


def key_path(user: str = SERVICE_USER) -> str:
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        raise AgentError("Pgpool service user {!r} does not exist".format(user)) from None
    return os.path.join(home, ".pgpoolkey")


def pool_passwd_path(conf_path: str, conf_text: str) -> str:
    """The pool_passwd file pgpool.conf names; relative to pgpool.conf's directory, as Pgpool does."""
    value = pgconf.get(conf_text, "pool_passwd", conf_path)
    if value is None:
        value = "pool_passwd"
    if value == "":
        value = "pool_passwd"  # we are about to turn it on (enable sets pool_passwd = 'pool_passwd')
    return value if os.path.isabs(value) else os.path.join(os.path.dirname(os.path.abspath(conf_path)), value)


def ensure_key(cs: state.ChangeSet, user: str = SERVICE_USER) -> Tuple[bytes, Optional[bytes], bool]:
    """(key in use, old weak key or None, created/replaced?) -- a strong key exists afterwards."""
    path = key_path(user)
    data = fsio.read_bytes(path)
    old = None
    if data is not None:
        key = pgenc.key_from_file_text(data)
        if not pgenc.is_weak_key(key):
            return key, None, False
        old = key
    new_key = pgenc.generate_pgpool_key()
    cs.write(path, (new_key + "\n").encode("ascii"), 0o600, fsio.resolve_owner(user))
    return new_key.encode("ascii"), old, True


def set_entries(text: str, passwords: Dict[str, str], key: bytes, old_key: Optional[bytes]) -> Tuple[str, List[str]]:
    """pool_passwd text with AES entries for ``passwords``; AES entries under ``old_key`` re-encrypted."""
    users = []
    if old_key is not None:
        for entry in pgenc.parse_pool_passwd(text):
            if entry.kind == pgenc.AES and entry.user not in passwords:
                try:
                    plain = pgenc.decrypt_password(entry.secret, old_key)
                except AgentError:
                    continue
                text = pgenc.set_entry(text, entry.user, pgenc.encrypt_password(plain, key))
                users.append(entry.user)
    for user in sorted(passwords):
        text = pgenc.set_entry(text, user, pgenc.encrypt_password(passwords[user], key))
        users.append(user)
    return text, users


def pg_enc_exe() -> str:
    """The pg_enc binary, if it can read passwords from a file (``-i``, Pgpool-II 4.2+).

    pg_enc 4.0/4.1 only takes the password on argv or from a terminal, and argv is world-readable,
    so those versions are refused before anything changes (native writes the same entry).
    """
    exe = shutil.which("pg_enc") or ("/usr/sbin/pg_enc" if os.path.exists("/usr/sbin/pg_enc") else None)
    if exe is None:
        raise AgentError("pg_enc is not installed on this node; use --backend native")
    try:
        proc = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentError("cannot run {}: {}".format(exe, exc)) from None
    if b"input-file" not in proc.stdout:
        raise AgentError("this pg_enc (Pgpool-II before 4.2) cannot read passwords from a file and dbtls never "
                         "puts one on a command line; use --backend native, which writes the same AES entry")
    return exe


def pg_enc_set(conf_path: str, key_file: str, passwords: Dict[str, str], user: str = SERVICE_USER) -> None:
    """Let the real ``pg_enc -m`` write the entries, fed through a 0600 input file (never argv)."""
    exe = pg_enc_exe()
    for name, password in passwords.items():
        if "\n" in password or "\r" in password or ":" in name:
            raise AgentError("user {!r}: pg_enc's input file cannot hold this name or password".format(name))
        if len(password.encode("utf-8")) > pgenc.MAX_AES_PASSWORD_BYTES:
            raise AgentError("password for {} is longer than {} bytes, which Pgpool cannot read back".format(
                name, pgenc.MAX_AES_PASSWORD_BYTES))
    tmpdir = tempfile.mkdtemp(prefix="dbtls-pgenc-")
    try:
        os.chmod(tmpdir, 0o700)
        path = os.path.join(tmpdir, "users")
        body = "".join("{}:{}\n".format(n, p) for n, p in sorted(passwords.items())).encode("utf-8")
        fsio.atomic_write(path, body, 0o600)
        argv = [exe, "-m", "-f", conf_path, "-k", key_file, "-i", path]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              timeout=60)
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        if proc.returncode != 0 or "invalid option" in output:
            lines = [ln for ln in output.splitlines() if ln.strip()]
            raise AgentError("pg_enc failed: {}".format(lines[-1] if lines else "exit {}".format(proc.returncode)))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
