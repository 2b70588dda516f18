"""The test hook that kills the agent with SIGKILL right after a named step; off in production.

Tests set ``DBTLS_TEST_KILL_AFTER_STEP`` to a step name (a role journal step such as
``write-files``, or a certificate step such as ``install-certs:server:key``) and then prove that
running the same command again finishes the job. Nothing happens unless the variable names the step.
"""

import os
import signal
import sys

KILL_HOOK_ENV = "DBTLS_TEST_KILL_AFTER_STEP"


def reached(name: str) -> None:
    """Mark step ``name`` as done; die here, like a power cut, when the test hook names it."""
    if os.environ.get(KILL_HOOK_ENV) == name:
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
