#!/usr/bin/env python3
"""What the Detector facade costs per frame on the host, apart from any executor: the uncontended
lock that makes a Detector thread-safe, and the whole facade (validation, intensity check, lock,
result assembly) around an executor that returns a canned result at once.

    python benchmarks/bench_facade.py [--frame FILE.bin] [--repeat 2000]

Prints the median of 7 timeit runs per item, in microseconds.
"""

from __future__ import annotations

import argparse
import sys
import threading
import timeit
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FRAME = REPO.parent / "shared" / "data" / "kitti_frames" / "cuda_pointpillars" / "velodyne_reduced" / "000000.bin"


def null_detector():
    from pointpillars_trt.config import load_config
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.executors.base import Executor, FrameResult, PillarCounts

    class Canned(Executor):
        max_pillars, description = 12000, "canned"

        def run(self, clouds, score_threshold=None):
            return [FrameResult(np.zeros((50, 7), np.float32), np.zeros(50, np.float32), np.zeros(50, np.int64),
                                PillarCounts(len(c), 5000, 5000), {"gpu": 0.5}) for c in clouds]

    return Detector(load_config(), Canned())


def median_us(fn, repeat: int) -> float:
    return float(np.median(timeit.repeat(fn, number=repeat, repeat=7))) / repeat * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frame", type=Path, default=FRAME)
    p.add_argument("--repeat", type=int, default=2000)
    args = p.parse_args(argv)
    from pointpillars_trt.io.pointcloud import validate_points

    pts = np.fromfile(args.frame, dtype=np.float32).reshape(-1, 4)
    lock, det = threading.Lock(), null_detector()

    def locked():
        with lock:
            pass

    rows = {"uncontended lock (with: pass)": median_us(locked, args.repeat * 10),
            "validate_points": median_us(lambda: validate_points(pts, "x"), args.repeat),
            f"facade detect, canned executor ({len(pts)} points)": median_us(lambda: det.detect(pts), args.repeat)}
    for name, us in rows.items():
        print(f"{name:<48} {us:8.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
