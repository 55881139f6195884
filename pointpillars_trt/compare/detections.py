"""Comparing two sets of detections of the same frame (backends, precisions, implementations).

* :func:`compare_detections`: exact agreement box by box (for FP32 against FP32);
* :func:`match_detections`: boxes matched one to one by rotated BEV IoU (for FP16, other runtimes).

Both take objects with ``boxes [N, 7]``, ``scores [N]`` and ``labels [N]`` (e.g. ``Detections``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DetectionDiff:
    """Agreement of two detection sets, box by box: each reference box is paired with the other
    set's box of the same class nearest to it (mutually nearest, centres within 0.5 m), so that two
    boxes whose scores are equal to float precision may swap places in the score order.
    ``max_box_diff`` and ``max_score_diff`` are over the pairs (yaw modulo 2 pi)."""

    n_ref: int
    n_got: int
    n_matched: int
    max_box_diff: float
    max_score_diff: float

    @property
    def same_count(self) -> bool:
        return self.n_ref == self.n_got

    def agrees(self, box_tol: float = 1e-4, score_tol: float = 1e-5) -> bool:
        """Every box paired (hence the same labels), boxes within ``box_tol``, scores within ``score_tol``."""
        return (self.n_ref == self.n_got == self.n_matched and self.max_box_diff <= box_tol
                and self.max_score_diff <= score_tol)


def compare_detections(ref: Any, got: Any) -> DetectionDiff:
    """Pair the boxes of two results with ``boxes``, ``scores``, ``labels`` (see :class:`DetectionDiff`)."""
    rb, gb = np.asarray(ref.boxes, np.float64).reshape(-1, 7), np.asarray(got.boxes, np.float64).reshape(-1, 7)
    if len(rb) == 0 or len(gb) == 0:
        return DetectionDiff(len(rb), len(gb), 0, 0.0, 0.0)
    dist = np.linalg.norm(rb[:, None, :2] - gb[None, :, :2], axis=2)
    dist[np.asarray(ref.labels)[:, None] != np.asarray(got.labels)[None, :]] = np.inf
    nearest_g, nearest_r = dist.argmin(axis=1), dist.argmin(axis=0)
    ri = np.flatnonzero((nearest_r[nearest_g] == np.arange(len(rb))) & (dist.min(axis=1) <= 0.5))
    gi = nearest_g[ri]
    if len(ri) == 0:
        return DetectionDiff(len(rb), len(gb), 0, 0.0, 0.0)
    d = np.abs(gb[gi] - rb[ri])
    d[:, 6] = np.abs((gb[gi, 6] - rb[ri, 6] + math.pi) % (2 * math.pi) - math.pi)
    score = np.abs(np.asarray(got.scores, np.float64)[gi] - np.asarray(ref.scores, np.float64)[ri])
    return DetectionDiff(len(rb), len(gb), len(ri), float(d.max()), float(score.max()))


@dataclass(frozen=True)
class BoxMatch:
    """Boxes of two results matched one to one (same label, BEV IoU >= ``iou_threshold``),
    greedily by IoU. ``recall`` = matched / reference boxes; ``precision`` = matched / other boxes.
    The ``max_*``/``mean_iou`` fields are over matched pairs."""

    n_ref: int
    n_got: int
    n_matched: int
    mean_iou: float
    min_iou: float
    max_center_diff: float
    max_size_diff: float
    max_yaw_diff: float
    max_score_diff: float

    @property
    def recall(self) -> float:
        return self.n_matched / self.n_ref if self.n_ref else 1.0

    @property
    def precision(self) -> float:
        return self.n_matched / self.n_got if self.n_got else 1.0


def match_detections(ref: Any, got: Any, iou_threshold: float = 0.5) -> BoxMatch:
    """Match ``got`` to ``ref`` by rotated BEV IoU (see :class:`BoxMatch`)."""
    from ..postprocess.nms import iou_bev

    rb, gb = np.asarray(ref.boxes, np.float64), np.asarray(got.boxes, np.float64)
    if len(rb) == 0 or len(gb) == 0:
        return BoxMatch(len(rb), len(gb), 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    iou = iou_bev(rb, gb)
    iou[np.asarray(ref.labels)[:, None] != np.asarray(got.labels)[None, :]] = 0.0
    pairs: list[tuple[int, int]] = []
    used_r, used_g = set(), set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < iou_threshold:
            break
        if i in used_r or j in used_g:
            continue
        used_r.add(i), used_g.add(j), pairs.append((i, j))
    if not pairs:
        return BoxMatch(len(rb), len(gb), 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    ri, gi = np.array(pairs).T
    ious = iou[ri, gi]
    yaw = np.abs((gb[gi, 6] - rb[ri, 6] + math.pi) % (2 * math.pi) - math.pi)
    return BoxMatch(
        len(rb), len(gb), len(pairs), float(ious.mean()), float(ious.min()),
        float(np.linalg.norm(gb[gi, :3] - rb[ri, :3], axis=1).max()), float(np.abs(gb[gi, 3:6] - rb[ri, 3:6]).max()),
        float(yaw.max()), float(np.abs(np.asarray(got.scores)[gi] - np.asarray(ref.scores)[ri]).max()),
    )
