"""``--timeline`` for ``dbtls sim install | press | uninstall``: record every platform call the
manifest makes and print the critical path and where the time went (docs/performance.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from dbtls.jps.timeline import Recorder, report

T = TypeVar("T")


def traced(label: str, work: Callable[[Any], T], emit: Callable[[str], None]) -> Callable[[Any], T]:
    """Wrap a ``Session -> result`` function: a recorder on the session's interpreter for the
    duration of ``work``, labelled ``label``; the report goes to ``emit`` even when ``work`` fails."""

    def run(session: Any) -> T:
        recorder = Recorder()
        session.interp.recorder = recorder
        try:
            with recorder.operation(label):
                return work(session)
        finally:
            session.interp.recorder = None
            emit(f"platform calls ({label}):\n{report(recorder)}")

    return run
