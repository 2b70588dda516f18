"""The node's operating system as the roles meet it: commands, the service, logs, waiting.

Every role runs programs (``psql``, ``mariadb``, ``pgpool --version``, ``systemctl``), controls its
server through the platform's ``jem service`` and reads what the server logged since a point. These
are the helpers for that; the decisions stay in the roles. Two call shapes of a command exist on
purpose: :func:`run` for steps that must succeed (an AgentError with the program's last line) and
:func:`run_status` for callers that read the exit code themselves (the MySQL client, unit checks).
"""

import os
import shutil
import subprocess
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError

SERVICE_TIMEOUT_S = 240.0


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


def file_size(path: Optional[str]) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def run_status(argv: Sequence[str], timeout: float = 60.0, stdin: Optional[str] = None) -> Tuple[int, str, str]:
    """Run a command; (exit code, stdout, stderr). A missing program is exit code 127."""
    try:
        proc = subprocess.run(list(argv), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout)
    except OSError as exc:
        return 127, "", "{}: {}".format(argv[0], exc.strerror or exc)
    except subprocess.TimeoutExpired:
        return 124, "", "{} did not finish within {:.0f}s".format(argv[0], timeout)
    return proc.returncode, proc.stdout, proc.stderr


def service(action: str) -> None:
    """``jem service <action>`` on the platform (the simulated nodes have the same shim)."""
    if not have_jem():
        raise AgentError("jem is not available on this node to {} the service".format(action))
    run(["jem", "service", action], timeout=300, what="jem service {}".format(action))


def service_status(action: str, timeout: float = SERVICE_TIMEOUT_S) -> Tuple[bool, str]:
    """``jem service ACTION`` (the platform's service control); (ok, output)."""
    jem = shutil.which("jem") or "/usr/local/sbin/jem"
    if not os.path.exists(jem):
        for argv in (["systemctl", action, "mariadb"], ["systemctl", action, "mysql"]):
            code, out, err = run_status(argv, timeout=timeout)
            if code == 0:
                return True, out + err
        return False, "no 'jem' and no systemd unit to {} the database service".format(action)
    code, out, err = run_status([jem, "service", action], timeout=timeout)
    return code == 0, out + err
