#!/usr/bin/env python3
"""Detect 3D boxes in point-cloud files and print them.

    python tools/infer.py cloud.bin                       # the shipped demo model, CPU
    python tools/infer.py frames/ --ckpt pointpillar_7728.pth --out results.json
    python tools/infer.py 000134.bin --ckpt model.pth --calib calib/000134.txt --out labels/
    python tools/infer.py cloud.bin --bev bev.png
    python tools/infer.py frames/ --backend gpu --precision fp16   # whole frame on the GPU (the default where CUDA is usable)
    python tools/infer.py frames/ --backend gpu --engine-dir engines/   # ... with the TensorRT engines

Exit codes: 0 success, 2 bad input (file, checkpoint, config), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

from pointpillars_trt.cli import add_detector_arguments, detector_from_args
from pointpillars_trt.detector import Detections
from pointpillars_trt.errors import PointPillarsError
from pointpillars_trt.io.pointcloud import SUPPORTED_SUFFIXES, load_points

log = logging.getLogger("infer")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="point-cloud files (.bin .npy .pcd .ply) or directories of them")
    add_detector_arguments(p)
    p.add_argument("--score-thresh", type=float, help="override the config's score threshold")
    p.add_argument("--calib", type=Path, help="KITTI calib file, or a directory of <frame>.txt (for --out DIR)")
    p.add_argument("--image-shape", type=int, nargs=2, metavar=("H", "W"), help="clip projected 2D boxes to this image size")
    p.add_argument("--out", type=Path, help="FILE.json: all results as JSON; DIR: KITTI label files (needs --calib)")
    p.add_argument("--bev", type=Path, help="bird's-eye-view PNG (a directory when several inputs are given)")
    p.add_argument("--show", action="store_true", help="open an Open3D window per frame")
    p.add_argument("--quiet", action="store_true", help="no box table")
    return p.parse_args(argv)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; directories expanded to their supported point-cloud files, sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUPPORTED_SUFFIXES)
            if not found:
                raise PointPillarsError(f"{p}: directory holds no point-cloud file ({', '.join(SUPPORTED_SUFFIXES)})")
            out += found
        else:
            out.append(p)
    return out


def format_table(path: Path, det: Detections) -> str:
    lines = [f"{path}: {len(det)} boxes, {det.num_points} points, {det.num_pillars} pillars"]
    if len(det):
        lines.append(f"  {'class':<12}{'score':>7}{'x':>9}{'y':>9}{'z':>8}{'dx':>7}{'dy':>7}{'dz':>7}{'yaw':>8}")
        for name, s, b in zip(det.label_names, det.scores, det.boxes):
            lines.append(f"  {name:<12}{s:7.3f}{b[0]:9.2f}{b[1]:9.2f}{b[2]:8.2f}{b[3]:7.2f}{b[4]:7.2f}{b[5]:7.2f}{b[6]:8.3f}")
    lines.append("  times (ms): " + "  ".join(f"{k} {v:.2f}" for k, v in det.timings_ms.items()))
    return "\n".join(lines)


def calib_for(calib: Path, frame: Path):
    from pointpillars_trt.io.kitti import Calibration

    return Calibration.from_file(calib / f"{frame.stem}.txt" if calib.is_dir() else calib)


def write_kitti(out_dir: Path, frame: Path, det: Detections, calib_path: Path, image_shape) -> None:
    from pointpillars_trt.io.kitti import detections_to_kitti_objects, write_label

    objs = detections_to_kitti_objects(det.boxes, det.label_names, det.scores, calib_for(calib_path, frame), image_shape)
    write_label(out_dir / f"{frame.stem}.txt", objs, decimals=4)


def run(args: argparse.Namespace) -> int:
    files = expand_inputs(args.paths)
    if args.out is not None and args.out.suffix.lower() != ".json" and args.calib is None:
        raise PointPillarsError(f"--out {args.out}: KITTI label output needs --calib (or give a .json path)")
    detector = detector_from_args(args)
    log.info("model: %s; config %s; %s", detector.source.describe(), detector.config.name, detector.path)
    if detector.source.is_random:
        log.warning("no trained demo model is shipped yet: using RANDOM weights, the boxes below are meaningless")
    if args.out is not None and args.out.suffix.lower() != ".json":
        args.out.mkdir(parents=True, exist_ok=True)
    bev_dir = args.bev if args.bev is not None and len(files) > 1 else None
    if bev_dir is not None:
        bev_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    iterator = files
    if len(files) > 1:
        from tqdm import tqdm

        iterator = tqdm(files, desc="infer", unit="frame", disable=None)
    for path in iterator:
        points = load_points(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            det = detector.detect(points, score_threshold=args.score_thresh, source=str(path))
        for w in caught:
            log.warning("%s", w.message)
        if not args.quiet:
            print(format_table(path, det))
        frames.append({"path": str(path), **det.to_dict()})
        if args.out is not None and args.out.suffix.lower() != ".json":
            write_kitti(args.out, path, det, args.calib, args.image_shape)
        if args.bev is not None:
            from pointpillars_trt.viz.bev import render_bev

            target = bev_dir / f"{path.stem}.png" if bev_dir else args.bev
            render_bev(points, det.boxes, det.label_names, det.scores, target, title=f"{path.name} ({detector.source.describe()})")
            log.info("wrote %s", target)
        if args.show:
            from pointpillars_trt.viz import show_open3d

            show_open3d(points, det.boxes, det.label_names)
    if args.out is not None and args.out.suffix.lower() == ".json":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": detector.source.describe(), "backend": str(detector.backend), "path": detector.path, "frames": frames}, indent=1))
        log.info("wrote %s", args.out)
    elif args.out is not None:
        log.info("wrote %d KITTI label files to %s", len(files), args.out)
    if len(frames) > 1:
        totals = np.array([f["timings_ms"]["total"] for f in frames])
        log.info("%d frames, median total %.2f ms", len(frames), float(np.median(totals)))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    args = parse_args(argv)
    try:
        return run(args)
    except PointPillarsError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
