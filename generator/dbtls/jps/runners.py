"""Ready-made :class:`NodeRunner` implementations that honour the stdin contract.

``ShellRunner`` starts a process from a caller-supplied argv prefix (``docker exec -i -u <user>
<container>``, or nothing for the local machine) and feeds the script on stdin to a tiny bash
bootstrap. The bootstrap copies stdin to a private temp file first and then runs it with ``yes``
(or nothing) on stdin, so a command inside the script that reads stdin cannot swallow the rest of
the script, and the script text never appears in any process's argv.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from .model import CmdResult, Node

#: Fixed bootstrap: the only thing on the command line. ``$1`` selects the stdin of the script.
BOOTSTRAP = (
    'f=$(mktemp) || exit 125; trap \'rm -f "$f"\' EXIT; cat >"$f"; '
    'if [ "$1" = yes ]; then yes 2>/dev/null | bash "$f"; else bash "$f" </dev/null; fi'
)


class ShellRunner:
    """Run scripts through ``argv_for(node, user) + ["bash", "-c", BOOTSTRAP, ...]``."""

    def __init__(self, argv_for: Callable[[Node, str | None], list[str]], timeout: float = 900) -> None:
        self.argv_for = argv_for
        self.timeout = timeout

    def run(self, node: Node, script: str, user: str | None, *, say_yes: bool = True) -> CmdResult:
        argv = [*self.argv_for(node, user), "bash", "-c", BOOTSTRAP, "dbtls-cmd",
                "yes" if say_yes else "no"]
        proc = subprocess.run(argv, input=script, capture_output=True, text=True,
                              timeout=self.timeout, check=False)
        return CmdResult(proc.returncode, proc.stdout, proc.stderr)


def local_argv(node: Node, user: str | None) -> list[str]:
    """Run on this machine as the current user (tests); ``user`` is ignored on purpose."""
    return []


def docker_argv(container_for: Callable[[Node], str]) -> Callable[[Node, str | None], list[str]]:
    """argv prefix for ``docker exec -i`` (``-u`` only when the manifest names a user)."""

    def argv(node: Node, user: str | None) -> list[str]:
        return ["docker", "exec", "-i", *(["-u", user] if user else []), container_for(node)]

    return argv
