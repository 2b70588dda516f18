"""Ready-made :class:`NodeRunner` implementations that honour the stdin contract.

The engine runs ``echo B64 | base64 -d | su USER`` on a node (actions.md, ``cmd``). ``ShellRunner``
runs the same pipeline with one difference: the base64 text reaches the node on STDIN
(``docker exec -i CONTAINER bash -c 'base64 -d | su USER'``), so the script never appears in any
process's argv. ``su`` then starts the user's login shell (bash on the platform's nodes and ours),
which reads the decoded ``yes | ( ... )`` line from its stdin, exactly as on the platform.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

from dbtls.jps.cmdwrap import encode, wrap
from dbtls.jps.model import CmdResult, Node, NodeRunner

_USER_RE = re.compile(r"[a-z_][a-z0-9_-]*\$?", re.I)


def switch_user(user: str) -> str:
    """The node-side shell line: decode stdin and hand it to ``su USER``."""
    if not _USER_RE.fullmatch(user):
        raise ValueError(f"not a user name: {user!r}")
    return f"base64 -d | su {user}"


def same_user(user: str) -> str:
    """For local tests only: decode stdin and run it with this machine's bash as the caller."""
    return "base64 -d | bash"


class ShellRunner:
    """Run engine payloads through ``argv_for(node) + ["bash", "-c", login(user)]``."""

    def __init__(self, argv_for: Callable[[Node], list[str]], timeout: float = 900,
                 login: Callable[[str], str] = switch_user) -> None:
        self.argv_for = argv_for
        self.timeout = timeout
        self.login = login

    def run(self, node: Node, command_b64: str, user: str) -> CmdResult:
        argv = [*self.argv_for(node), "bash", "-c", self.login(user)]
        proc = subprocess.run(argv, input=command_b64 + "\n", capture_output=True, text=True,
                              timeout=self.timeout, check=False)
        return CmdResult(proc.returncode, proc.stdout, proc.stderr)


def run_script(runner: NodeRunner, node: Node, script: str, user: str = "root", *,
               say_yes: bool = False) -> CmdResult:
    """Run a script the way a ``cmd`` would (the simulator's own reads, e.g. the status table)."""
    return runner.run(node, encode(wrap(script.strip(), say_yes)), user)


def local_argv(node: Node) -> list[str]:
    """Run on this machine (tests)."""
    return []


def docker_argv(container_for: Callable[[Node], str]) -> Callable[[Node], list[str]]:
    """argv prefix for ``docker exec -i CONTAINER`` (as the container's root: ``su`` needs it)."""

    def argv(node: Node) -> list[str]:
        return ["docker", "exec", "-i", "-u", "root", container_for(node)]

    return argv
