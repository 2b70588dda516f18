"""The platform-call timeline: what the interpreter records, and the critical path it implies."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from jps_fakes import FakeRunner, interp, manifest

from dbtls.cli.sim_timeline import traced
from dbtls.jps import CmdResult, Node
from dbtls.jps.timeline import (
    Call,
    Recorder,
    critical_path,
    handler_of,
    is_platform_call,
    modelled_seconds,
    report,
    summarise,
)


class Clock:
    """A monotonic clock the fake nodes advance: each cmd on a node takes ``per_node`` seconds."""

    def __init__(self) -> None:
        self.now = 100.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


TINY = manifest(
    "  - cmd[sqldb]: echo layer\n    user: root\n"
    "  - setGlobals:\n      a: 1\n"
    "  - forEach(n:nodes.sqldb):\n"
    "    - cmd[${@n.id}]: echo one\n      user: root\n"
    "  - log: not a call\n"
    "  - helper\n",
    "actions:\n  helper:\n    - script: 'return {result: 0};'\n")


def _recorded(source: str = TINY) -> tuple[Recorder, bool]:
    clock = Clock()

    def reply(node: Node, text: str) -> CmdResult:
        clock.advance(1.0)
        return CmdResult(0, "ok\n")

    it = interp(FakeRunner(reply))
    it.recorder = Recorder(clock=clock)
    with it.recorder.operation("install"):
        _, result = it.install(source)
    return it.recorder, result.ok


def test_recorder_is_off_by_default() -> None:
    assert interp().recorder is None


def test_every_platform_call_is_recorded_with_its_targets_and_handler() -> None:
    rec, ok = _recorded()
    assert ok
    assert [(c.kind, c.handler, c.node_ids) for c in rec.calls] == [
        ("cmd", "onInstall", (11, 12, 13)),  # one call for the whole layer
        ("cmd", "onInstall", (11,)), ("cmd", "onInstall", (12,)), ("cmd", "onInstall", (13,)),
        ("script", "helper", ()),
    ]
    assert rec.calls[0].target == "sqldb" and rec.calls[1].target == "11"
    assert all(c.operation == "install" and c.addon == "t@-" for c in rec.calls)
    assert [c.duration for c in rec.calls] == [3.0, 1.0, 1.0, 1.0, 0.0]


def test_summary_counts_sequential_calls_and_attributes_time() -> None:
    rec, _ = _recorded()
    s = summarise(rec, "install")
    assert (s.calls, s.sequential, s.wall, s.call_time) == (5, 5, 6.0, 6.0)
    assert s.by_handler == [("onInstall", 4, 6.0), ("helper", 1, 0.0)]
    assert s.by_kind == [("cmd", 4, 6.0), ("script", 1, 0.0)]
    assert modelled_seconds(s, 1.0) == 11.0 and modelled_seconds(s, 0.5) == 8.5
    text = report(rec)
    assert "install" in text and "onInstall" in text


def test_nested_install_counts_its_request_and_its_children_once() -> None:
    rec, ok = _recorded(manifest("  - install:\n      type: update\n      id: kid\n      name: K\n"
                                 "      onInstall:\n        - cmd[sqldb]: echo\n          user: root\n"
                                 "  - cmd[pgpool]: echo after\n    user: root\n"))
    assert ok
    kinds = [(c.kind, c.depth, c.addon) for c in rec.calls]
    assert kinds == [("install", 0, "t@-"), ("cmd", 1, "kid@-"), ("cmd", 0, "t@-")]
    install = rec.calls[0]
    assert install.children == 1 and install.self_time == 0.0  # its time is the child's
    s = summarise(rec)
    assert (s.calls, s.sequential, s.call_time) == (3, 3, 4.0)


def test_critical_path_is_the_longest_chain_of_calls_one_after_another() -> None:
    def call(start: float, end: float) -> Call:
        return Call("cmd", "h", "p", "op", "", (), start, end)

    # two calls at once, then one after both: two sequential steps, not three
    assert critical_path([call(0, 2), call(1, 3), call(3, 4)]) == 2
    assert critical_path([call(0, 1), call(1, 2), call(2, 3)]) == 3
    assert critical_path([]) == 0


def test_which_actions_are_platform_calls_and_who_issued_them() -> None:
    assert is_platform_call("cmd") and is_platform_call("env.control.AddContainerEnvVars")
    assert not is_platform_call("setGlobals") and not is_platform_call("forEach")
    assert handler_of("actions.issue[2].forEach(n)[0]") == "issue"
    assert handler_of("onInstall[3]") == "onInstall"
    assert handler_of("onAfterServiceScaleOut[sqldb][1]") == "onAfterServiceScaleOut"


def test_traced_sets_a_recorder_for_the_work_and_reports_even_on_failure() -> None:
    session = SimpleNamespace(interp=interp(FakeRunner()))
    printed: list[str] = []

    def work(s: SimpleNamespace) -> bool:
        assert s.interp.recorder is not None
        _, result = s.interp.install(TINY)
        return result.ok

    assert traced("install", work, printed.append)(session) is True
    assert session.interp.recorder is None
    assert printed[0].startswith("platform calls (install):") and "\ninstall " in printed[0]

    def boom(s: SimpleNamespace) -> None:
        raise RuntimeError("node gone")

    with pytest.raises(RuntimeError):
        traced("uninstall", boom, printed.append)(session)
    assert session.interp.recorder is None and printed[1].startswith("platform calls (uninstall):")
