"""Score a model's boxes against reference boxes on real frames: recall and false positives per
class and range bin (the synthetic-to-real check of ``tools/eval_real.py``).

Boxes are canonical LiDAR boxes ``[N, 7]`` ``(x, y, z, l, w, h, yaw)``; class names are strings.
A reference box is *found* when an unused model box of the same class with score above the
recall threshold overlaps it with BEV IoU >= ``iou`` (greedy, best reference first, best model
box first). A model box of a class with score above the false threshold is *false* when it
overlaps no reference box of that class (any reference score) with BEV IoU >= ``iou``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DatasetError
from ..postprocess import iou_bev

#: Range bins ``[lo, hi)`` in metres (BEV distance from the sensor).
RANGE_BINS: tuple[tuple[float, float], ...] = ((0.0, 20.0), (20.0, 40.0), (40.0, 1e9))

#: ``class_id`` order of CUDA-PointPillars' ``pred_velo/*.txt``.
PRED_VELO_CLASSES = ("Car", "Pedestrian", "Cyclist")


@dataclass(frozen=True)
class FrameBoxes:
    """Boxes of one frame: ``boxes [N, 7]`` float64, ``names`` N class names, ``scores [N]`` (1.0 for labels)."""

    boxes: np.ndarray
    names: tuple[str, ...]
    scores: np.ndarray

    def of(self, name: str, min_score: float = -np.inf) -> "FrameBoxes":
        """The boxes of class ``name`` with score > ``min_score``, best score first."""
        keep = np.flatnonzero((np.asarray(self.names) == name) & (self.scores > min_score)) if self.names else np.zeros(0, int)
        keep = keep[np.argsort(-self.scores[keep], kind="stable")]
        return FrameBoxes(self.boxes[keep].reshape(-1, 7), tuple(self.names[i] for i in keep), self.scores[keep])


def read_pred_velo(path: str | Path) -> FrameBoxes:
    """A CUDA-PointPillars ``pred_velo`` file: rows ``x y z l w h yaw class_id score``."""
    path = Path(path)
    try:
        table = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a pred_velo file ({exc})") from exc
    if table.size == 0:
        return FrameBoxes(np.zeros((0, 7)), (), np.zeros(0))
    if table.shape[1] != 9 or not np.isfinite(table).all():
        raise DatasetError(f"{path}: expected 9 finite columns (x y z l w h yaw class_id score), got {table.shape[1]}")
    ids = table[:, 7].astype(int)
    if ids.min() < 0 or ids.max() >= len(PRED_VELO_CLASSES):
        raise DatasetError(f"{path}: class_id must be 0..{len(PRED_VELO_CLASSES) - 1}, got {ids.max()}")
    return FrameBoxes(table[:, :7], tuple(PRED_VELO_CLASSES[i] for i in ids), table[:, 8])


def range_bin(boxes: np.ndarray) -> np.ndarray:
    """``[N]`` int index into :data:`RANGE_BINS` of each box's BEV distance."""
    d = np.hypot(boxes[:, 0], boxes[:, 1]) if len(boxes) else np.zeros(0)
    return np.array([next(i for i, (lo, hi) in enumerate(RANGE_BINS) if lo <= v < hi) for v in d], dtype=np.int64)


def match(ref: FrameBoxes, pred: FrameBoxes, iou: float) -> np.ndarray:
    """``[len(ref)]`` bool: reference box found by a distinct ``pred`` box (both one class, best first)."""
    found = np.zeros(len(ref.names), dtype=bool)
    if not len(ref.names) or not len(pred.names):
        return found
    ious = iou_bev(ref.boxes, pred.boxes)
    used = np.zeros(len(pred.names), dtype=bool)
    for r in range(len(ref.names)):
        cand = np.flatnonzero(~used & (ious[r] >= iou))
        if len(cand):
            used[cand[0]] = True
            found[r] = True
    return found


@dataclass
class Tally:
    """Counts of one class: references and found per range bin, false model boxes, frames."""

    refs: list[int] = field(default_factory=lambda: [0] * len(RANGE_BINS))
    found: list[int] = field(default_factory=lambda: [0] * len(RANGE_BINS))
    predicted: int = 0
    false: int = 0
    frames: int = 0

    def to_dict(self) -> dict:
        bins = [f"{lo:g}-{hi:g}m" if hi < 1e8 else f"{lo:g}m+" for lo, hi in RANGE_BINS]
        return {
            "references": sum(self.refs), "found": sum(self.found),
            "recall": sum(self.found) / sum(self.refs) if sum(self.refs) else None,
            "by_range": {b: {"references": r, "found": f} for b, r, f in zip(bins, self.refs, self.found)},
            "predicted_above_false_score": self.predicted, "false": self.false,
            "false_per_frame": self.false / self.frames if self.frames else None,
            "precision": (self.predicted - self.false) / self.predicted if self.predicted else None,
        }


@dataclass(frozen=True)
class Thresholds:
    """``ref_score``: reference boxes counted; ``recall_score``/``false_score``: model boxes; ``iou``: BEV IoU."""

    ref_score: float = 0.5
    recall_score: float = 0.3
    false_score: float = 0.5
    iou: float = 0.5


def score_frame(ref: FrameBoxes, pred: FrameBoxes, classes: Sequence[str], th: Thresholds, tallies: dict[str, Tally]) -> None:
    """Add one frame's counts to ``tallies[class]`` (created as needed)."""
    for name in classes:
        t = tallies.setdefault(name, Tally())
        t.frames += 1
        counted = ref.of(name, th.ref_score)
        found = match(counted, pred.of(name, th.recall_score), th.iou)
        for b, f in zip(range_bin(counted.boxes), found):
            t.refs[b] += 1
            t.found[b] += int(f)
        confident = pred.of(name, th.false_score)
        every_ref = ref.of(name)
        if len(confident.names):
            best = iou_bev(confident.boxes, every_ref.boxes).max(axis=1) if len(every_ref.names) else np.zeros(len(confident.names))
            t.predicted += len(confident.names)
            t.false += int((best < th.iou).sum())
