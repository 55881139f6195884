"""benchmarks/benchmark_gpu.py's idle-time analysis of profiled GPU activities (the measurement
itself needs a GPU: tools/gpu_suite.sh)."""

from __future__ import annotations

import sys

import pytest

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
try:
    import benchmark_gpu as bg
finally:
    sys.path.remove(str(REPO / "benchmarks"))


def _calls(frame, n, period=1000.0):
    """``n`` calls of ``frame`` (activities relative to the call's start), ``period`` us apart."""
    return [(name, a + c * period, b + c * period) for c in range(n) for name, a, b in frame]


def test_idle_is_the_span_less_the_union_of_the_activities():
    # copy 0-10, kernel a 12-20, kernel b 15-30 (overlaps a), kernel c 35-40: idle 2 (copy -> a) + 5 (b -> c)
    frame = [("Memcpy HtoD", 0, 10), ("a", 12, 20), ("b", 15, 30), ("c", 35, 40)]
    got = bg.gpu_idle(list(reversed(_calls(frame, 3))), 3)  # any order
    assert got["activities_per_call"] == 4
    assert got["span_us"] == 40 and got["busy_us"] == 33 and got["idle_us"] == 7
    assert got["gaps"] == {"b -> c": 5.0, "Memcpy HtoD -> a": 2.0}  # largest first, named by what ended last


def test_a_gap_seen_in_some_calls_only_counts_zero_in_the_others():
    steady = [("a", 0, 10), ("b", 10, 20)]
    late = [("a", 0, 10), ("b", 14, 24)]
    acts = _calls(steady, 1) + [(n, a + 1000, b + 1000) for n, a, b in late] + [(n, a + 2000, b + 2000) for n, a, b in steady]
    got = bg.gpu_idle(acts, 3)
    assert got["gaps"] == {"a -> b": 0.0} and got["idle_us"] == 0.0  # the median of 0, 4, 0


@pytest.mark.parametrize("acts, calls", [([], 1), ([("a", 0, 1)] * 3, 2), ([("a", 0, 1)], 0)])
def test_calls_that_cannot_be_told_apart_give_none(acts, calls):
    assert bg.gpu_idle(acts, calls) is None


def test_top_keeps_the_largest_gaps_and_long_names_are_cut():
    frame = [(f"kernel_{i}_" + "x" * 60, 10 * i, 10 * i + 9 - (i % 3)) for i in range(10)]
    got = bg.gpu_idle(_calls(frame, 2), 2, top=3)
    assert len(got["gaps"]) == 3 and all(v == 3.0 for v in got["gaps"].values())
    assert all(len(part) <= 48 for key in got["gaps"] for part in key.split(" -> "))


def test_the_timeline_is_the_first_call_in_order():
    frame = [("copy", 0, 10), ("a", 12, 20), ("b" * 50, 15, 30)]
    got = bg.gpu_idle(_calls(frame, 2), 2)
    assert got["timeline"] == [["copy", 0.0, 10.0], ["a", 12.0, 8.0], ["b" * 40, 15.0, 15.0]]
