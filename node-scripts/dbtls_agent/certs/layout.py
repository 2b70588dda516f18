"""Where certificate material lives under the certificate directory, in one place.

The ``server/`` and ``client/`` layout is the upstream add-on's (users and configs already point
there). Two directories are ours: ``ca/`` holds the environment CA on the CA node only (its key
never leaves it), and ``.pending/`` holds freshly generated node keys until their certificates are
installed, so a re-issue never disturbs the files the running server uses.
"""

import getpass
import os
from typing import List, Optional, Tuple

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError

KEY_MODE = 0o600
CERT_MODE = 0o644
DIR_MODE = 0o700
# The top directory is only traversed (not listed) by the database user on its way to server/.
TOP_MODE = 0o711

# Service accounts that own the server/ and client/ files, in the order they are looked for.
SERVICE_USERS = ("postgres", "mysql")


class CertLayout:
    """Paths under one certificate directory (default /var/lib/jelastic/keys/SSL-TLS)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.ca_dir = os.path.join(self.root, "ca")
        self.ca_key = os.path.join(self.ca_dir, "ca.key")
        self.ca_cert = os.path.join(self.ca_dir, "ca.crt")
        # The root the last rotation retired, offered next to the new one while nodes move over.
        self.previous_ca_cert = os.path.join(self.ca_dir, "previous.crt")
        self.pending_dir = os.path.join(self.root, ".pending")

    def kind_dir(self, kind: str) -> str:
        return os.path.join(self.root, kind)

    def cert_path(self, kind: str) -> str:
        return os.path.join(self.root, kind, kind + ".crt")

    def key_path(self, kind: str) -> str:
        return os.path.join(self.root, kind, kind + ".key")

    def root_path(self, kind: str) -> str:
        return os.path.join(self.root, kind, "root.crt")

    def pending_key(self, kind: str) -> str:
        return os.path.join(self.pending_dir, kind + ".key")

    def old_ca_dirs(self) -> List[str]:
        """Previous CAs kept by ``ca init --rotate`` (``ca/old-<serial>/``), oldest name first."""
        try:
            names = sorted(n for n in os.listdir(self.ca_dir) if n.startswith("old-"))
        except OSError:
            return []
        return [os.path.join(self.ca_dir, n) for n in names]

    def prepare_private_dir(self, path: str) -> None:
        """Create the top dir (0711) and a root-only subdirectory (0700) such as ca/ or .pending/."""
        fsio.check_writable_dir(self.root)
        if not os.path.isdir(self.root):
            fsio.ensure_dir(self.root, TOP_MODE)
        fsio.ensure_dir(path, DIR_MODE)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.geteuid())


def service_owner(requested: Optional[str]) -> Tuple[str, Optional[fsio.Ids]]:
    """The account that must own server/ and client/ files, and its (uid, gid).

    PostgreSQL refuses a key not owned by its own user (or root with 0640), so the default is the
    database account when it exists; without one (tests, a bare node) the files stay ours.
    """
    if requested:
        return requested, fsio.resolve_owner(requested)
    for name in SERVICE_USERS:
        if fsio.user_exists(name):
            return name, fsio.resolve_owner(name)
    user = current_user()
    return user, None


def missing_error(layout: CertLayout) -> AgentError:
    return AgentError("no CA in {}: run 'ca init' on the CA node first".format(layout.ca_dir))
