#!/usr/bin/env python3
"""Detect 3D boxes in point-cloud files and print them.

    python tools/infer.py cloud.bin                       # the shipped demo model, CPU
    python tools/infer.py frames/ --ckpt pointpillar_7728.pth --out results.json
    python tools/infer.py 000134.bin --ckpt model.pth --calib calib/000134.txt --out labels/
    python tools/infer.py cloud.bin --bev bev.png
    python tools/infer.py frames/ --backend gpu --precision fp16   # whole frame on the GPU (the default where CUDA is usable)
    python tools/infer.py frames/ --backend gpu --engine-dir engines/   # ... with the TensorRT engines

Each file runs on its own: a bad file is reported (one log line naming it) and the others still
run; the JSON output lists it under "failed" with its error, and the last line says
"N ok / M failed". Outputs are checked for writability before any detection and written
atomically (the previous FILE.json survives a failed write). --fail-fast stops at the first bad file.

Exit codes: 0 success, 2 bad input (a file failed, or the checkpoint, config or an output is
bad), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointpillars_trt.cli import add_detector_arguments, detector_from_args, tool_main, unit_interval
from pointpillars_trt.detector import Detections
from pointpillars_trt.errors import PointPillarsError
from pointpillars_trt.io.atomic import atomic_write_text, check_writable
from pointpillars_trt.io.pointcloud import SUPPORTED_SUFFIXES, load_points

log = logging.getLogger("infer")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="point-cloud files (.bin .npy .pcd .ply) or directories of them")
    add_detector_arguments(p)
    p.add_argument("--score-thresh", type=unit_interval, help="override the config's score threshold (in [0, 1])")
    p.add_argument("--calib", type=Path, help="KITTI calib file, or a directory of <frame>.txt (for --out DIR)")
    p.add_argument("--image-shape", type=int, nargs=2, metavar=("H", "W"), help="clip projected 2D boxes to this image size")
    p.add_argument("--out", type=Path, help="FILE.json: all results as JSON; DIR: KITTI label files (needs --calib)")
    p.add_argument("--bev", type=Path, help="bird's-eye-view PNG (a directory when several inputs are given)")
    p.add_argument("--show", action="store_true", help="open an Open3D window per frame")
    p.add_argument("--quiet", action="store_true", help="no box table")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first bad file (exit 2, no JSON); default: report it and run the rest")
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


@dataclass
class RunState:
    """What the frame loop collected: one JSON record per good frame, the failed files, and
    whether any failure was unexpected (a bug rather than bad input)."""

    frames: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    unexpected: bool = False


def check_outputs(args: argparse.Namespace, num_files: int) -> None:
    """Raise OutputError now, before any detection, when an output cannot be written."""
    if args.out is not None:
        check_writable(args.out, directory=not is_json(args.out))
    if args.bev is not None:
        check_writable(args.bev, directory=num_files > 1)


def is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def run_frame(args: argparse.Namespace, detector, path: Path, bev_dir: Path | None) -> dict:
    """Detect in one file and write its per-frame outputs; returns its JSON record."""
    points = load_points(path, nonfinite=args.nonfinite)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det = detector.detect(points, score_threshold=args.score_thresh, source=str(path))
    for w in caught:
        log.warning("%s", w.message)
    if not args.quiet:
        print(format_table(path, det))
    if args.out is not None and not is_json(args.out):
        write_kitti(args.out, path, det, args.calib, args.image_shape)
    if args.bev is not None:
        from pointpillars_trt.viz.bev import render_bev

        target = bev_dir / f"{path.stem}.png" if bev_dir else args.bev
        render_bev(points, det.boxes, det.label_names, det.scores, target, title=f"{path.name} ({detector.source.describe()})")
        log.info("wrote %s", target)
    if args.show:
        from pointpillars_trt.viz import show_open3d

        show_open3d(points, det.boxes, det.label_names)
    return {"path": str(path), "num_points": det.num_points, **det.to_dict()}


def run_guarded(args: argparse.Namespace, detector, path: Path, bev_dir: Path | None, state: RunState) -> None:
    """:func:`run_frame` in its own guard: a failure is logged (one line) and recorded, and the
    next file runs; with ``--fail-fast`` a bad-input error ends the run as before."""
    try:
        state.frames.append(run_frame(args, detector, path, bev_dir))
    except PointPillarsError as exc:
        if args.fail_fast:
            raise
        text = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        log.error("%s", text)
        state.failed.append({"path": str(path), "error": text})
    except Exception as exc:  # a bug, not bad input: keep the other frames' results, exit 1 at the end
        if args.fail_fast:
            raise
        text = f"{path}: unexpected {type(exc).__name__}: {exc}"
        log.error("%s (a bug: please report it)", text)
        state.failed.append({"path": str(path), "error": text})
        state.unexpected = True


def run(args: argparse.Namespace) -> int:
    files = expand_inputs(args.paths)
    if args.out is not None and not is_json(args.out) and args.calib is None:
        raise PointPillarsError(f"--out {args.out}: KITTI label output needs --calib (or give a .json path)")
    check_outputs(args, len(files))
    detector = detector_from_args(args)
    log.info("model: %s; config %s; %s", detector.source.describe(), detector.config.name, detector.path)
    log.info("post-processing (%s): %s", detector.config.name, detector.config.postprocess.describe())
    if detector.source.is_random:
        log.warning("no trained demo model is shipped yet: using RANDOM weights, the boxes below are meaningless")
    bev_dir = args.bev if args.bev is not None and len(files) > 1 else None
    state = RunState()
    iterator = files
    if len(files) > 1:
        from tqdm import tqdm

        iterator = tqdm(files, desc="infer", unit="frame", disable=None)
    for path in iterator:
        run_guarded(args, detector, path, bev_dir, state)
    if args.out is not None and is_json(args.out):
        doc = {"model": detector.source.describe(), "backend": str(detector.backend), "path": detector.path,
               "frames": state.frames, "failed": state.failed}
        atomic_write_text(args.out, json.dumps(doc, indent=1))
        log.info("wrote %s", args.out)
    elif args.out is not None:
        log.info("wrote %d KITTI label files to %s", len(state.frames), args.out)
    if len(state.frames) > 1:
        totals = np.array([f["timings_ms"].get("total", 0.0) for f in state.frames])
        log.info("%d frames, median total %.2f ms", len(state.frames), float(np.median(totals)))
    log.info("%d ok / %d failed", len(state.frames), len(state.failed))
    if state.failed:
        return 1 if state.unexpected else 2
    return 0


def main(argv: list[str] | None = None) -> int:
    return tool_main(parse_args, run, log, argv)


if __name__ == "__main__":
    sys.exit(main())
