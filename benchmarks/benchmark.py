#!/usr/bin/env python3
"""Measure the pipeline: per-stage and end-to-end latency, median / p90 / p99 over many runs.

    python benchmarks/benchmark.py --stage voxelize                 # CPU voxelizers, real + 360-degree frames
    python benchmarks/benchmark.py --stage pipeline --backend torch --iters 20
    python benchmarks/benchmark.py --stage pipeline --backend onnxruntime --json out/bench.json
    python benchmarks/benchmark.py --stage gpu --json out/bench_gpu.json   # eager torch vs our GPU pipeline
                                                                      # (benchmarks/benchmark_gpu.py; its own options)

Frames: every real KITTI frame under ../shared/data/kitti_frames (or --frames DIR), and
synthetic 360-degree frames of about 120k points made by our LiDAR simulator. Timings come from
the same code path users run (``Detector.detect`` fills ``timings_ms`` on every call).
Numbers are printed as a table and written as JSON with the machine, date and command.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from pointpillars_trt.compare.runs import summarize
from pointpillars_trt.config import load_config

log = logging.getLogger("benchmark")
REPO = Path(__file__).resolve().parents[1]
DEFAULT_FRAMES = REPO.parent / "shared" / "data" / "kitti_frames"


def load_frames(frames_dir: Path | None) -> list[tuple[str, np.ndarray]]:
    from pointpillars_trt.io.pointcloud import load_points

    root = frames_dir or DEFAULT_FRAMES
    paths = sorted(root.rglob("*.bin")) if root.is_dir() else []
    return [(str(p.relative_to(root)), load_points(p)) for p in paths]


def synthetic_360_frames(n: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Full-revolution HDL-64-like frames from the package's simulator (about 120k points each)."""
    from pointpillars_trt.synthetic import generate_frame

    return [(f"synthetic360/{i}", generate_frame(seed, i).points) for i in range(n)]


def bench_voxelize(cfg, frames, iters: int) -> dict:
    from pointpillars_trt.voxelize import make_voxelizer

    results = {}
    for kind in ("numba", "spconv"):
        try:
            vox = make_voxelizer(cfg.voxel, kind)
        except Exception as exc:  # noqa: BLE001 - report and continue with the other kind
            log.warning("voxelizer %s unavailable: %s", kind, exc)
            continue
        for group, sel in (("fov", [f for f in frames if not f[0].startswith("synthetic360")]),
                           ("360", [f for f in frames if f[0].startswith("synthetic360")])):
            if not sel:
                continue
            samples = []
            for _, pts in sel:
                vox(pts)  # warm-up (JIT, buffers)
            for _ in range(iters):
                for _, pts in sel:
                    t = time.perf_counter()
                    vox(pts)
                    samples.append((time.perf_counter() - t) * 1e3)
            results[f"{kind}/{group}"] = summarize(samples) | {"points": int(np.mean([len(p) for _, p in sel]))}
    return results


def bench_pipeline(cfg, frames, iters: int, backend: str, device: str, ckpt: str | None) -> dict:
    from pointpillars_trt.detector import Detector

    det = Detector.from_checkpoint(ckpt, backend=backend, device=device)
    det.warmup()
    results = {}
    for group, sel in (("fov", [f for f in frames if not f[0].startswith("synthetic360")]),
                       ("360", [f for f in frames if f[0].startswith("synthetic360")])):
        if not sel:
            continue
        per_stage: dict[str, list[float]] = {}
        for _ in range(iters):
            for _, pts in sel:
                out = det.detect(pts)
                for k, v in out.timings_ms.items():
                    per_stage.setdefault(k, []).append(v)
        results[f"{backend}/{device}/{group}"] = {k: summarize(v) for k, v in per_stage.items()}
    return results


def machine_info() -> dict:
    info = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "command": " ".join(sys.argv)}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    return info


def print_table(results: dict) -> None:
    for name, entry in results.items():
        if "median" in entry:
            print(f"{name:<28} median {entry['median']:8.3f} ms  p90 {entry['p90']:8.3f}  p99 {entry['p99']:8.3f}  (n={entry['n']})")
        else:
            for stage, s in entry.items():
                print(f"{name + ' ' + stage:<40} median {s['median']:9.3f} ms  p90 {s['p90']:9.3f}  p99 {s['p99']:9.3f}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--stage" in argv and argv.index("--stage") + 1 < len(argv) and argv[argv.index("--stage") + 1] == "gpu":
        i = argv.index("--stage")
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import benchmark_gpu  # noqa: E402  (benchmarks/benchmark_gpu.py)

        return benchmark_gpu.main(argv[:i] + argv[i + 2:])
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=("voxelize", "pipeline", "gpu"), default="pipeline")
    p.add_argument("--backend", default="torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ckpt")
    p.add_argument("--config")
    p.add_argument("--frames", type=Path, help="directory of .bin frames (default: ../shared KITTI frames)")
    p.add_argument("--synthetic-360", type=int, default=3, help="number of simulated 360-degree frames")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch / numba threads (1 = one core)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    cfg = load_config(args.config)
    frames = load_frames(args.frames) + synthetic_360_frames(args.synthetic_360)
    if not frames:
        log.error("no frames: give --frames DIR or --synthetic-360 N")
        return 2
    if args.stage == "voxelize":
        results = bench_voxelize(cfg, frames, args.iters)
    else:
        results = bench_pipeline(cfg, frames, args.iters, args.backend, args.device, args.ckpt)
    print_table(results)
    report = {"machine": machine_info(), "results": results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
