#!/usr/bin/env python3
"""Benchmark the KITTI evaluation on a synthetic val-sized split.

Builds ``--frames`` frames (default 3769, KITTI val) with about ``--gt`` ground-truth objects
(Car / Pedestrian / Cyclist / Van / DontCare) and ``--dt`` predictions each (noisy copies of the
ground truth plus random false positives), then times ``evaluate()`` on ``--threads`` numba threads.
The first run includes JIT compilation (or loading numba's on-disk cache); the second is warm.

    .venv/bin/python benchmarks/bench_eval.py [--frames 3769] [--gt 20] [--dt 50] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.io.kitti import (  # noqa: E402
    Calibration,
    KittiObject,
    boxes_camera_to_lidar,
    project_boxes_to_image,
)

IMAGE_SHAPE = (375, 1242)
# (name, share of objects, (l, h, w) mean size in metres)
CLASSES = (
    ("Car", 0.6, (3.9, 1.56, 1.6)),
    ("Pedestrian", 0.15, (0.8, 1.73, 0.6)),
    ("Cyclist", 0.1, (1.76, 1.73, 0.6)),
    ("Van", 0.05, (5.0, 2.2, 1.9)),
    ("DontCare", 0.1, (3.9, 1.56, 1.6)),
)


def synthetic_calibration() -> Calibration:
    """A pinhole camera looking along LiDAR +x, mounted at the LiDAR origin."""
    p2 = np.array([[720.0, 0, 620.0, 0], [0, 720.0, 180.0, 0], [0, 0, 1.0, 0]])
    velo_to_cam = np.array([[0, -1.0, 0, 0], [0, 0, -1.0, 0], [1.0, 0, 0, 0]])
    return Calibration(P2=p2, R0_rect=np.eye(3), Tr_velo_to_cam=velo_to_cam)


def _objects(cam: np.ndarray, names, calib, rng, scores=None) -> list[KittiObject]:
    bbox = project_boxes_to_image(boxes_camera_to_lidar(cam, calib), calib, IMAGE_SHAPE)
    alpha = cam[:, 6] - np.arctan2(cam[:, 0], cam[:, 2])
    out = []
    for i, name in enumerate(names):
        dontcare = name == "DontCare"
        out.append(
            KittiObject(
                type=name,
                truncated=-1.0 if dontcare else float(rng.choice([0.0, 0.0, 0.2, 0.4])),
                occluded=-1 if dontcare else int(rng.integers(0, 3)),
                alpha=-10.0 if dontcare else alpha[i],
                bbox=bbox[i],
                dimensions=(-1, -1, -1) if dontcare else (cam[i, 4], cam[i, 5], cam[i, 3]),
                location=(-1000, -1000, -1000) if dontcare else cam[i, :3],
                rotation_y=-10.0 if dontcare else cam[i, 6],
                score=None if scores is None else scores[i],
            )
        )
    return out


def make_split(frames: int, n_gt: int, n_dt: int, seed: int = 0):
    """``(gt_annos, dt_annos)`` for ``frames`` synthetic frames."""
    rng = np.random.default_rng(seed)
    calib = synthetic_calibration()
    names = np.array([c[0] for c in CLASSES])
    shares = np.array([c[1] for c in CLASSES])
    sizes = {c[0]: np.array(c[2]) for c in CLASSES}
    gt_annos, dt_annos = [], []
    for _ in range(frames):
        n = max(1, int(rng.poisson(n_gt)))
        kinds = rng.choice(names, size=n, p=shares)
        cam = np.empty((n, 7))
        cam[:, 0] = rng.uniform(-15, 15, n)
        cam[:, 1] = rng.uniform(1.4, 1.9, n)
        cam[:, 2] = rng.uniform(6, 60, n)
        dims = np.stack([sizes[k] for k in kinds]) * rng.uniform(0.9, 1.1, (n, 3))
        cam[:, 3:6] = dims
        cam[:, 6] = rng.uniform(-np.pi, np.pi, n)
        gt_annos.append(_objects(cam, kinds, calib, rng))

        real = kinds != "DontCare"
        m = max(0, int(rng.poisson(n_dt)))
        n_hit = min(int(real.sum()), int(0.8 * m))
        hit = rng.permutation(np.flatnonzero(real))[:n_hit]
        det = cam[hit].copy()
        det[:, [0, 2]] += rng.normal(0, 0.15, (n_hit, 2))
        det[:, 3:6] *= rng.uniform(0.95, 1.05, (n_hit, 3))
        det[:, 6] += rng.normal(0, 0.05, n_hit)
        det_names = [k if k != "Van" else "Car" for k in kinds[hit]]
        n_fp = m - n_hit
        fp = np.empty((n_fp, 7))
        fp[:, 0] = rng.uniform(-15, 15, n_fp)
        fp[:, 1] = rng.uniform(1.4, 1.9, n_fp)
        fp[:, 2] = rng.uniform(6, 60, n_fp)
        fp_names = rng.choice(["Car", "Pedestrian", "Cyclist"], size=n_fp)
        fp[:, 3:6] = np.stack([sizes[k] for k in fp_names]) if n_fp else np.zeros((0, 3))
        fp[:, 6] = rng.uniform(-np.pi, np.pi, n_fp)
        boxes = np.concatenate([det, fp])
        scores = np.concatenate([rng.uniform(0.3, 1.0, n_hit), rng.uniform(0.05, 0.7, n_fp)])
        dt_annos.append(_objects(boxes, det_names + list(fp_names), calib, rng, scores))
    return gt_annos, dt_annos


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=3769)
    parser.add_argument("--gt", type=int, default=20, help="mean ground-truth objects per frame")
    parser.add_argument("--dt", type=int, default=50, help="mean predictions per frame")
    parser.add_argument("--threads", type=int, default=2, help="numba threads")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)

    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    from pointpillars_trt.eval import evaluate, format_table

    t0 = time.perf_counter()
    gt, dt = make_split(args.frames, args.gt, args.dt)
    n_gt = sum(len(a) for a in gt)
    n_dt = sum(len(a) for a in dt)
    print(f"synthetic split: {args.frames} frames, {n_gt} GT ({n_gt / args.frames:.1f}/frame), "
          f"{n_dt} predictions ({n_dt / args.frames:.1f}/frame), built in {time.perf_counter() - t0:.1f} s")
    result = None
    for run in range(args.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = evaluate(gt, dt)
        note = " (includes JIT compile / cache load)" if run == 0 else ""
        print(f"evaluate() run {run + 1}: {time.perf_counter() - t0:.2f} s wall, {time.process_time() - c0:.2f} s CPU "
              f"on {numba.get_num_threads()} threads{note}")
    print(format_table(result).split("\n\n")[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
