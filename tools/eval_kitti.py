#!/usr/bin/env python3
"""Evaluate a detector (or existing result files) on a KITTI split with the official metrics.

    # the shipped demo model
    tools/eval_kitti.py --data-root data/kitti
    # a checkpoint on a backend, results kept in --out-dir (an interrupted run resumes)
    tools/eval_kitti.py --data-root data/kitti --ckpt pointpillar_7728.pth --backend torch --out-dir runs/val
    # TensorRT engines built from that checkpoint
    tools/eval_kitti.py --data-root data/kitti --ckpt pointpillar_7728.pth --engine-dir engines/fp16
    # result files of any detector (KITTI label format with a score column; missing file = no detections)
    tools/eval_kitti.py --data-root data/kitti --pred-dir results/ --json ap.json

Reads ``ROOT/ImageSets/<split>.txt`` and ``ROOT/training/{label_2,calib,image_2,velodyne*}``. Points
are cropped to the camera field of view as OpenPCDet does (``velodyne_reduced`` if present, else
``velodyne`` cropped); ``--no-fov-only`` feeds the full scan and keeps detections whose centre is in
the image. Prints OpenPCDet's table; ``--json FILE`` writes
``{"R11": T, "R40": T, "loose": {"R11": T, "R40": T}}`` with ``T[class][metric][difficulty]`` in percent.

Exit codes: 0 success, 2 bad input (missing split / labels / calib, malformed files, predictions
for unknown frames, unusable model).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.cli import LOG_FORMAT, add_detector_arguments, detector_from_args  # noqa: E402
from pointpillars_trt.errors import PointPillarsError  # noqa: E402
from pointpillars_trt.io.atomic import atomic_write_text, check_writable  # noqa: E402

log = logging.getLogger("eval_kitti")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True, help="KITTI root (holds ImageSets/ and training/)")
    parser.add_argument("--split", default="val", help="ImageSets/<split>.txt (default: val)")
    parser.add_argument("--pred-dir", type=Path, help="evaluate existing KITTI result files, run no model")
    add_detector_arguments(parser)
    parser.add_argument("--out-dir", type=Path, help="where result files go (default: kitti_results/<model>_<backend>_<split>)")
    parser.add_argument(
        "--fov-only",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="feed only points in the camera view, as OpenPCDet (default: on)",
    )
    parser.add_argument("--classes", nargs="+", default=["Car", "Pedestrian", "Cyclist"])
    parser.add_argument("--json", type=Path, help="write the AP tables to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.pred_dir is not None and (args.ckpt is not None or args.engine_dir is not None):
        parser.error("--pred-dir evaluates existing results: it cannot be combined with --ckpt or --engine-dir")
    return args


def _model_tag(args: argparse.Namespace) -> str:
    name = args.ckpt.stem if args.ckpt is not None else "demo"
    if args.engine_dir is not None:
        name += f"_{args.engine_dir.resolve().name}"
    return f"{name}_{args.backend}"


def _run_record(args: argparse.Namespace) -> dict:
    """What produced the result files (a resumed run must match it)."""
    return {
        "ckpt": str(args.ckpt.resolve()) if args.ckpt is not None else "demo",
        "engine_dir": str(args.engine_dir.resolve()) if args.engine_dir is not None else None,
        "config": args.config,
        "backend": args.backend,
        "fov_only": args.fov_only,
    }


def run(args: argparse.Namespace) -> dict:
    from pointpillars_trt.eval import evaluate, format_table
    from pointpillars_trt.eval.dataset import (
        check_run_meta,
        load_ground_truth,
        load_predictions,
        open_split,
        predict_split,
    )

    if args.json is not None:
        check_writable(args.json)  # before a long detection run, not after it
    kitti = open_split(args.data_root, args.split)
    log.info("split %s: %d frames", args.split, len(kitti.frame_ids))
    gt_annos = load_ground_truth(kitti)

    if args.pred_dir is not None:
        pred_dir = args.pred_dir
    else:
        from pointpillars_trt.io.pointcloud import load_points

        pred_dir = args.out_dir or Path("kitti_results") / f"{_model_tag(args)}_{args.split}"
        check_run_meta(Path(pred_dir), _run_record(args))
        detector = detector_from_args(args)
        (log.warning if detector.source.is_random else log.info)("model: %s; %s", detector.source.describe(), detector.path)
        t0 = time.perf_counter()
        done = predict_split(
            kitti, detector.detect, pred_dir, load_points, fov_only=args.fov_only, progress=not args.no_progress
        )
        skipped = len(kitti.frame_ids) - done
        log.info("detected %d frames in %.1f s (%d already done); results in %s", done, time.perf_counter() - t0, skipped, pred_dir)

    dt_annos = load_predictions(pred_dir, kitti.frame_ids)
    t0 = time.perf_counter()
    result = evaluate(gt_annos, dt_annos, classes=tuple(args.classes))
    log.info("evaluated %d frames in %.1f s", len(kitti.frame_ids), time.perf_counter() - t0)
    print(format_table(result))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
        log.info("wrote %s", args.json)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    try:
        run(args)
    except (PointPillarsError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except ModuleNotFoundError as exc:
        log.error("cannot run a model: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
