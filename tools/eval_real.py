#!/usr/bin/env python3
"""Recall and false positives of a model on the real KITTI frames in ../shared (synthetic-to-real check).

    python tools/eval_real.py                                 # the shipped demo model
    python tools/eval_real.py --ckpt runs/model.safetensors --json real.json

Two checks, per class and range bin (0-20, 20-40, 40+ m):

* ``cuda_pointpillars/``: the 10 frames against NVIDIA CUDA-PointPillars' predictions
  (``pred_velo/``, OpenPCDet's pointpillar_7728 weights): the reference boxes with score >
  ``--ref-score`` (0.5) are counted; one is found by a model box of its class with score >
  ``--recall-score`` (0.3) at BEV IoU >= ``--iou`` (0.5). A model box with score > ``--false-score``
  (0.5) overlapping no reference box of its class (any score) is false.
* ``zhulf0804/`` frame 000134 against its real KITTI label (``label_2`` + ``calib``; DontCare and
  classes the model lacks are not counted).

These frames are validation only: no training data is ever made from them.
Exit codes: 0 success, 2 bad input (frames directory, checkpoint, thresholds).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from pointpillars_trt.cli import add_detector_arguments, detector_from_args  # noqa: E402
from pointpillars_trt.errors import DatasetError, PointPillarsError  # noqa: E402
from pointpillars_trt.io.kitti import Calibration, boxes_camera_to_lidar, read_label  # noqa: E402
from pointpillars_trt.io.pointcloud import load_points  # noqa: E402
from pointpillars_trt.train.real_eval import FrameBoxes, Tally, Thresholds, read_pred_velo, score_frame  # noqa: E402

log = logging.getLogger("eval_real")
DEFAULT_FRAMES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kitti_frames"
LABELLED_FRAME = "000134"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_detector_arguments(p)
    p.add_argument("--frames", type=Path, default=DEFAULT_FRAMES, help="kitti_frames root (cuda_pointpillars/, zhulf0804/)")
    p.add_argument("--ref-score", type=float, default=0.5, help="reference boxes counted above this score")
    p.add_argument("--recall-score", type=float, default=0.3, help="model boxes that can find a reference")
    p.add_argument("--false-score", type=float, default=0.5, help="model boxes that count as false when unmatched")
    p.add_argument("--iou", type=float, default=0.5, help="BEV IoU to match")
    p.add_argument("--json", type=Path, help="write the summary here")
    return p.parse_args(argv)


def detections_boxes(det) -> FrameBoxes:
    return FrameBoxes(det.boxes.astype(np.float64), tuple(det.label_names), det.scores.astype(np.float64))


def label_boxes(label: Path, calib: Path) -> FrameBoxes:
    """A KITTI label file as LiDAR boxes (DontCare dropped)."""
    objs = [o for o in read_label(label) if o.type != "DontCare"]
    cam = np.array([o.camera_box() for o in objs]).reshape(-1, 7)
    boxes = boxes_camera_to_lidar(cam, Calibration.from_file(calib)) if len(objs) else np.zeros((0, 7))
    return FrameBoxes(boxes, tuple(o.type for o in objs), np.ones(len(objs)))


def reference_frames(root: Path) -> list[tuple[Path, FrameBoxes]]:
    """``(cloud, reference boxes)`` of every CUDA-PointPillars frame (read and checked up front)."""
    base = root / "cuda_pointpillars"
    clouds = sorted((base / "velodyne_reduced").glob("*.bin"))
    if not clouds:
        raise DatasetError(f"{base / 'velodyne_reduced'}: no .bin frames")
    out = []
    for c in clouds:
        ref = base / "pred_velo" / f"{c.stem}.txt"
        if not ref.is_file():
            raise DatasetError(f"{ref}: missing reference predictions for {c}")
        out.append((c, read_pred_velo(ref)))
    return out


def evaluate(det, root: Path, refs: list[tuple[Path, FrameBoxes]], th: Thresholds) -> dict:
    """The summary dict: ``cuda_pointpillars`` and ``kitti_000134`` tallies per class."""
    classes = det.config.classes
    tallies: dict[str, Tally] = {}
    for cloud, ref in refs:
        score_frame(ref, detections_boxes(det.detect(load_points(cloud), source=str(cloud))), classes, th, tallies)
    out = {"thresholds": vars(th), "cuda_pointpillars": {k: t.to_dict() for k, t in tallies.items()}}
    z = root / "zhulf0804"
    cloud = z / "velodyne_reduced" / f"{LABELLED_FRAME}.bin"
    if cloud.is_file():
        labelled = label_boxes(z / "label_2" / f"{LABELLED_FRAME}.txt", z / "calib" / f"{LABELLED_FRAME}.txt")
        lab_th = Thresholds(ref_score=0.0, recall_score=th.recall_score, false_score=th.false_score, iou=th.iou)
        t134: dict[str, Tally] = {}
        score_frame(labelled, detections_boxes(det.detect(load_points(cloud), source=str(cloud))), classes, lab_th, t134)
        out[f"kitti_{LABELLED_FRAME}"] = {k: t.to_dict() for k, t in t134.items()}
    return out


def summary_lines(summary: dict) -> list[str]:
    """One line per (check, class)."""
    lines = []
    for check in ("cuda_pointpillars", f"kitti_{LABELLED_FRAME}"):
        for name, t in summary.get(check, {}).items():
            bins = " ".join(f"{b} {v['found']}/{v['references']}" for b, v in t["by_range"].items())
            fpf = t["false_per_frame"]
            lines.append(f"{check} {name}: found {t['found']}/{t['references']} ({bins}); "
                         f"false {t['false']}/{t['predicted_above_false_score']} ({fpf:.2f} per frame)")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        th = Thresholds(args.ref_score, args.recall_score, args.false_score, args.iou)
        if not (0.0 < th.iou <= 1.0):
            raise DatasetError(f"--iou must be in (0, 1], got {th.iou}")
        if not args.frames.is_dir():
            raise DatasetError(f"--frames {args.frames}: not a directory")
        refs = reference_frames(args.frames)
        det = detector_from_args(args)
        try:
            summary = evaluate(det, args.frames, refs, th)
        finally:
            det.close()
        summary["model"] = str(args.ckpt) if args.ckpt else "demo model"
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
    except (PointPillarsError, OSError) as exc:
        log.error("%s", exc)
        return 2
    for line in summary_lines(summary):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
