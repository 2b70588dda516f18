"""Crash-safe file writes and ownership helpers shared by every agent module.

A database server that reads a half-written key or config file refuses to start, so every write goes
to a temporary file in the target directory, is fsynced, then renamed over the target (atomic on
POSIX), and the directory is fsynced so the rename itself survives a power cut. Ownership and mode
are set on the temporary file *before* the rename: the final path never exists with a looser mode.
"""

import binascii
import errno
import grp
import os
import pwd
import shutil
import stat
import tempfile
from typing import Any, Optional, Tuple

from dbtls_agent import safepath
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


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def ensure_dir(path: str, mode: int = 0o700, owner: Optional[Ids] = None) -> None:
    """Create ``path`` (and parents) if missing, then enforce ``mode`` and ``owner`` on it.

    The mode is enforced on existing directories too: a key directory someone made 0755 by hand
    would otherwise leak file names and let other users traverse to the keys. The walk never
    follows a link a service account could have planted (safepath), and mode and owner are set on
    the opened directory, never by name.
    """
    try:
        with safepath.open_dir(path, create_mode=0o777) as directory:
            os.fchmod(directory.fd, mode)
            if owner is not None:
                os.fchown(directory.fd, owner[0], owner[1])
    except OSError as exc:
        raise AgentError("cannot prepare directory {}: {}".format(path, _describe(exc))) from None


def atomic_write(path: str, data: bytes, mode: int = 0o600, owner: Optional[Ids] = None) -> None:
    """Replace ``path`` with ``data`` so readers see either the old or the new content, never a mix.

    ``owner`` is a (uid, gid) pair from :func:`resolve_owner`. The parent directory must exist; it
    is not created here because its mode and owner are the caller's decision. The temporary file is
    created ``O_EXCL|O_NOFOLLOW`` in the directory reached by safepath's walk, owner and mode are
    set on its descriptor, and it is renamed within that directory: a link at ``path`` is replaced,
    never written through.
    """
    try:
        leaf = safepath.Leaf(path)
    except OSError as exc:
        raise AgentError("cannot write {}: {}".format(path, _describe(exc))) from None
    with leaf:
        tmp = ".{}.{}.tmp".format(leaf.name, binascii.hexlify(os.urandom(6)).decode())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=leaf.dir.fd)
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
            os.rename(tmp, leaf.name, src_dir_fd=leaf.dir.fd, dst_dir_fd=leaf.dir.fd)
            os.fsync(leaf.dir.fd)
        except OSError as exc:
            _unlink_at(leaf.dir.fd, tmp)
            raise AgentError("cannot write {}: {}".format(path, _describe(exc))) from None
        except BaseException:
            _unlink_at(leaf.dir.fd, tmp)
            raise


def _unlink_at(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def remove(path: str) -> bool:
    """Delete the file (or link) ``path`` itself; False when it was not there."""
    try:
        with safepath.Leaf(path) as leaf:
            os.unlink(leaf.name, dir_fd=leaf.dir.fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise AgentError("cannot remove {}: {}".format(path, _describe(exc))) from None
    return True


def remove_tree(path: str) -> bool:
    """``rm -r path`` through descriptors: nothing below is reached by name, no link is followed.

    server/ and client/ belong to service accounts, which could swap a sub-folder for a link while
    a name-based walk runs (shutil.rmtree walks by name on Python 3.6). False when absent.
    """
    try:
        with safepath.Leaf(path) as leaf:
            _remove_at(leaf.dir.fd, leaf.name)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and not os.path.lexists(path):
            return False
        raise AgentError("cannot remove {}: {}".format(path, _describe(exc))) from None
    return True


def _remove_at(dir_fd: int, name: str) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            for entry in os.listdir(fd):
                _remove_at(fd, entry)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _open_existing(path: str) -> Optional[int]:
    try:
        return safepath.open_file(path)
    except OSError as exc:
        raise AgentError("cannot read {}: {}".format(path, _describe(exc))) from None


def read_bytes(path: str) -> Optional[bytes]:
    """Return the file's content, or None when it does not exist (any other error is reported).

    Reached by safepath's walk: a link or a FIFO a service account put in place of the file is
    refused with an AgentError, never followed or waited on.
    """
    return read_with_stat(path)[0]


def read_with_stat(path: str) -> Tuple[Optional[bytes], Optional[os.stat_result]]:
    """(content, fstat) of one opening of ``path`` as :func:`read_bytes` does; (None, None) if missing."""
    fd = _open_existing(path)
    if fd is None:
        return None, None
    chunks = []
    try:
        st = os.fstat(fd)
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        raise AgentError("cannot read {}: {}".format(path, _describe(exc))) from None
    finally:
        os.close(fd)
    return b"".join(chunks), st


def read_text(path: str) -> Optional[str]:
    """Like :func:`read_bytes` but decoded as UTF-8 (undecodable bytes replaced, never fatal)."""
    data = read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


def read_from(path: Optional[str], offset: int, limit: int = 1 << 20) -> Optional[bytes]:
    """Up to ``limit`` bytes of a log from ``offset`` on (from 0 when the file is shorter: it was
    rotated); None when it cannot be read. Logs sit in service accounts' folders, so the file is
    reached as :func:`read_bytes` does: a planted link or FIFO reads as nothing."""
    if not path:
        return None
    try:
        fd = safepath.open_file(path)
    except (OSError, AgentError):
        return None
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, offset if size >= offset else 0, os.SEEK_SET)
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def chmod(path: str, mode: int) -> None:
    """``chmod`` through a descriptor of the file itself (never through a planted link)."""
    fd = _open_existing(path)
    if fd is None:
        raise AgentError("cannot change the mode of {}: it does not exist".format(path))
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        raise AgentError("cannot change the mode of {}: {}".format(path, _describe(exc))) from None
    finally:
        os.close(fd)


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
