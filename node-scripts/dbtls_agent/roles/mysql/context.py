"""What the MySQL-family roles read from the generic command context, and their own state file.

The generic ``enable``/``disable``/``status`` commands hand each role a context; these helpers read
the shared options from it with safe defaults, so the roles also run from a plain
``argparse.Namespace`` (tests, the role's own harness).
"""

import hashlib
import json
import os
import socket
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio, state
from dbtls_agent.crypto.der import pem_blocks
from dbtls_agent.errors import AgentError

DEFAULT_CERT_DIR = "/var/lib/jelastic/keys/SSL-TLS"
STAGES = ("offer", "use", "require")


def opt(ctx: Any, name: str, default: Any = None) -> Any:
    """``ctx.name``, or ``ctx.args.name``, or ``default``."""
    for holder in (ctx, getattr(ctx, "args", None)):
        if holder is not None and getattr(holder, name, None) is not None:
            return getattr(holder, name)
    return default


def cert_dir(ctx: Any) -> str:
    return os.path.abspath(opt(ctx, "cert_dir", DEFAULT_CERT_DIR))


def stages(ctx: Any) -> List[str]:
    """Stages to run: ``all`` (default) = offer, use, require, in that order."""
    stage = opt(ctx, "stage", "all") or "all"
    if stage == "all":
        return list(STAGES)
    if stage not in STAGES:
        raise AgentError("unknown stage {!r}; use one of offer, use, require, all".format(stage))
    return [stage]


def tls_versions(ctx: Any) -> Optional[List[str]]:
    """``--min-tls 1.3`` -> TLSv1.3 only; default (1.2) -> None: the server's TLSv1.2,TLSv1.3."""
    value = str(opt(ctx, "min_tls", "") or "").lower().replace("tlsv", "")
    if value in ("", "1.2"):
        return None
    if value == "1.3":
        return ["TLSv1.3"]
    raise AgentError("--min-tls must be 1.2 or 1.3, not {!r}".format(opt(ctx, "min_tls")))


def passwords(ctx: Any) -> Dict[str, str]:
    """Secrets the manifest sent on stdin (``--passwords-stdin``), already parsed by the CLI."""
    value = opt(ctx, "passwords", None)
    return dict(value) if isinstance(value, dict) else {}


def first_password(ctx: Any, *names: str) -> Optional[str]:
    found = passwords(ctx)
    for name in names:
        if found.get(name):
            return str(found[name])
    return None


def start_journal(ctx: Any, role: str) -> Any:
    """The run's step journal (a command ``Context``); None for a plain options object (tests)."""
    start = getattr(ctx, "start_journal", None)
    return start(role) if callable(start) else None


def step(ctx: Any, name: str) -> None:
    """Mark a step of the run as done: the journal records it and the test hook may kill here."""
    mark = getattr(ctx, "step", None)
    if callable(mark):
        mark(name)


def node_hostname(ctx: Any) -> str:
    """The name clients use for this node (its FQDN, which our server certificate carries)."""
    return str(opt(ctx, "hostname", None) or socket.getfqdn() or socket.gethostname())


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
