"""A tiny manifest through the real node runner on a simulated node: the cmd wrapper as the engine
builds it (``yes | ( ... )``, base64, ``su root``), and the ways it breaks a script on the platform."""

from __future__ import annotations

import pytest

from dbtls.jps import Interpreter
from dbtls.sim import platform

MANIFEST = """
type: update
id: wrapper
name: Wrapper
onInstall:
  - log: installed
actions:
  who:
    - cmd[${nodes.sqldb.master.id}]: |
        id -un
        getent passwd root | cut -d: -f7
        read -r answer; echo "stdin=$answer"
        for p in $$ $PPID; do tr '\\0' ' ' </proc/$p/cmdline; echo; done
      user: root
    - return: {type: success, message: "${response.out}"}
  badSubstitution:
    - cmd[${nodes.sqldb.master.id}]: |
        echo before
        echo ${nodes.sqldb.master.hostname}
        echo after
      user: root
  heredocLast:
    - cmd[${nodes.sqldb.master.id}]: |
        cat <<EOF
        hello
        EOF
      user: root
  commentLast:
    - cmd[${nodes.sqldb.master.id}]: |
        echo hello
        # the closing parenthesis lands on this line
      user: root
  heredocInside:
    - cmd[${nodes.sqldb.master.id}]: |
        cat <<EOF
        hello
        EOF
        true
      user: root
    - return: {type: success, message: "${response.out}"}
"""


@pytest.fixture(scope="module")
def wrapper(engine, pg_single):
    interp = Interpreter(platform.environment(engine, pg_single.name), platform.runner(pg_single.name))
    addon, result = interp.install(MANIFEST, node_group="sqldb")
    assert result.ok, result.error
    return interp, addon


def test_su_root_runs_the_decoded_script_in_bash_with_yes_on_stdin(wrapper):
    interp, addon = wrapper
    result = interp.call(addon, "who")
    assert result.ok, result.error
    lines = (result.message or "").splitlines()
    assert lines[:3] == ["root", "/bin/bash", "stdin=y"]
    # the script reached the node on stdin: no process in the chain carries it in argv
    assert len(lines) == 5 and all("getent" not in ln and "id -un" not in ln for ln in lines[3:]), lines


def test_an_unresolved_placeholder_aborts_the_whole_group(wrapper):
    interp, addon = wrapper
    result = interp.call(addon, "badSubstitution")
    assert not result.ok
    step = result.cmd_steps()[0]
    assert step.unresolved == ("${nodes.sqldb.master.hostname}",)
    assert step.out == "before\n" and "bad substitution" in step.err


def test_a_heredoc_terminator_or_a_comment_on_the_last_line_breaks_the_script(wrapper):
    interp, addon = wrapper
    for action in ("heredocLast", "commentLast"):
        result = interp.call(addon, action)
        assert not result.ok, action
        assert "syntax error" in result.cmd_steps()[0].err, result.cmd_steps()[0].err
    fine = interp.call(addon, "heredocInside")
    assert fine.ok and fine.message == "hello\n"
