"""Copying the points of a frame (or a batch) into pinned staging memory with several threads.

One thread copies at about 12-14 GB/s; on the H200's 16-core host (benchmarks/bench_staging.py,
2026-12-01) two threads halve the copy of a 360-degree cloud (1.6 MB: 113.6 -> 57.0 us) but lose on
a FOV cloud (324 KB: 8.9 -> 31.5 us), because waking a worker costs ~20 us. So a share is never
smaller than :data:`MIN_SHARE_BYTES` (about what one thread copies in the time a hand-off costs,
rounded up to a power of two), and small copies stay on the caller's thread. The GPU pipeline
splits only batches (``StagingRows.stage``): a single cloud's rows, written by four threads just before
its host-to-device copy, made that copy 1.7x slower (bench_h2d.py: 1.6 MB in 112 against 68 us, 2026-12-02),
and a 360-degree frame took 0.816 ms host to host against 0.752 ms with one thread. A batch is staged while
the other pipeline's batch runs, so its copy finds the lines written back.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence

from ..errors import ConfigError

MIN_SHARE_BYTES = 1 << 19  # 512 KiB
LINE = 64  # shares start on cache-line boundaries

Job = tuple[int, int, int]  # (dst address, src address, bytes)


def split_jobs(jobs: Sequence[Job], parts: int) -> list[list[Job]]:
    """``jobs`` (copies of ``nbytes`` from ``src`` to ``dst``) as ``parts`` lists covering the same bytes:
    contiguous shares of their concatenation, each about ``total / parts`` bytes, cut on 64-byte
    boundaries of the concatenation; a job may be cut across two shares. Empty shares are dropped."""
    total = sum(n for _, _, n in jobs)
    cuts = [min(total, (total * k // parts) // LINE * LINE) for k in range(1, parts)] + [total]
    out: list[list[Job]] = [[] for _ in cuts]
    share, lo = 0, 0  # the share being filled; the byte offset (in the concatenation) of the job's start
    for dst, src, n in jobs:
        off = 0
        while off < n:
            while lo + off >= cuts[share]:
                share += 1
            take = min(n - off, cuts[share] - (lo + off))
            out[share].append((dst + off, src + off, take))
            off += take
        lo += n
    return [s for s in out if s]


class _Worker:
    """A daemon thread that runs the jobs given to :meth:`start` (``ctypes.memmove``, which releases
    the GIL) and signals :meth:`join`; two locks as the hand-off (cheaper than events or queues)."""

    def __init__(self) -> None:
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._jobs: list[Job] = []
        self._stop = False
        threading.Thread(target=self._loop, name="pp-staging", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            if self._stop:
                return
            for job in self._jobs:
                ctypes.memmove(*job)
            self._done.release()

    def start(self, jobs: list[Job]) -> None:
        self._jobs = jobs
        self._go.release()

    def join(self) -> None:
        self._done.acquire()

    def stop(self) -> None:
        self._stop = True
        self._go.release()


def default_staging_threads(cores: int | None = None) -> int:
    """The staging threads when the options leave them open: ``min(4, cores // 4)``, at least 1
    (``cores``: ``os.cpu_count()``). Measured (docs/PERFORMANCE.md, 2026-12-02): on a 16-core host four
    threads stage a batch of 16 360-degree clouds in 1.30 ms instead of 3.94 (2716 -> 3663 frames/s);
    on a 2-core machine a split never won; a FOV cloud (< 1 MiB) and any single cloud are never split."""
    n = os.cpu_count() if cores is None else cores
    return max(1, min(4, int(n or 1) // 4))


class SplitCopier:
    """Copies with up to ``threads`` threads: ``threads - 1`` persistent workers and the caller.
    :meth:`copy` uses ``min(threads, total // MIN_SHARE_BYTES)`` of them (the caller alone below
    ``2 * MIN_SHARE_BYTES``) and returns when every byte is copied. One copy at a time (its owner,
    the GPU pipeline, runs one submission at a time); :meth:`close` ends the workers."""

    def __init__(self, threads: int) -> None:
        if int(threads) != threads or threads < 1:
            raise ConfigError(f"staging_threads {threads!r}: give a whole number >= 1 (1: the caller's thread alone)")
        self.threads = int(threads)
        self._workers = [_Worker() for _ in range(self.threads - 1)]

    def parts(self, nbytes: int) -> int:
        """How many threads copy ``nbytes``."""
        return max(1, min(self.threads, nbytes // MIN_SHARE_BYTES))

    def copy(self, jobs: Sequence[Job]) -> None:
        """Run ``jobs`` in :meth:`parts` shares."""
        self.run(split_jobs(jobs, self.parts(sum(n for _, _, n in jobs))))

    def run(self, shares: Sequence[list[Job]]) -> None:
        """Run ``shares`` (at most ``threads`` lists of jobs, e.g. from :func:`split_jobs`): the first on
        the caller's thread, the others on the workers; returns when all are done."""
        if len(shares) > self.threads:
            raise ConfigError(f"SplitCopier.run: {len(shares)} shares for {self.threads} threads")
        for w, share in zip(self._workers, shares[1:]):
            w.start(share)
        for job in shares[0] if shares else ():
            ctypes.memmove(*job)
        for w in self._workers[: max(0, len(shares) - 1)]:
            w.join()

    def close(self) -> None:
        for w in self._workers:
            w.stop()
        self._workers = []


__all__ = ["MIN_SHARE_BYTES", "SplitCopier", "split_jobs"]
