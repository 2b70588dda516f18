"""What every role's enable/disable/status gets: options, passwords, state, journal, messages.

The journal names the steps of one run in the state directory. Every step is idempotent (editors
revert before applying, backups keep the first original), so an interrupted run is finished by
running the same command again; the journal only tells that run it is resuming, and gives tests a
place to kill the agent (``DBTLS_TEST_KILL_AFTER_STEP``) to prove it.
"""

import json
import os
import time
from typing import Any, Dict, Optional

from dbtls_agent import fsio, killpoint, state
from dbtls_agent.errors import AgentError


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

    def __init__(self, args: Any, command: str, passwords: Optional[Dict[str, str]] = None) -> None:
        self.args = args
        self.command = command
        self.cert_dir = os.path.abspath(args.cert_dir)
        self.passwords = passwords or {}
        self.messages = []  # type: List[str]
        self.journal = None  # type: Optional[Journal]

    def opt(self, name: str, default: Any = None) -> Any:
        return getattr(self.args, name, default)

    @property
    def stage(self) -> str:
        return self.opt("stage", "all") or "all"

    def changeset(self, role: str) -> state.ChangeSet:
        return state.ChangeSet(self.cert_dir, role)

    def start_journal(self, role: str) -> Journal:
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
