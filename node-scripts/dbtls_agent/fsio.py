"""Crash-safe file writes and ownership helpers shared by every agent module.

A database server that reads a half-written key or config file refuses to start, so every write goes
to a temporary file in the target directory, is fsynced, then renamed over the target (atomic on
POSIX), and the directory is fsynced so the rename itself survives a power cut. Ownership and mode
are set on the temporary file *before* the rename: the final path never exists with a looser mode.
"""

import errno
import grp
import os
import pwd
import shutil
import tempfile
from typing import Any, Optional, Tuple

from dbtls_agent.errors import AgentError

Ids = Tuple[int, int]


def resolve_owner(user: Optional[str], group: Optional[str] = None) -> Optional[Ids]:
    """Map a user (and optional group) name to (uid, gid); None when no user was asked for.

    Without an explicit group the user's primary group is used, which is what database packages
    create (postgres:postgres, mysql:mysql).
    """
    if not user:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise AgentError("user {!r} does not exist on this node".format(user)) from None
    gid = entry.pw_gid
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise AgentError("group {!r} does not exist on this node".format(group)) from None
    return entry.pw_uid, gid


def user_exists(user: str) -> bool:
    """True when ``user`` is a known account (used to autodetect the database service user)."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def ensure_dir(path: str, mode: int = 0o700, owner: Optional[Ids] = None) -> None:
    """Create ``path`` (and parents) if missing, then enforce ``mode`` and ``owner`` on it.

    The mode is enforced on existing directories too: a key directory someone made 0755 by hand
    would otherwise leak file names and let other users traverse to the keys.
    """
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)
        if owner is not None:
            os.chown(path, owner[0], owner[1])
    except OSError as exc:
        raise AgentError("cannot prepare directory {}: {}".format(path, _describe(exc))) from None


def atomic_write(path: str, data: bytes, mode: int = 0o600, owner: Optional[Ids] = None) -> None:
    """Replace ``path`` with ``data`` so readers see either the old or the new content, never a mix.

    ``owner`` is a (uid, gid) pair from :func:`resolve_owner`. The parent directory must exist; it
    is not created here because its mode and owner are the caller's decision.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise AgentError("cannot write {}: {}".format(path, _describe(exc))) from None
    try:
        try:
            os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        _fsync_dir(directory)
    except OSError as exc:
        _remove_quietly(tmp)
        raise AgentError("cannot write {}: {}".format(path, _describe(exc))) from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_rename(src: str, dst: str) -> None:
    """Rename within one directory tree and make the rename durable (fsync of both parents)."""
    try:
        os.rename(src, dst)
        _fsync_dir(os.path.dirname(os.path.abspath(dst)))
        src_dir = os.path.dirname(os.path.abspath(src))
        if src_dir != os.path.dirname(os.path.abspath(dst)):
            _fsync_dir(src_dir)
    except OSError as exc:
        raise AgentError("cannot rename {} to {}: {}".format(src, dst, _describe(exc))) from None


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def read_bytes(path: str) -> Optional[bytes]:
    """Return the file's content, or None when it does not exist (any other error is reported)."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise AgentError("cannot read {}: {}".format(path, _describe(exc))) from None


def read_text(path: str) -> Optional[str]:
    """Like :func:`read_bytes` but decoded as UTF-8 (undecodable bytes replaced, never fatal)."""
    data = read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


def check_writable_dir(path: str) -> None:
    """Fail early, before anything is generated, when ``path`` cannot be created or written.

    Checking first keeps a failed run from leaving a freshly generated key whose certificate can
    never be written next to it.
    """
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise AgentError("{} is not a directory (needed for {})".format(probe, path))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise AgentError("directory {} is not writable (needed for {})".format(probe, path))


class PrivateDir(object):
    """A 0700 temporary directory whose files are created 0600 and which is removed on exit.

    Secrets and keys handed to the ``openssl`` command go through files here, never through argv,
    which any user on the node can read in /proc.
    """

    def __init__(self, prefix: str = "dbtls-") -> None:
        self.prefix = prefix
        self.path = ""

    def __enter__(self) -> "PrivateDir":
        self.path = tempfile.mkdtemp(prefix=self.prefix)  # mkdtemp creates it 0700
        return self

    def file(self, name: str, data: bytes = b"") -> str:
        """Create ``name`` (0600, must not exist yet) holding ``data``; return its path."""
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def process_stderr_file(pid_text: str) -> Optional[str]:
    """The regular file a running process writes its stderr to (its log), from a pid file's text.

    Servers started with ``pg_ctl -l`` or ``nohup ... >log`` log there; None when the pid is not a
    running process or its stderr is not a file.
    """
    pid = pid_text.split("\n", 1)[0].strip()
    if not pid.isdigit():
        return None
    try:
        target = os.readlink("/proc/{}/fd/2".format(pid))
    except OSError:
        return None
    return target if os.path.isfile(target) else None
