"""Reach a file without following anything a service account could have planted on the way.

The agent runs as root next to service accounts (``postgres``, ``mysql``, ``proxysql``) that own some
of the directories it works in: /etc/pgpool-II, the PostgreSQL data directory, the ``server/`` and
``client/`` certificate folders. The owner of a directory can replace any entry in it between two
system calls: a file by a symbolic link to /etc/shadow, a folder by a link to /etc/cron.d. A root
process that opens, chmods or chowns such a path by name acts on whatever the account chose.

So every path is walked one component at a time from ``/``, each directory held open and the next
component opened relative to it (``dir_fd``) with ``O_NOFOLLOW``: what is checked is what is used.
A directory is *protected* when it belongs to root (or to the agent's own user, for tests run
without root) and nobody else may rename its entries: no group or other write bit, or the sticky bit
(as /tmp). A symbolic link is followed only when it sits in a protected directory and belongs to
root: nobody else could have made it (the kernel's ``protected_symlinks`` rule, applied to every
directory), so the platform's own links (/var/run -> /run, /etc/alternatives) keep working. In an
unprotected directory a link is refused, and the file opened there must be a regular file with one
link (a hard link to a root file planted there would otherwise pass). Files are opened
``O_NONBLOCK``, so a FIFO planted in place of a file cannot hang the agent.
"""

import errno
import os
import pwd
import stat
from typing import Any, Iterable, Optional

from dbtls_agent.errors import AgentError

MAX_LINKS = 32
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def trusted_uids() -> frozenset:
    """Root, and the agent's own user (tests run it unprivileged in their own directories)."""
    return frozenset((0, os.geteuid()))


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "uid {}".format(uid)


def protected(st: os.stat_result) -> bool:
    """Only root (or we) can add, rename or remove entries in this directory."""
    if st.st_uid not in trusted_uids():
        return False
    return not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or bool(st.st_mode & stat.S_ISVTX)


def writer(st: os.stat_result) -> str:
    """Who besides root can change entries of an unprotected directory (for error messages)."""
    if st.st_uid not in trusted_uids():
        return user_name(st.st_uid)
    return "group or other users"


class Dir(object):
    """An open directory: its descriptor, the path it was reached by, and its fstat."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self.st = os.fstat(fd)

    @property
    def protected(self) -> bool:
        return protected(self.st)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Dir":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _refuse_link(path: str, directory: Dir) -> AgentError:
    return AgentError("refusing to follow {}: it is a symbolic link in {}, which {} can change; dbtls does not "
                      "follow links there (put the real file or folder in its place)".format(
                          path, directory.path, writer(directory.st)))


def _components(path: str) -> list:
    return [c for c in os.path.abspath(path).split("/") if c and c != "."]


def _lstat_at(directory: Dir, name: str) -> Optional[os.stat_result]:
    try:
        return os.stat(name, dir_fd=directory.fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _link_target(directory: Dir, name: str, st: os.stat_result, budget: list) -> str:
    """Where a link points, when it may be followed (see the module docstring); else AgentError."""
    path = os.path.join(directory.path, name)
    if not directory.protected or st.st_uid not in trusted_uids():
        raise _refuse_link(path, directory)
    budget[0] -= 1
    if budget[0] < 0:
        raise AgentError("too many levels of symbolic links in {}".format(path))
    target = os.readlink(name, dir_fd=directory.fd)
    return target if target.startswith("/") else os.path.join(directory.path, target)


def open_dir(path: str, create_mode: Optional[int] = None, budget: Optional[list] = None,
             passed: Optional[list] = None) -> Dir:
    """Open directory ``path`` by the walk described above; missing components are created with
    ``create_mode`` (subject to the umask) when it is given, else ENOENT is raised as OSError.
    ``passed`` collects every directory walked through before the last one, as (path, stat)."""
    budget = budget if budget is not None else [MAX_LINKS]
    current = Dir(os.open("/", _DIR_FLAGS), "/")
    pending = _components(path)
    try:
        while pending:
            name = pending.pop(0)
            if name == "..":
                parent = os.path.dirname(current.path.rstrip("/")) or "/"
                nxt = Dir(os.open("..", _DIR_FLAGS, dir_fd=current.fd), parent)
                current.close()
                current = nxt
                continue
            st = _lstat_at(current, name)
            if st is None and create_mode is not None:
                try:
                    os.mkdir(name, create_mode, dir_fd=current.fd)
                except FileExistsError:
                    pass
                st = _lstat_at(current, name)
            if st is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), os.path.join(current.path, name))
            if stat.S_ISLNK(st.st_mode):
                target = _link_target(current, name, st, budget)
                pending = _components(target) + pending
                current.close()
                current = Dir(os.open("/", _DIR_FLAGS), "/")
                continue
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=current.fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # replaced by a link since the lstat
                    raise _refuse_link(os.path.join(current.path, name), current) from None
                raise
            nxt = Dir(fd, os.path.join(current.path, name))
            if passed is not None:
                passed.append((current.path, current.st))
            current.close()
            current = nxt
        return current
    except BaseException:
        current.close()
        raise


class Leaf(object):
    """The directory holding a path's last component, and that component's name.

    The last component itself is not resolved: a write replaces it (a link included) by rename.
    """

    def __init__(self, path: str, create_mode: Optional[int] = None) -> None:
        path = os.path.abspath(path)
        self.path = path
        self.name = os.path.basename(path)
        if not self.name or self.name in (".", ".."):
            raise AgentError("{} does not name a file".format(path))
        self.dir = open_dir(os.path.dirname(path), create_mode)

    def close(self) -> None:
        self.dir.close()

    def __enter__(self) -> "Leaf":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_file(path: str, budget: Optional[list] = None) -> Optional[int]:
    """A read-only descriptor of the regular file at ``path``; None when it does not exist.

    A link as last component is followed under the same rule as on the way (recursively).
    """
    budget = budget if budget is not None else [MAX_LINKS]
    try:
        leaf = Leaf(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with leaf:
        st = _lstat_at(leaf.dir, leaf.name)
        if st is None:
            return None
        if stat.S_ISLNK(st.st_mode):
            return open_file(_link_target(leaf.dir, leaf.name, st, budget), budget)
        try:
            fd = os.open(leaf.name, _FILE_FLAGS, dir_fd=leaf.dir.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse_link(path, leaf.dir) from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise
        try:
            check_file(fd, path, leaf.dir)
        except BaseException:
            os.close(fd)
            raise
        return fd


def check_file(fd: int, path: str, directory: Dir) -> os.stat_result:
    """The file behind ``fd`` must be regular; in an unprotected directory also have one link."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise AgentError("refusing {}: it is not a regular file".format(path))
    if not directory.protected and st.st_nlink > 1:
        raise AgentError("refusing {}: it has {} hard links and sits in {}, which {} can change".format(
            path, st.st_nlink, directory.path, writer(directory.st)))
    return st


def owned_directory(path: str, owners: Iterable[int], what: str) -> Dir:
    """Open directory ``path`` (an AgentError when it is missing) and demand the chain the agent
    may write a service account's file in: every directory on the way protected, and ``path``
    itself owned by root or one of ``owners`` (uids)."""
    passed = []  # type: list
    try:
        directory = open_dir(path, passed=passed)
    except OSError as exc:
        raise AgentError("cannot open {} {}: {}".format(what, path, exc.strerror or exc)) from None
    for parent, st in passed:
        if not protected(st):
            directory.close()
            raise AgentError("{} {} lies below {}, which {} can change; dbtls does not write there".format(
                what, path, parent, writer(st)))
    if directory.st.st_uid not in trusted_uids() and directory.st.st_uid not in set(owners):
        owner = user_name(directory.st.st_uid)
        directory.close()
        raise AgentError("{} {} belongs to {}, not to root or the service account; dbtls does not write "
                         "there".format(what, path, owner))
    return directory
