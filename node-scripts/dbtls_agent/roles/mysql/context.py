"""The MySQL-family roles' own record in the state directory, and the fingerprint a handshake must show.

The options of a run come from :class:`dbtls_agent.roles.base.Context` (``Context.of`` also wraps a
plain ``argparse.Namespace``, as the tests and the role's own harness pass).
"""

import hashlib
import json
import os
from typing import Any

from dbtls_agent import fsio, state
from dbtls_agent.crypto.der import pem_blocks
from dbtls_agent.errors import AgentError


def pem_sha256(pem: bytes) -> str:
    """SHA-256 (lower-case hex) of the first certificate in ``pem``: what a handshake must show."""
    blocks = [der for label, der in pem_blocks(pem) if label == "CERTIFICATE"]
    if not blocks:
        raise AgentError("no certificate found in the PEM data")
    return hashlib.sha256(blocks[0]).hexdigest()


class RoleState(object):
    """Small JSON record of one role's values before enable (``<cert_dir>/.dbtls-state/<role>.role.json``)."""

    def __init__(self, cert_dir_path: str, role: str) -> None:
        self.path = state.layout(cert_dir_path).role_record(role)
        text = fsio.read_text(self.path)
        try:
            self.data = json.loads(text) if text else {}  # type: Dict[str, Any]
        except ValueError:
            raise AgentError("state file {} is corrupt; remove it to start over".format(self.path)) from None

    def remember(self, key: str, value: Any) -> None:
        """Record ``value`` once: the first enable's "before" must survive later runs."""
        if key not in self.data:
            self.data[key] = value
            self.save()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def pop(self, key: str) -> Any:
        value = self.data.pop(key, None)
        self.save()
        return value

    def save(self) -> None:
        fsio.ensure_dir(os.path.dirname(self.path), 0o700)
        fsio.atomic_write(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode(), 0o600)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self.data = {}
