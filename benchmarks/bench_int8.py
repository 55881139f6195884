#!/usr/bin/env python3
"""INT8 against FP32 on the CPU with ONNX Runtime: the whole frame (validation, voxelization, PFN,
scatter, RPN, post-processing) of KITTI FOV frames, both detectors in the same run.

    python benchmarks/bench_int8.py --fp32 onnx_fp32/ --int8 onnx_int8/ [onnx_uint8/ ...] [--threads 2] [--repeat 20]

``--fp32`` / ``--int8``: folders written by ``export/export_onnx.py`` (without and with ``--int8``);
several ``--int8`` folders (e.g. ``--activation-type int8`` and ``uint8``) are timed in the same run,
each named by its folder.
Frames: the real KITTI ``velodyne_reduced`` frames in ``../shared/data/kitti_frames`` (or
``--frames FILE...``). Each detector is warmed up, then the frames are run ``--repeat`` times in
turn, FP32 and INT8 interleaved frame by frame so that both see the same load. Prints the median,
10th and 90th percentile per detector, the per-stage medians, the ratio, the CPU and the load
average (other processes share the cores: read the numbers with it), and writes them as JSON with
``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FRAMES = REPO.parent / "shared" / "data" / "kitti_frames"


def default_frames() -> list[Path]:
    return sorted(FRAMES.glob("*/velodyne_reduced/*.bin"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def summary(times_ms: list[float]) -> dict[str, float]:
    a = np.asarray(times_ms)
    return {"median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)), "p90_ms": float(np.percentile(a, 90)), "runs": len(a)}


def run(args: argparse.Namespace) -> dict:
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.io.pointcloud import load_points

    clouds = [load_points(p) for p in (args.frames or default_frames())]
    dirs = {"fp32": args.fp32, **{(d.name if len(args.int8) > 1 else "int8"): d for d in args.int8}}
    if len(dirs) != 1 + len(args.int8):
        raise SystemExit("--int8 folders need distinct names")
    dets = {name: Detector.from_engine_dir(d, backend="onnxruntime", device="cpu", threads=args.threads) for name, d in dirs.items()}
    times: dict[str, list[float]] = {k: [] for k in dets}
    stages: dict[str, dict[str, list[float]]] = {k: {} for k in dets}
    load_before = os.getloadavg()
    for det in dets.values():
        for cloud in clouds[:2]:
            det.detect(cloud)
    for _ in range(args.repeat):
        for cloud in clouds:
            for name, det in dets.items():
                t0 = time.perf_counter()
                out = det.detect(cloud)
                times[name].append((time.perf_counter() - t0) * 1e3)
                for stage, ms in out.timings_ms.items():
                    stages[name].setdefault(stage, []).append(ms)
    for det in dets.values():
        det.close()
    result = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads, "frames": len(clouds), "repeat": args.repeat,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(sys.argv),
        **{name: {**summary(t), "stages_median_ms": {s: float(np.median(v)) for s, v in stages[name].items()}} for name, t in times.items()},
    }
    result["speedup"] = {name: result["fp32"]["median_ms"] / result[name]["median_ms"] for name in dets if name != "fp32"}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fp32", type=Path, required=True, help="folder of FP32 graphs (export/export_onnx.py)")
    p.add_argument("--int8", type=Path, nargs="+", required=True, help="folder(s) of INT8 graphs (export/export_onnx.py --int8)")
    p.add_argument("--frames", type=Path, nargs="+", help="point files (default: the real KITTI FOV frames of ../shared)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--repeat", type=int, default=5, help="passes over the frames (default 5)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
