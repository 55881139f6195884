#!/usr/bin/env python3
"""Run two backends over the same frames and report how far apart they are.

    # box-level agreement on a directory of frames
    tools/compare_backends.py --frames ../shared/data/kitti_frames/cuda_pointpillars/velodyne_reduced \
        --a torch --b onnxruntime
    # plus the KITTI AP of each and the deltas, on a labelled split
    tools/compare_backends.py --data-root data/kitti --split val --ckpt model.pth \
        --a torch --b tensorrt --b-engine-dir engines/fp16 --json cmp.json

Boxes above --score are matched one to one by BEV IoU (same class, greedily by descending score of
A: pointpillars_trt.compare.match_detections). Reported:
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
from pathlib import Path

from pointpillars_trt.cli import LOG_FORMAT
from pointpillars_trt.errors import PointPillarsError
from pointpillars_trt.options import Backend

log = logging.getLogger("compare_backends")


def agreement(cmp) -> dict:
    """The report's ``agreement`` block from a :class:`~pointpillars_trt.compare.runs.RunComparison`
    of B against A: boxes of A found in B and of B found in A (the same one-to-one pairs)."""
    t = cmp.total
    return {"boxes_a": t.n_ref, "found_in_b": t.n_matched, "boxes_b": t.n_got, "found_in_a": t.n_matched,
            "max_score_diff": t.max_score_diff, "max_centre_dist": t.max_center_diff, "min_iou": t.min_iou,
            "recall": t.recall, "precision": t.precision, "score_threshold": cmp.min_score, "iou_threshold": cmp.iou_threshold}


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
    from pointpillars_trt.compare.runs import compare_runs, run_detectors, summarize
    from pointpillars_trt.io.pointcloud import load_points

    det_a, det_b = make_detector(args, "a"), make_detector(args, "b")
    log.info("A: %s; B: %s", det_a.path, det_b.path)
    report: dict = {"a": args.a, "b": args.b, "model": det_a.source.describe()}
    detectors = {"a": det_a, "b": det_b}
    if args.data_root:
        from pointpillars_trt.eval.dataset import load_frame_points, open_split

        kitti = open_split(args.data_root, args.split)
        ids = kitti.frame_ids[: args.limit] if args.limit else kitti.frame_ids
        results = run_detectors(detectors, ((fid, load_frame_points(kitti, fid, True, load_points)) for fid in ids))
        report.update(ap_report(kitti, results))
    else:
        frames = frames_from_dir(args.frames)[: args.limit or None]
        results = run_detectors(detectors, ((str(path), load_points(path)) for _, path in frames))
    report["frames"] = len(results.frames)
    report["agreement"] = agreement(compare_runs(results, "a", "b", iou_threshold=args.iou, min_score=args.score))
    report["median_total_ms"] = {k: summarize(results.timings_ms(k))["median"] for k in detectors}
    return report


def ap_report(kitti, results) -> dict:
    """KITTI R40 AP of runs ``a`` and ``b`` of ``results`` on the split's frames, and B - A."""
    from pointpillars_trt.eval import evaluate
    from pointpillars_trt.eval.dataset import load_ground_truth
    from pointpillars_trt.io.kitti import detections_to_kitti_objects

    gts = load_ground_truth(kitti)[: len(results.frames)]
    ap = {}
    for k in ("a", "b"):
        kit = [detections_to_kitti_objects(d.boxes, d.label_names, d.scores, kitti.calibration(fid), kitti.image_shape(fid))
               for fid, d in zip(results.frames, results[k])]
        ap[k] = evaluate(gts, kit)["R40"]
    delta = {c: {m: {k: ap["b"][c][m][k] - ap["a"][c][m][k] for k in ap["a"][c][m]} for m in ap["a"][c]} for c in ap["a"]}
    return {"ap": ap, "ap_delta_R40": delta}


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
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
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
