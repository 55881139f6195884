#!/usr/bin/env python3
"""Run two backends over the same frames and report how far apart they are.

    # box-level agreement on a directory of frames
    tools/compare_backends.py --frames ../shared/data/kitti_frames/cuda_pointpillars/velodyne_reduced \
        --a torch --b onnxruntime
    # plus the KITTI AP of each and the deltas, on a labelled split
    tools/compare_backends.py --data-root data/kitti --split val --ckpt model.pth \
        --a torch --b tensorrt --b-engine-dir engines/fp16 --json cmp.json

Boxes above --score are matched one to one by BEV IoU (same class, greedily by IoU). Reported:
boxes of A found by B (IoU at least --iou) and of B found by A, the largest score difference and
centre distance and the smallest IoU of matched boxes, and, with --data-root, the AP of both
backends (R40, moderate and all difficulties) and B - A.

Exit codes: 0 success, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from pathlib import Path

import numpy as np

from pointpillars_trt.errors import PointPillarsError
from pointpillars_trt.options import Backend

log = logging.getLogger("compare_backends")


@dataclass(frozen=True)
class Agreement:
    """Box-level agreement of B with A over a set of frames."""

    boxes_a: int
    found_in_b: int
    boxes_b: int
    found_in_a: int
    max_score_diff: float
    max_centre_dist: float
    min_iou: float

    @property
    def recall(self) -> float:
        return self.found_in_b / self.boxes_a if self.boxes_a else 1.0

    @property
    def precision(self) -> float:
        return self.found_in_a / self.boxes_b if self.boxes_b else 1.0


def _above(det, score: float) -> SimpleNamespace:
    keep = det.scores > score
    return SimpleNamespace(boxes=det.boxes[keep], scores=det.scores[keep], labels=det.labels[keep])


def agreement(dets_a, dets_b, score: float, iou: float) -> Agreement:
    """Per frame, the boxes above ``score`` of A and B matched one to one by BEV IoU >= ``iou``
    (same class), summed over the frames."""
    from pointpillars_trt.compare.detections import match_detections

    matches = [match_detections(_above(da, score), _above(db, score), iou) for da, db in zip(dets_a, dets_b)]
    hit = [m for m in matches if m.n_matched]
    return Agreement(
        boxes_a=sum(m.n_ref for m in matches), found_in_b=sum(m.n_matched for m in matches),
        boxes_b=sum(m.n_got for m in matches), found_in_a=sum(m.n_matched for m in matches),
        max_score_diff=max((m.max_score_diff for m in hit), default=0.0),
        max_centre_dist=max((m.max_center_diff for m in hit), default=0.0),
        min_iou=min((m.min_iou for m in hit), default=1.0),
    )


def make_detector(args, which: str):
    from pointpillars_trt.detector import build_detector

    return build_detector(None if getattr(args, f"{which}_engine_dir") else args.ckpt, getattr(args, f"{which}_engine_dir"),
                          config=args.config, backend=getattr(args, which), device=getattr(args, f"{which}_device"))


def frames_from_dir(directory: Path) -> list[tuple[str, Path]]:
    from pointpillars_trt.io.pointcloud import SUPPORTED_SUFFIXES

    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
    if not paths:
        raise PointPillarsError(f"{directory}: no point-cloud files")
    return [(p.stem, p) for p in paths]


def run(args) -> dict:
    from pointpillars_trt.io.pointcloud import load_points

    det_a, det_b = make_detector(args, "a"), make_detector(args, "b")
    log.info("A: %s; B: %s", det_a.path, det_b.path)
    report: dict = {"a": args.a, "b": args.b, "model": det_a.source.describe()}
    if args.data_root:
        from pointpillars_trt.eval import evaluate
        from pointpillars_trt.eval.dataset import load_frame_points, load_ground_truth, open_split
        from pointpillars_trt.io.kitti import detections_to_kitti_objects

        kitti = open_split(args.data_root, args.split)
        ids = kitti.frame_ids[: args.limit] if args.limit else kitti.frame_ids
        gts = load_ground_truth(kitti)[: len(ids)]
        dets_a, dets_b, kit_a, kit_b = [], [], [], []
        for fid in ids:
            pts = load_frame_points(kitti, fid, True, load_points)
            calib, shape = kitti.calibration(fid), kitti.image_shape(fid)
            for det, dets, kit in ((det_a, dets_a, kit_a), (det_b, dets_b, kit_b)):
                d = det.detect(pts, source=fid)
                dets.append(d)
                kit.append(detections_to_kitti_objects(d.boxes, d.label_names, d.scores, calib, shape))
        ap_a, ap_b = evaluate(gts, kit_a), evaluate(gts, kit_b)
        report["ap"] = {"a": ap_a["R40"], "b": ap_b["R40"]}
        report["ap_delta_R40"] = {c: {m: {k: ap_b["R40"][c][m][k] - ap_a["R40"][c][m][k] for k in ap_a["R40"][c][m]}
                                      for m in ap_a["R40"][c]} for c in ap_a["R40"]}
    else:
        dets_a, dets_b = [], []
        for fid, path in frames_from_dir(args.frames)[: args.limit or None]:
            pts = load_points(path)
            dets_a.append(det_a.detect(pts, source=str(path)))
            dets_b.append(det_b.detect(pts, source=str(path)))
    agr = agreement(dets_a, dets_b, args.score, args.iou)
    report["frames"] = len(dets_a)
    report["agreement"] = {**agr.__dict__, "recall": agr.recall, "precision": agr.precision,
                           "score_threshold": args.score, "iou_threshold": args.iou}
    report["median_total_ms"] = {"a": float(np.median([d.timings_ms["total"] for d in dets_a])),
                                 "b": float(np.median([d.timings_ms["total"] for d in dets_b]))}
    return report


def print_report(r: dict) -> None:
    a = r["agreement"]
    print(f"{r['frames']} frames, A = {r['a']}, B = {r['b']}, model {r['model']}")
    print(f"boxes with score > {a['score_threshold']}: A {a['boxes_a']}, B {a['boxes_b']}; "
          f"A found in B (IoU > {a['iou_threshold']}): {a['found_in_b']} ({100 * a['recall']:.2f}%), "
          f"B found in A: {a['found_in_a']} ({100 * a['precision']:.2f}%)")
    print(f"matched boxes: max score difference {a['max_score_diff']:.2e}, max centre distance "
          f"{a['max_centre_dist']:.2e} m, min BEV IoU {a['min_iou']:.4f}")
    print(f"median latency: A {r['median_total_ms']['a']:.2f} ms, B {r['median_total_ms']['b']:.2f} ms")
    if "ap_delta_R40" in r:
        print(f"{'R40 moderate AP':<20}{'A':>9}{'B':>9}{'B-A':>9}")
        for c, metrics in r["ap"]["a"].items():
            for m in ("bev", "3d"):
                va, vb = metrics[m]["moderate"], r["ap"]["b"][c][m]["moderate"]
                print(f"{c + ' ' + m:<20}{va:9.2f}{vb:9.2f}{vb - va:9.2f}")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--frames", type=Path, help="directory of point-cloud files")
    src.add_argument("--data-root", type=Path, help="KITTI-layout root: also compares AP on --split")
    p.add_argument("--split", default="val")
    p.add_argument("--limit", type=int, help="first N frames only")
    p.add_argument("--ckpt", type=Path, help="checkpoint (default: the shipped demo model)")
    p.add_argument("--config")
    for which, default in (("a", "torch"), ("b", "onnxruntime")):
        p.add_argument(f"--{which}", default=default, choices=Backend.values(), help=f"backend {which.upper()} (default {default})")
        p.add_argument(f"--{which}-device", help="cpu or cuda[:N] (default: as the backend picks)")
        p.add_argument(f"--{which}-engine-dir", type=Path)
    p.add_argument("--score", type=float, default=0.3, help="boxes above this score are compared")
    p.add_argument("--iou", type=float, default=0.9, help="BEV IoU above which two boxes are the same")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    try:
        report = run(args)
    except PointPillarsError as exc:
        log.error("%s", exc)
        return 2
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
