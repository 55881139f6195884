#!/usr/bin/env python3
"""Programmatic dependent launches (PDL) on or off, interleaved in one process: the fp16 CUDA-graph FOV frame.

    python benchmarks/pdl_ab.py [--rounds 6] [--iters 500] [--json out.json]

Three detectors of the demo model (fp16, one CUDA graph, batch 1), each captured under its own setting:

* ``all``: every kernel of ours launched programmatically (``set_programmatic_launch(True)``);
* ``none``: no kernel (the default since this comparison, 2026-12-03);
* ``no-post``: all but the post-processing kernels (``postprocess.cu``'s functions are left out of the
  programmatic set while that detector is built and measured; a measurement only, there is no such option).

Rounds alternate the three in a rotating order, so that clock and thermal drift hit all alike; each round runs
every real KITTI FOV frame of ``../shared/data/kitti_frames`` in turn, host to host around ``detect``, and
records the pipeline's GPU time (events around the graph launch). Prints the medians per variant and their
ratios to ``all``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FRAMES = REPO.parent / "shared" / "data" / "kitti_frames" / "cuda_pointpillars" / "velodyne_reduced"
VARIANTS = ("all", "none", "no-post")


@contextlib.contextmanager
def setting(variant: str):
    """Launch kernels programmatically as ``variant`` says, for what runs inside."""
    from pointpillars_trt.cuda import nvrtc

    post = set()
    if variant == "no-post":
        post = {fn for name, mod in nvrtc._modules.items() if name[0] == "postprocess.cu" for fn in map(int, mod._functions.values())}
        nvrtc._pdl_functions.difference_update(post)
    old = nvrtc.set_programmatic_launch(variant != "none")
    try:
        yield
    finally:
        nvrtc.set_programmatic_launch(old)
        nvrtc._pdl_functions.update(post)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    from pointpillars_trt.detector import Detector

    frames = [np.fromfile(f, dtype=np.float32).reshape(-1, 4) for f in sorted(FRAMES.glob("*.bin"))]
    if not frames:
        raise SystemExit(f"{FRAMES}: no .bin frames")
    dets = {}
    for v in VARIANTS:
        with setting(v):
            dets[v] = Detector.from_checkpoint(None, backend="gpu", precision="fp16", max_batch=1)
            for f in frames * 5:  # captures its graphs (every point bucket of the frames) under this setting
                dets[v].detect(f)
    host: dict[str, list[float]] = {v: [] for v in VARIANTS}
    gpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for v in VARIANTS[r % 3:] + VARIANTS[:r % 3]:
            with setting(v):
                det, h, g = dets[v], [], []
                for i in range(args.iters):
                    t0 = time.perf_counter()
                    d = det.detect(frames[i % len(frames)])
                    h.append((time.perf_counter() - t0) * 1e3)
                    g.append(d.timings_ms["gpu"])
            host[v] += h
            gpu[v] += g
            print(f"round {r} {v:<8} host median {np.median(h):.4f} ms  p99 {np.percentile(h, 99):.4f}  | gpu {np.median(g):.4f}")
    med = {v: float(np.median(host[v])) for v in VARIANTS}
    gmed = {v: float(np.median(gpu[v])) for v in VARIANTS}
    for v in VARIANTS:
        print(f"{v:<8} host {med[v]:.4f} ms ({med[v] / med['all']:.3f} of all)  gpu {gmed[v]:.4f} ms ({gmed[v] / gmed['all']:.3f})"
              f"  ({len(host[v])} frames)")
    if args.json:
        args.json.write_text(json.dumps({"host_median_ms": med, "gpu_median_ms": gmed,
                                         "host_p99_ms": {v: float(np.percentile(host[v], 99)) for v in VARIANTS}}, indent=1))
    for det in dets.values():
        det.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
