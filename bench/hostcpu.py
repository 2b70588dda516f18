"""Host CPU time spent while an operation runs, from ``/proc/stat`` (all processes, all cores).

Why: on a 2-core machine, an install that keeps both cores busy cannot get faster by doing more
nodes in parallel. Table 2 reports the busy CPU seconds next to the wall time, so a missed
T(8)/T(1) target can be told apart from serial work (low utilisation) and CPU starvation (high).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_TICK = os.sysconf("SC_CLK_TCK")


def cores() -> int:
    """CPUs this host has (the denominator of every utilisation figure)."""
    return os.cpu_count() or 1


def busy_seconds(stat_text: str) -> float:
    """Busy CPU seconds since boot from the ``cpu`` line of /proc/stat (everything but idle and iowait)."""
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(x) for x in fields[1:]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            # guest time is already counted in user/nice
            total = sum(ticks[:8])
            return (total - idle) / _TICK
    raise ValueError("no aggregate cpu line in /proc/stat")


def _read() -> float:
    with open("/proc/stat", encoding="ascii") as fh:
        return busy_seconds(fh.read())


class Meter:
    """Filled by :func:`measure`: ``seconds`` = busy CPU seconds of the whole host in the block."""

    seconds: float = 0.0


@contextmanager
def measure() -> Iterator[Meter]:
    meter = Meter()
    start = _read()
    try:
        yield meter
    finally:
        meter.seconds = _read() - start
