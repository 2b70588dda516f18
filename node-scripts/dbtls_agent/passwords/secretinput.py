"""One user's password for a command, never from argv: sealed blobs on stdin or a root-only file.

``--passwords-sealed``: blob lines from ``secrets seal`` on stdin, opened with this node's recipient
key (deleted afterwards), exactly as ``enable`` does; the password is the value for the user's name.

``--password-file PATH``: a file that only root can have written and read: a regular file (not a
symlink: opened with O_NOFOLLOW), owned by root, no permission bits for group or others, one link,
in a directory owned by root that nobody else can write to (or a sticky one such as /tmp, where
nobody else can remove or replace root's file). The password is its content without one trailing
newline. The file is deleted right after reading (the name is unlinked only while it still points
at the file that was read), so the password does not outlive the command.

Role names are checked strictly before anything is read (:func:`check_role_name`).
"""

import os
import re
import stat
from typing import Any

from dbtls_agent.errors import AgentError

MAX_PASSWORD_BYTES = 1024
_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}\Z")
RESERVED = ("postgres", "webadmin", "pgpool", "replication")


def check_role_name(name: str, reserved: bool = True) -> str:
    """The name when it is a plain role name (letters, digits, ``_``, ``.``, ``-``; 63 bytes at
    most; starting with a letter or ``_``); one-line AgentError otherwise. The cluster's own roles
    are refused: their passwords are set by the platform and stored in pgpool.conf/.pgpass."""
    if not _ROLE_NAME.match(name or ""):
        raise AgentError("invalid role name {!r}: use letters, digits, _ . - (start with a letter or _, at most "
                         "63 characters)".format((name or "")[:80]))
    if reserved and name in RESERVED:
        raise AgentError("{} is one of the cluster's own roles; its password is managed by the platform, "
                         "not by this command".format(name))
    return name


def _clean(data: bytes, where: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AgentError("the password in {} is not UTF-8 text".format(where)) from None
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    if not text:
        raise AgentError("the password in {} is empty".format(where))
    if "\n" in text or "\r" in text or "\x00" in text:
        raise AgentError("the password in {} spans several lines or holds a NUL; give exactly one line".format(where))
    return text


def _check_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(parent)
    except OSError as exc:
        raise AgentError("cannot read directory {}: {}".format(parent, exc.strerror)) from None
    others_write = st.st_mode & 0o022
    if st.st_uid != os.geteuid() or (others_write and not st.st_mode & stat.S_ISVTX):
        raise AgentError("--password-file must be in a directory only root can change (or a sticky one like /tmp); "
                         "{} is not".format(parent))


def read_password_file(path: str) -> str:
    """Read, check and delete the password file (see the module docstring)."""
    _check_parent(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise AgentError("cannot open --password-file {}: {}".format(path, exc.strerror)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AgentError("--password-file {} is not a regular file".format(path))
        if st.st_uid != os.geteuid():
            raise AgentError("--password-file {} must be owned by root (the user running the agent)".format(path))
        if st.st_mode & 0o077:
            raise AgentError("--password-file {} must not be readable or writable by group or others (chmod 600)".format(
                path))
        if st.st_nlink != 1:
            raise AgentError("--password-file {} has other hard links; use a file of its own".format(path))
        data = os.read(fd, MAX_PASSWORD_BYTES + 1)
    finally:
        os.close(fd)
    try:
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            os.unlink(path)
    except OSError:
        pass
    if len(data) > MAX_PASSWORD_BYTES:
        raise AgentError("--password-file {} is longer than {} bytes".format(path, MAX_PASSWORD_BYTES))
    return _clean(data, path)


def password_for(args: Any, user: str) -> str:
    """The password of ``user`` from ``--password-file`` or ``--passwords-sealed`` (exactly one)."""
    path = getattr(args, "password_file", None)
    sealed = bool(getattr(args, "passwords_sealed", False))
    if path and sealed:
        raise AgentError("--password-file and --passwords-sealed both give the password: pass one")
    if path:
        return read_password_file(path)
    if sealed:
        from dbtls_agent.passwords import exchange
        passwords = exchange.read_sealed_stdin(os.path.abspath(args.cert_dir))
        if user not in passwords:
            raise AgentError("the sealed passwords on stdin hold none for {}".format(user))
        return _clean(passwords[user].encode("utf-8"), "the sealed blob")
    raise AgentError("give {}'s password with --passwords-sealed (blobs from 'secrets seal' on stdin) or "
                     "--password-file FILE (root-owned, mode 0600; deleted after reading)".format(user))


def add_arguments(parser: Any) -> None:
    """The two password options (argparse)."""
    parser.add_argument("--passwords-sealed", action="store_true",
                        help="read blobs from 'secrets seal' on stdin; the password is the one for --user")
    parser.add_argument("--password-file", metavar="FILE",
                        help="root-owned 0600 file holding the password; deleted after reading")
