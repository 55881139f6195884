#!/usr/bin/env python3
"""Where the host time of one GPU frame goes: cProfile over ``Detector.detect`` on the device
executor (fp16, one CUDA graph per frame), on the real frames, after warm-up.

    python benchmarks/profile_host.py [--frames N] [--calls 2000] [--top 25]

Prints the functions with the most own time (``tottime``) per call, in microseconds, and the
median host time of a frame without the profiler for scale. The profiler inflates Python-heavy
functions; read the ranking, not the absolute numbers.
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
    host = []
    for i in range(args.calls):
        t = time.perf_counter()
        det.detect(frames[i % len(frames)])
        host.append((time.perf_counter() - t) * 1e6)
    print(f"host per frame without the profiler: median {np.median(host):.1f} us over {args.calls} calls")
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
