"""bench.hostcpu: busy CPU seconds come from the aggregate line of /proc/stat, idle and iowait excluded."""

import os

import pytest

from bench import hostcpu

TICK = os.sysconf("SC_CLK_TCK")


def test_busy_excludes_idle_and_iowait_and_guest():
    # user nice system idle iowait irq softirq steal guest guest_nice
    text = "cpu  100 5 50 1000 40 3 2 0 7 0\ncpu0 50 2 25 500 20 1 1 0 7 0\n"
    assert hostcpu.busy_seconds(text) == pytest.approx((100 + 5 + 50 + 3 + 2) / TICK)


def test_missing_aggregate_line_is_an_error():
    with pytest.raises(ValueError, match="no aggregate cpu line"):
        hostcpu.busy_seconds("cpu0 1 2 3 4\n")

