"""The node's operating system as the roles meet it: commands, the service, logs, waiting.

Every role runs programs (``psql``, ``mariadb``, ``pgpool --version``, ``systemctl``), controls its
server through the platform's ``jem service`` and reads what the server logged since a point. These
are the helpers for that; the decisions stay in the roles. One runner, :func:`run_status` (the
caller reads the exit code), and one :func:`service` (an AgentError with the last line when the
action fails).
"""

import os
import subprocess
import time
from typing import Any, Callable, Optional, Sequence, Tuple

from dbtls_agent import fsio
from dbtls_agent.errors import AgentError

SERVICE_TIMEOUT_S = 300.0


def _jem() -> Optional[str]:
    """The platform's ``jem`` (the simulated nodes have the same shim), or None."""
    dirs = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) + ["/usr/local/sbin", "/usr/sbin"]
    return next((os.path.join(d, "jem") for d in dirs if os.access(os.path.join(d, "jem"), os.X_OK)), None)


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


def service(action: str, timeout: float = SERVICE_TIMEOUT_S, units: Sequence[str] = ()) -> str:
    """``jem service ACTION``, the platform's control of the node's server; its output. Without
    ``jem``, ``systemctl ACTION`` on the first of ``units`` that accepts it. AgentError with the
    command's last line when it fails."""
    jem = _jem()
    if jem is not None:
        commands = [[jem, "service", action]]
    elif units:
        commands = [["systemctl", action, unit] for unit in units]
    else:
        raise AgentError("jem is not available on this node to {} the service".format(action))
    failed = ""
    for argv in commands:
        code, out, err = run_status(argv, timeout=timeout)
        if code == 0:
            return out + err
        lines = [ln.strip() for ln in (err + out).splitlines() if ln.strip()]
        failed = "{} failed: {}".format(" ".join(["jem"] + argv[1:] if argv[0] == jem else argv),
                                        lines[-1] if lines else "exit code {}".format(code))
    raise AgentError(failed)
