#!/usr/bin/env python3
"""Does a host-to-device copy from pinned memory slow down when the CPU has just written the
buffer? (Issue 18's lead: a 360-degree cloud's H2D took 0.08-0.21 ms at batch 1, where batch 16
moved 0.046 ms per frame; the guess is that freshly written, still-dirty cache lines make the copy
engine's reads snoop the CPU caches.)

    python benchmarks/bench_h2d.py [--sizes 324560 1622800] [--copies 200] [--json OUT.json]

Per size, one pinned buffer and one device buffer; the copy is timed with CUDA events around
``cudaMemcpyAsync`` alone (torch's ``copy_`` with ``non_blocking``), after the host has:
- ``untouched``: not written the buffer since the last copy;
- ``written``: just copied a cloud into it (numpy; what staging does before each replay);
- ``written, 4 threads``: the same, split over four threads (``SplitCopier``, the staging of large clouds);
- ``written, then evicted``: written, then streamed 256 MiB of other memory (the lines leave the caches).
Prints the median and p90 copy times (us) and the rate (GB/s). Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EVICT_BYTES = 256 << 20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[324560, 1622800], help="bytes (a FOV cloud, a 360-degree one)")
    p.add_argument("--copies", type=int, default=200)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    import torch

    from pointpillars_trt.executors.staging import SplitCopier, split_jobs

    if not torch.cuda.is_available():
        print("no CUDA GPU")
        return 1
    stream = torch.cuda.Stream()
    copier = SplitCopier(4)
    scratch = np.ones(EVICT_BYTES // 8, np.float64)
    results = {}
    for size in args.sizes:
        host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        dev = torch.empty(size, dtype=torch.uint8, device="cuda")
        host_np = host.numpy()
        sources = [np.random.default_rng(i).integers(0, 255, size, dtype=np.uint8) for i in range(8)]

        def numpy_write(i):
            host_np[:] = sources[i % len(sources)]

        def threaded_write(i):
            src = sources[i % len(sources)]
            copier.run(split_jobs([(host_np.ctypes.data, src.ctypes.data, size)], 4))

        def evicted_write(i):
            numpy_write(i)
            scratch.sum()  # streams 256 MiB through the caches

        ways = {"untouched": lambda i: None, "written": numpy_write, "written, 4 threads": threaded_write,
                "written, then evicted": evicted_write}
        times = {w: [] for w in ways}
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for i in range(args.copies):
            for name, before in ways.items():
                before(i)
                with torch.cuda.stream(stream):
                    start.record(stream)
                    dev.copy_(host, non_blocking=True)
                    end.record(stream)
                end.synchronize()
                if i >= 5:  # warm-up
                    times[name].append(start.elapsed_time(end) * 1e3)
        assert torch.equal(dev.cpu(), host)
        for name, t in times.items():
            med = float(np.median(t))
            results[f"{size} B, {name}"] = {"median_us": med, "p90_us": float(np.percentile(t, 90)), "GB_per_s": size / med / 1e3}
            print(f"{size:9d} B  {name:<24} median {med:7.1f} us  p90 {np.percentile(t, 90):7.1f} us  {size / med / 1e3:6.1f} GB/s")
    copier.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
