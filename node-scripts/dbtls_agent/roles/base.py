"""What every role's enable/disable/status gets: options, passwords, state, journal, messages.

The journal names the steps of one run in the state directory. Every step is idempotent (editors
revert before applying, backups keep the first original), so an interrupted run is finished by
running the same command again; the journal only tells that run it is resuming, and gives tests a
place to kill the agent (``DBTLS_TEST_KILL_AFTER_STEP``) to prove it.
"""

import json
import os
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional

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


def run(argv: List[str], timeout: float = 180, what: Optional[str] = None) -> str:
    """Run a non-secret command; AgentError with its last stderr line when it fails."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise AgentError("{} is not installed on this node".format(argv[0])) from None
    except subprocess.TimeoutExpired:
        raise AgentError("{} did not finish within {:.0f}s".format(what or argv[0], timeout)) from None
    if proc.returncode != 0:
        err = [ln for ln in (proc.stderr + proc.stdout).decode("utf-8", "replace").splitlines() if ln.strip()]
        raise AgentError("{} failed: {}".format(what or " ".join(argv), err[-1].strip() if err else
                                                 "exit code {}".format(proc.returncode)))
    return proc.stdout.decode("utf-8", "replace")


def have_jem() -> bool:
    return any(os.access(os.path.join(d, "jem"), os.X_OK)
               for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) + ["/usr/local/sbin", "/usr/sbin"])


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Call ``check`` until it returns something truthy or ``timeout`` passes; return the last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    return value


def log_tail(path: Optional[str], offset: int) -> str:
    """Text appended to a log since ``offset`` (empty when there is no such log)."""
    data = fsio.read_from(path, offset)
    return data.decode("utf-8", "replace") if data is not None else ""


def log_size(path: Optional[str]) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0
