"""What every role's enable/disable/status gets: options, passwords, state, journal, messages.

The journal names the steps of one run in the state directory. Every step is idempotent (editors
revert before applying, backups keep the first original), so an interrupted run is finished by
running the same command again; the journal only tells that run it is resuming, and gives tests a
place to kill the agent (``DBTLS_TEST_KILL_AFTER_STEP``) to prove it.
"""

import json
import os
import socket
import time
from typing import Any, Dict, List, Optional

from dbtls_agent import fsio, killpoint, state, vocab
from dbtls_agent.errors import AgentError

STAGES = ("offer", "use", "require")


class Journal(object):
    """Steps of the current command for one role, persisted after each step."""

    def __init__(self, cert_dir: str, role: str, command: str) -> None:
        self.path = state.layout(cert_dir).journal(role)
        self.command = command
        previous = fsio.read_text(self.path)
        data = {}  # type: Dict[str, Any]
        if previous:
            try:
                data = json.loads(previous)
            except ValueError:
                data = {}
        self.resumed = bool(data) and not data.get("finished") and data.get("command") == command
        self.steps = []  # type: List[str]
        self._save(False)

    def _save(self, finished: bool) -> None:
        fsio.ensure_dir(os.path.dirname(self.path), 0o700)
        body = {"command": self.command, "steps": self.steps, "finished": finished, "time": int(time.time())}
        fsio.atomic_write(self.path, json.dumps(body, sort_keys=True).encode(), 0o600)

    def step(self, name: str) -> None:
        """Record ``name`` as done; the test hook may kill the agent right here."""
        self.steps.append(name)
        self._save(name == "done")
        killpoint.reached(name)


class Context(object):
    """Everything one role run needs; built by the command module from parsed arguments."""

    def __init__(self, args: Any, command: str, passwords: Optional[Dict[str, str]] = None,
                 journaled: bool = True) -> None:
        self.args = args
        self.command = command
        self.cert_dir = os.path.abspath(getattr(args, "cert_dir", None) or state.DEFAULT_CERT_DIR)
        self.passwords = passwords or {}
        self.messages = []  # type: List[str]
        self.journal = None  # type: Optional[Journal]
        self.journaled = journaled

    @classmethod
    def of(cls, ctx: Any) -> "Context":
        """``ctx`` itself, or a Context around a plain options object (tests, a role's own harness).

        Such a Context keeps no journal: nothing is written to the state directory for the run.
        """
        if isinstance(ctx, Context):
            return ctx
        passwords = getattr(ctx, "passwords", None)
        return cls(ctx, str(getattr(ctx, "command", "") or ""), dict(passwords) if isinstance(passwords, dict) else None,
                   journaled=False)

    def opt(self, name: str, default: Any = None) -> Any:
        return getattr(self.args, name, default)

    def get(self, name: str, default: Any = None) -> Any:
        """The option ``name``; ``default`` also when it is given as None."""
        value = getattr(self.args, name, None)
        return default if value is None else value

    @property
    def stage(self) -> str:
        return self.opt("stage", "all") or "all"

    @property
    def stages(self) -> List[str]:
        """Stages to run: ``all`` (default) = offer, use, require, in that order."""
        stage = self.get("stage", "all") or "all"
        if stage == "all":
            return list(STAGES)
        if stage not in STAGES:
            raise AgentError("unknown stage {!r}; use one of offer, use, require, all".format(stage))
        return [stage]

    def tls_versions(self) -> Optional[List[str]]:
        """``--min-tls 1.3`` -> TLSv1.3 only; default (1.2) -> None: the server's TLSv1.2,TLSv1.3."""
        return vocab.tls_versions(self.get("min_tls"))

    def first_password(self, *names: str) -> Optional[str]:
        """The first of ``names`` the manifest sent a password for (``--passwords-stdin``/sealed)."""
        for name in names:
            if self.passwords.get(name):
                return str(self.passwords[name])
        return None

    def node_hostname(self) -> str:
        """The name clients use for this node (its FQDN, which our server certificate carries)."""
        return str(self.get("hostname") or socket.getfqdn() or socket.gethostname())

    def changeset(self, role: str) -> state.ChangeSet:
        return state.ChangeSet(self.cert_dir, role)

    def start_journal(self, role: str) -> Optional[Journal]:
        if not self.journaled:
            return None
        self.journal = Journal(self.cert_dir, role, self.command)
        return self.journal

    def step(self, name: str) -> None:
        if self.journal is not None:
            self.journal.step(name)

    def say(self, message: str) -> None:
        self.messages.append(message)

    def server_cert(self) -> str:
        return os.path.join(self.cert_dir, "server", "server.crt")

    def server_key(self) -> str:
        return os.path.join(self.cert_dir, "server", "server.key")

    def server_root(self) -> str:
        return os.path.join(self.cert_dir, "server", "root.crt")

    def require_certs(self) -> None:
        """Fail before touching any config when the certificate files are not installed."""
        for path in (self.server_cert(), self.server_key(), self.server_root()):
            if not os.path.isfile(path):
                raise AgentError("{} is missing: install the certificates first (install-certs)".format(path))
