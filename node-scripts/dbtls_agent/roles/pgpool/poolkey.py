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
from typing import Any, Dict, List, Optional, Tuple

from dbtls_agent import fsio, safepath, state
from dbtls_agent.errors import AgentError
from dbtls_agent.roles.pgpool import poolpasswd
from dbtls_agent.roles.postgres import conf

SERVICE_USER = "postgres"
DEFAULT_CONF = "/etc/pgpool-II/pgpool.conf"


def key_path(user: str = SERVICE_USER) -> str:
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        raise AgentError("Pgpool service user {!r} does not exist".format(user)) from None
    return os.path.join(home, ".pgpoolkey")


#: Files of a Pgpool-II configuration directory that pool_passwd must never name.
OTHER_FILES = ("pgpool.conf", "pool_hba.conf", "pcp.conf", "pgpool_node_id", ".pgpoolkey")


def pool_passwd_name(value: Optional[str], conf_path: str) -> str:
    """The file name of pool_passwd in pgpool.conf's directory, from pgpool.conf's ``value``.

    Pgpool resolves a relative value against pgpool.conf's directory and takes an absolute one as
    is; pgpool.conf belongs to the Pgpool service account, which could name any file the agent
    then writes as root and gives to that account. So only a plain name in that directory (or an
    absolute path that is exactly such a name) is accepted; anything else is refused before
    anything changes. An unset or empty value means the default name (enable sets it).
    """
    conf_dir = os.path.dirname(os.path.abspath(conf_path))
    name = value or "pool_passwd"
    if os.path.isabs(name) and os.path.dirname(name) == conf_dir:
        name = os.path.basename(name)
    if "/" in name or name in (".", "..") or "\0" in name or name in OTHER_FILES + (os.path.basename(conf_path),):
        raise AgentError("pool_passwd = {!r} in {}: dbtls writes pool_passwd only as a file of its own directly in "
                         "{} (set pool_passwd = 'pool_passwd'); nothing was changed".format(value, conf_path, conf_dir))
    return name


def pool_passwd_path(conf_path: str, conf_text: str, user: str = SERVICE_USER) -> str:
    """The pool_passwd file pgpool.conf names (see :func:`pool_passwd_name`), after checking that
    its directory is one the agent may write the service account's file in (safepath)."""
    name = pool_passwd_name(conf.get(conf_text, "pool_passwd", conf_path), conf_path)
    conf_dir = os.path.dirname(os.path.abspath(conf_path))
    safepath.owned_directory(conf_dir, [_uid(user)], "the Pgpool-II configuration directory").close()
    return os.path.join(conf_dir, name)


def _uid(user: str) -> int:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise AgentError("Pgpool service user {!r} does not exist".format(user)) from None


def ensure_key(cs: state.ChangeSet, user: str = SERVICE_USER) -> Tuple[bytes, Optional[bytes], bool]:
    """(key in use, old weak key or None, created/replaced?) -- a strong key exists afterwards."""
    path = key_path(user)
    data = fsio.read_bytes(path)
    old = None
    if data is not None:
        key = poolpasswd.key_from_file_text(data)
        if not poolpasswd.is_weak_key(key):
            return key, None, False
        old = key
    new_key = poolpasswd.generate_pgpool_key()
    cs.write(path, (new_key + "\n").encode("ascii"), 0o600, fsio.resolve_owner(user))
    return new_key.encode("ascii"), old, True


def set_entries(text: str, passwords: Dict[str, str], key: bytes, old_key: Optional[bytes]) -> Tuple[str, List[str]]:
    """pool_passwd text with AES entries for ``passwords``; AES entries under ``old_key`` re-encrypted."""
    users = []
    if old_key is not None:
        for entry in poolpasswd.parse_pool_passwd(text):
            if entry.kind == poolpasswd.AES and entry.user not in passwords:
                try:
                    plain = poolpasswd.decrypt_password(entry.secret, old_key)
                except AgentError:
                    continue
                text = poolpasswd.set_entry(text, entry.user, poolpasswd.encrypt_password(plain, key))
                users.append(entry.user)
    for user in sorted(passwords):
        text = poolpasswd.set_entry(text, user, poolpasswd.encrypt_password(passwords[user], key))
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
    """Let the real ``pg_enc -m`` write the entries, fed through a 0600 input file (never argv).

    pg_enc runs as the Pgpool service account, not as root: it reads pgpool.conf (that account's
    file) to find pool_passwd and writes it in place, following whatever is there, so it gets no
    more rights than the account that could have planted something.
    """
    exe = pg_enc_exe()
    for name, password in passwords.items():
        if "\n" in password or "\r" in password or ":" in name:
            raise AgentError("user {!r}: pg_enc's input file cannot hold this name or password".format(name))
        if len(password.encode("utf-8")) > poolpasswd.MAX_AES_PASSWORD_BYTES:
            raise AgentError("password for {} is longer than {} bytes, which Pgpool cannot read back".format(
                name, poolpasswd.MAX_AES_PASSWORD_BYTES))
    owner = fsio.resolve_owner(user) if os.geteuid() == 0 else None
    tmpdir = tempfile.mkdtemp(prefix="dbtls-pgenc-")
    try:
        # Root's folder (only traversable by others), the account's input file: nothing in it that
        # the account could swap while root later removes the folder.
        fsio.ensure_dir(tmpdir, 0o711 if owner else 0o700)
        path = os.path.join(tmpdir, "users")
        body = "".join("{}:{}\n".format(n, p) for n, p in sorted(passwords.items())).encode("utf-8")
        fsio.atomic_write(path, body, 0o600, owner)
        argv = [exe, "-m", "-f", conf_path, "-k", key_file, "-i", path]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              timeout=60, preexec_fn=_demote(owner), cwd="/")
        output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        if proc.returncode != 0 or "invalid option" in output:
            lines = [ln for ln in output.splitlines() if ln.strip()]
            raise AgentError("pg_enc failed: {}".format(lines[-1] if lines else "exit {}".format(proc.returncode)))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _demote(owner: Optional[fsio.Ids]) -> Any:
    """A ``preexec_fn`` that makes the child process ``owner`` (no supplementary groups); None
    when the agent does not run as root (it then has no rights to give away)."""
    if owner is None:
        return None

    def demote() -> None:
        os.setgroups([])
        os.setgid(owner[1])
        os.setuid(owner[0])
    return demote
