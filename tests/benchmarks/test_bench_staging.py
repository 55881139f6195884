"""bench_staging.py's copies (numpy, one ctypes.memmove, two and four threads' shares) each copy a cloud exactly."""

from __future__ import annotations

from benchmarks import bench_staging as bench


def test_every_way_copies_the_cloud_exactly(capsys):
    copier = bench.SplitCopier(4)
    row = bench.measure(1000, 2, rounds=1, copier=copier)  # raises if a way's copy differs
    copier.close()
    assert set(row) == {"numpy assignment", "ctypes.memmove", "two threads", "four threads"} and all(us > 0 for us in row.values())
    assert bench.main(["--points", "333", "--cycle", "1", "--rounds", "1"]) == 0
    assert "two threads" in capsys.readouterr().out
