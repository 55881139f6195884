"""bench_staging.py's three copies (numpy, one ctypes.memmove, two threads' halves) each copy a cloud exactly."""

from __future__ import annotations

from benchmarks import bench_staging as bench


def test_every_way_copies_the_cloud_exactly(capsys):
    row = bench.measure(1000, 2, rounds=1, halves=bench.HalvesCopier())  # raises if a way's copy differs
    assert set(row) == {"numpy assignment", "ctypes.memmove", "two threads"} and all(us > 0 for us in row.values())
    assert bench.main(["--points", "333", "--cycle", "1", "--rounds", "1"]) == 0
    assert "two threads" in capsys.readouterr().out
