#!/usr/bin/env python3
"""The fp16 CUDA-graph FOV host latency of this checkout against an earlier one, in the same run.

    git archive 273bfc5 pointpillars_trt | tar -x -C /tmp/landed     # the landed code, package only
    python benchmarks/landed_vs_head.py --landed /tmp/landed [--rounds 3] [--iters 300] [--json out.json]

Each round runs one subprocess per tree (PYTHONPATH = that tree), alternating, so that clock and
thermal drift hit both alike: the demo model, fp16, one CUDA graph, batch 1, every real KITTI FOV
frame in ``../shared/data/kitti_frames`` in turn, host to host around ``detect``. Prints the median
of each tree over all rounds and their ratio. Both trees run this checkout's demo model: a landed
tree without ``pointpillars_trt/data/demo_model.safetensors`` gets a copy of it (without weights it
would fall back to random ones, a different workload).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "data" / "kitti_frames" / "cuda_pointpillars" / "velodyne_reduced"

SNIPPET = r"""
import json, sys, time, warnings
from pathlib import Path
import numpy as np
warnings.simplefilter("ignore")
from pointpillars_trt.detector import Detector
if hasattr(Detector, "from_weights"):  # one facade
    det = Detector.from_checkpoint(None, backend="gpu", precision="fp16", max_batch=1)
else:  # the landed code: GpuDetector
    from pointpillars_trt.gpu_pipeline import GpuDetector
    det = GpuDetector.from_checkpoint(None, precision="fp16", max_batch=1)
print(type(det).__module__, file=sys.stderr)
frames = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in sorted(Path(sys.argv[1]).glob("*.bin"))]
for f in frames * 5:
    det.detect(f)
iters = int(sys.argv[2])
out, inner, gpu = [], [], []
for i in range(iters):
    f = frames[i % len(frames)]
    t0 = time.perf_counter()
    d = det.detect(f)
    out.append((time.perf_counter() - t0) * 1e3)
    inner.append(d.timings_ms["total"])
    gpu.append(d.timings_ms["gpu"])
print(json.dumps([out, inner, gpu]))
"""


def measure(tree: Path, iters: int) -> list[list[float]]:
    """``[host to host around detect, the pipeline's own total, GPU time]`` per frame, in ms."""
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", SNIPPET, str(FRAMES), str(iters)], capture_output=True, text=True, env=env,
                          cwd=tree, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


WEIGHTS = Path("pointpillars_trt") / "data" / "demo_model.safetensors"


def with_weights(tree: Path) -> Path:
    """Give ``tree`` this checkout's demo model where it has none or another one, so that both trees run
    the same weights and only the code differs (a landed tree carried without weights would run random
    ones; one from before a new demo model shipped gives other candidates to post-process: another
    workload, +35 us of GPU time on 2026-12-02); returns the tree's weights file."""
    dest = tree / WEIGHTS
    if not dest.is_file() or not filecmp.cmp(dest, REPO / WEIGHTS, shallow=False):
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / WEIGHTS, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--landed", type=Path, required=True, help="a tree holding the earlier pointpillars_trt/")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    trees = {"landed": args.landed.resolve(), "head": REPO}
    with_weights(trees["landed"])
    samples: dict[str, list[float]] = {k: [] for k in trees}
    inner: dict[str, list[float]] = {k: [] for k in trees}
    gpus: dict[str, list[float]] = {k: [] for k in trees}
    for r in range(args.rounds):
        for name, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
            s, pipe, gpu = measure(tree, args.iters)
            samples[name] += s
            inner[name] += pipe
            gpus[name] += gpu
            print(f"round {r} {name:<7} median {np.median(s):.4f} ms  p90 {np.percentile(s, 90):.4f}  p99 {np.percentile(s, 99):.4f}"
                  f"  | pipeline {np.median(pipe):.4f}  gpu {np.median(gpu):.4f}")
    med = {k: float(np.median(v)) for k, v in samples.items()}
    print(f"fp16 graph FOV host latency: landed {med['landed']:.4f} ms, head {med['head']:.4f} ms, "
          f"head/landed {med['head'] / med['landed']:.3f} ({len(samples['head'])} frames each)")
    if args.json:
        args.json.write_text(json.dumps({"median_ms": med, "pipeline_median_ms": {k: float(np.median(v)) for k, v in inner.items()},
                                         "gpu_median_ms": {k: float(np.median(v)) for k, v in gpus.items()}, "ratio": med["head"] / med["landed"],
                                         "p99_ms": {k: float(np.percentile(v, 99)) for k, v in samples.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
