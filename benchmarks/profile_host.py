#!/usr/bin/env python3
"""Where the host time of one GPU frame goes: cProfile over ``Detector.detect`` on the device
executor (fp16, one CUDA graph per frame), on the real frames, after warm-up.

    python benchmarks/profile_host.py [--calls 2000] [--top 25]

First, without the profiler: how the graph is launched (``cuGraphLaunch`` through ctypes, or
torch's replay), the median host time of a frame, the GPU time between the launch's events and
the host overhead (host minus GPU, per frame), split into the pipeline's staging into pinned
memory, the rest of the pipeline (launch, wait return, result copy-out) and the facade around it
(validation, unpacking, result assembly), all from the frames' own ``timings_ms``, with their 90th
and 99th percentiles, and the host time's p99 over its median; the same again for the frames written into
``Detector.input_buffer`` (the pinned staging row: no staging copy; the write itself is not timed). Then the functions with the most
own time (``tottime``) per call under cProfile, in microseconds; the profiler inflates
Python-heavy functions: read the ranking, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FRAMES = REPO.parent / "shared" / "data" / "kitti_frames"


def launch_path(det) -> str:
    """How the device executor replays its graphs (one line)."""
    pipe = getattr(det.executor, "pipeline", None)
    launchers = list(getattr(pipe, "_graphs", {}).values())
    if not launchers:
        return "no CUDA graph"
    kinds = sorted({type(g).__name__ for g in launchers})
    if kinds == ["GraphLaunch"]:
        return "GraphLaunch: cuEventRecord, cuGraphLaunch, cuEventRecord through ctypes (libcuda)"
    return ", ".join(kinds)


def print_overhead(host_us: np.ndarray, timings: list[dict]) -> None:
    """Medians (us) of the host overhead per frame and of its parts, from ``Detections.timings_ms``."""
    def col(key):
        return np.array([t.get(key, np.nan) for t in timings]) * 1e3

    gpu, total, stage = col("gpu"), col("total"), col("host_stage")
    parts = {
        "GPU (events around the launch)": gpu,
        "host overhead (host - GPU)": host_us - gpu,
        "  staging into pinned memory": stage,
        "  pipeline: launch, wait return": total - stage - gpu,
        "  facade: validation, unpacking, results": host_us - total,
    }
    for name, v in parts.items():
        print(f"{name:44s} median {np.nanmedian(v):8.1f} us   p90 {np.nanpercentile(v, 90):8.1f} us   "
              f"p99 {np.nanpercentile(v, 99):8.1f} us")
    print(f"host per frame p99 / median: {np.percentile(host_us, 99) / np.median(host_us):.3f} (issue 18's target: <= 1.3)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    from pointpillars_trt.detector import Detector

    frames = [np.fromfile(f, dtype=np.float32).reshape(-1, 4) for f in sorted(FRAMES.rglob("*.bin"))]
    det = Detector.from_checkpoint(None, backend="gpu", precision="fp16")
    for f in frames * 3:
        det.detect(f)
    host, rows = [], []
    for i in range(args.calls):
        t = time.perf_counter()
        d = det.detect(frames[i % len(frames)])
        host.append((time.perf_counter() - t) * 1e6)
        rows.append(d.timings_ms)
    print(f"graph launch: {launch_path(det)}")
    print(f"host per frame without the profiler: median {np.median(host):.1f} us over {args.calls} calls")
    print_overhead(np.array(host), rows)
    host, rows = [], []
    for i in range(args.calls):  # the same frames written into Detector.input_buffer first (that write is not timed)
        f = frames[i % len(frames)]
        with det.input_buffer(len(f)) as buf:
            buf[:] = f
            t = time.perf_counter()
            d = det.detect(buf)
            host.append((time.perf_counter() - t) * 1e6)
        rows.append(d.timings_ms)
    print(f"written into Detector.input_buffer (no staging copy): host per frame median {np.median(host):.1f} us")
    print_overhead(np.array(host), rows)
    prof = cProfile.Profile()
    prof.enable()
    for i in range(args.calls):
        det.detect(frames[i % len(frames)])
    prof.disable()
    stats = pstats.Stats(prof)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[: args.top]
    print(f"{'own us/call':>12} {'cum us/call':>12} {'calls/frame':>11}  function")
    for (file, line, name), (cc, nc, tt, ct, _) in rows:
        print(f"{tt / args.calls * 1e6:12.2f} {ct / args.calls * 1e6:12.2f} {nc / args.calls:11.1f}  {Path(file).name}:{line} {name}")
    det.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
