#!/usr/bin/env python3
"""The device executor's staging copy (a validated float32 ``[N, 4]`` cloud into its staging row)
three ways: numpy's assignment (what ``FrameBuffers.stage`` does), one ``ctypes.memmove``, and two
threads each moving half through ``ctypes.memmove`` (which releases the GIL; a persistent worker
woken through one lock and joined through another). Runs on any machine; the destination is plain
memory here, pinned on the GPU path.

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
import threading
import time

import numpy as np

COPIES_PER_ROUND = 100


class HalvesCopier:
    """Copies ``nbytes`` from ``src`` to ``dst`` (addresses) as two halves: the upper one on a worker
    thread, the lower one on the caller's; :meth:`copy` returns when both are done."""

    def __init__(self) -> None:
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._job: tuple[int, int, int] = (0, 0, 0)
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            ctypes.memmove(*self._job)
            self._done.release()

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        half = (nbytes // 2) & ~63  # a cache-line boundary
        self._job = (dst + half, src + half, nbytes - half)
        self._go.release()
        ctypes.memmove(dst, src, half)
        self._done.acquire()


def clouds(num_points: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` different random float32 ``[num_points, 4]`` clouds."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-40, 40, (num_points, 4)).astype(np.float32) for _ in range(count)]


def copy_ways(dst: np.ndarray, halves: HalvesCopier) -> dict:
    """name -> ``fn(cloud)`` copying the cloud into the start of ``dst`` (float32 ``[capacity, 4]``)."""
    return {
        "numpy assignment": lambda c: dst.__setitem__(slice(0, c.shape[0]), c),
        "ctypes.memmove": lambda c: ctypes.memmove(dst.ctypes.data, c.ctypes.data, c.nbytes),
        "two threads": lambda c: halves.copy(dst.ctypes.data, c.ctypes.data, c.nbytes),
    }


def measure(num_points: int, cycle: int, rounds: int, halves: HalvesCopier) -> dict[str, float]:
    """Median (us) over ``rounds`` interleaved rounds of each way's median of 100 copies; checks that
    each way copied the cloud exactly."""
    srcs, dst = clouds(num_points, cycle), np.zeros((num_points, 4), np.float32)
    ways = copy_ways(dst, halves)
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
    halves = HalvesCopier()
    for n in args.points:
        for k in args.cycle:
            row = measure(n, k, args.rounds, halves)
            print(f"{n:8d} points ({16 * n:9d} B), {k:2d} sources: " + "  ".join(f"{w} {us:8.1f} us" for w, us in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
