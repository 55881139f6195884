"""Run a trained model on a split and score it with the project's KITTI evaluation."""

from __future__ import annotations

import time
from typing import Callable, Mapping

import torch

from ..network import create_backend
from ..config import PointPillarsConfig
from ..detector import Detector
from ..io.kitti import KittiObject, detections_to_kitti_objects
from .kitti_data import KittiFrames


def predict_frames(
    cfg: PointPillarsConfig,
    state_dict: Mapping[str, torch.Tensor],
    frames: KittiFrames,
    device: str = "cpu",
    score_threshold: float | None = None,
    limit: int | None = None,
) -> list[list[KittiObject]]:
    """Detections of each frame of ``frames`` (the first ``limit``) as KITTI result objects."""
    backend = create_backend("torch", cfg=cfg, state_dict=state_dict, device=device)
    det = Detector.from_backend(cfg, backend)
    out = []
    n = len(frames) if limit is None else min(limit, len(frames))
    for i in range(n):
        d = det.detect(frames.points(i), score_threshold=score_threshold, source=frames.ids[i])
        out.append(detections_to_kitti_objects(d.boxes, d.label_names, d.scores, frames.calib(i), frames.image_shape(i)))
    det.close()
    return out


def evaluate_model(
    cfg: PointPillarsConfig,
    state_dict: Mapping[str, torch.Tensor],
    frames: KittiFrames,
    device: str = "cpu",
    limit: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Predict ``frames`` and evaluate: returns :func:`pointpillars_trt.eval.evaluate`'s dict plus
    ``"table"`` (the printed AP table), ``"frames"`` and ``"seconds"``."""
    from ..eval import evaluate, format_table

    t0 = time.perf_counter()
    dt = predict_frames(cfg, state_dict, frames, device, limit=limit)
    gt = [frames.objects(i) for i in range(len(dt))]
    t1 = time.perf_counter()
    classes = [c for c in cfg.classes]
    result = evaluate(gt, dt, classes=classes)
    result["table"] = format_table(result)
    result["frames"] = len(dt)
    result["seconds"] = time.perf_counter() - t0
    log(f"evaluated {len(dt)} frames of split {frames.split!r}: inference {t1 - t0:.1f} s, evaluation {time.perf_counter() - t1:.1f} s")
    return result
