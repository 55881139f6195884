#!/usr/bin/env python3
"""The device executor's staging copy (a validated float32 ``[N, 4]`` cloud into its staging row)
four ways: numpy's assignment (what ``FrameBuffers.stage`` does by default), one ``ctypes.memmove``,
and two or four threads each moving a share through ``ctypes.memmove`` (which releases the GIL):
``pointpillars_trt.executors.staging.SplitCopier``, what ``FrameBuffers.stage`` uses with
``staging_threads`` > 1 (there it splits only copies of at least two 512 KiB shares; here every
copy is split, to measure the hand-off). Runs on any machine; the destination is plain memory
here, pinned on the GPU path.

    python benchmarks/bench_staging.py [--points 20285 101425] [--cycle 1 16] [--rounds 30]

``--cycle K`` copies K different clouds in turn (K > 1: sources out of the cache, as a stream of
frames is). Prints, per size and K, the median over interleaved rounds of each round's median of
100 copies, in microseconds: the split pays only where its column is the smallest.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.executors.staging import SplitCopier, split_jobs  # noqa: E402

COPIES_PER_ROUND = 100


def clouds(num_points: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` different random float32 ``[num_points, 4]`` clouds."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-40, 40, (num_points, 4)).astype(np.float32) for _ in range(count)]


def copy_ways(dst: np.ndarray, copier: SplitCopier) -> dict:
    """name -> ``fn(cloud)`` copying the cloud into the start of ``dst`` (float32 ``[capacity, 4]``); the
    threaded ways split every copy, whatever its size (``SplitCopier.copy`` would not split small ones)."""
    ways = {
        "numpy assignment": lambda c: dst.__setitem__(slice(0, c.shape[0]), c),
        "ctypes.memmove": lambda c: ctypes.memmove(dst.ctypes.data, c.ctypes.data, c.nbytes),
    }
    for k, name in ((2, "two threads"), (4, "four threads")):
        if k <= copier.threads:
            ways[name] = lambda c, k=k: copier.run(split_jobs([(dst.ctypes.data, c.ctypes.data, c.nbytes)], k))
    return ways


def measure(num_points: int, cycle: int, rounds: int, copier: SplitCopier) -> dict[str, float]:
    """Median (us) over ``rounds`` interleaved rounds of each way's median of 100 copies; checks that
    each way copied the cloud exactly."""
    srcs, dst = clouds(num_points, cycle), np.zeros((num_points, 4), np.float32)
    ways = copy_ways(dst, copier)
    per: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(rounds):
        for name, fn in ways.items():
            ts = []
            for i in range(COPIES_PER_ROUND):
                c = srcs[i % cycle]
                t = time.perf_counter_ns()
                fn(c)
                ts.append(time.perf_counter_ns() - t)
            per[name].append(float(np.median(ts)) / 1e3)
    for name, fn in ways.items():
        dst[:] = 0
        fn(srcs[0])
        if not np.array_equal(dst, srcs[0]):
            raise AssertionError(f"{name} did not copy the cloud")
    return {name: float(np.median(v)) for name, v in per.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, nargs="+", default=[20285, 101425])
    p.add_argument("--cycle", type=int, nargs="+", default=[1, 16])
    p.add_argument("--rounds", type=int, default=30)
    args = p.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    copier = SplitCopier(4)
    for n in args.points:
        for k in args.cycle:
            row = measure(n, k, args.rounds, copier)
            print(f"{n:8d} points ({16 * n:9d} B), {k:2d} sources: " + "  ".join(f"{w} {us:8.1f} us" for w, us in row.items()))
    copier.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
