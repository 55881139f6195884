"""Comparing two sets of detections of the same frame (backends, precisions, implementations).

* :func:`compare_detections`: exact agreement box by box (for FP32 against FP32);
* :func:`match_detections`: THE matcher: boxes paired one to one by rotated BEV IoU (for FP16,
  other runtimes, other voxelizers), greedily by descending reference score;
* :func:`select_above`, :func:`uncapped_threshold`: which boxes to compare.

Every function takes detection sets with ``boxes [N, 7]`` (x, y, z centre, dx, dy, dz, yaw CCW
about +z, the package's box convention), ``scores [N]`` and ``labels [N]`` (class indices), e.g.
``Detections`` or :class:`~pointpillars_trt.postprocess.RawDetections`. Yaw differences are taken
modulo 2 pi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np


def _yaw_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| wrapped into [0, pi]."""
    return np.abs((a - b + math.pi) % (2 * math.pi) - math.pi)


# ---- exact ----------------------------------------------------------------------------------
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
    """Exact comparison of two detection sets (see :class:`DetectionDiff`).

    Args:
        ref: reference set, ``boxes [N, 7]``, ``scores [N]``, ``labels [N]``.
        got: other set, ``boxes [M, 7]``, ``scores [M]``, ``labels [M]``.

    Returns:
        DetectionDiff: counts, pairs, and the largest box-parameter and score differences (0 when no pair).
    """
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
    d[:, 6] = _yaw_diff(gb[gi, 6], rb[ri, 6])
    score = np.abs(np.asarray(got.scores, np.float64)[gi] - np.asarray(ref.scores, np.float64)[ri])
    return DetectionDiff(len(rb), len(gb), len(ri), float(d.max()), float(score.max()))


# ---- matched by IoU -------------------------------------------------------------------------
@dataclass(frozen=True)
class BoxMatch:
    """Boxes of two sets matched one to one by :func:`match_detections`.

    ``recall`` = matched / reference boxes; ``precision`` = matched / other boxes (1 when there is
    none). ``mean_iou``, ``min_iou`` and the ``max_*`` differences are over the matched pairs (centre:
    Euclidean distance in m; size: largest of |d dx|, |d dy|, |d dz|; yaw modulo 2 pi); all are 0
    when nothing matched. :meth:`merge` sums several frames."""

    n_ref: int
    n_got: int
    n_matched: int
    mean_iou: float
    min_iou: float
    max_center_diff: float
    max_size_diff: float
    max_yaw_diff: float
    max_score_diff: float

    @classmethod
    def unmatched(cls, n_ref: int, n_got: int) -> "BoxMatch":
        return cls(n_ref, n_got, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def recall(self) -> float:
        return self.n_matched / self.n_ref if self.n_ref else 1.0

    @property
    def precision(self) -> float:
        return self.n_matched / self.n_got if self.n_got else 1.0

    def merge(self, other: "BoxMatch") -> "BoxMatch":
        """Both frames together: counts summed, ``mean_iou`` weighted by pairs, ``min_iou`` over
        the frames that have pairs, maxima of the maxima."""
        n = self.n_matched + other.n_matched
        if not n:
            return BoxMatch.unmatched(self.n_ref + other.n_ref, self.n_got + other.n_got)
        mins = [m.min_iou for m in (self, other) if m.n_matched]
        return BoxMatch(
            self.n_ref + other.n_ref, self.n_got + other.n_got, n,
            (self.mean_iou * self.n_matched + other.mean_iou * other.n_matched) / n, min(mins),
            max(self.max_center_diff, other.max_center_diff), max(self.max_size_diff, other.max_size_diff),
            max(self.max_yaw_diff, other.max_yaw_diff), max(self.max_score_diff, other.max_score_diff),
        )

    @staticmethod
    def total(matches: Iterable["BoxMatch"]) -> "BoxMatch":
        """:meth:`merge` of all ``matches`` (no match: ``BoxMatch.unmatched(0, 0)``)."""
        out = BoxMatch.unmatched(0, 0)
        for m in matches:
            out = out.merge(m)
        return out


def greedy_pairs(iou: np.ndarray, ref_scores: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs of an IoU matrix, greedily by descending reference score.

    Args:
        iou: ``[N, M]`` IoU of reference box i and other box j (0 where the pair is not allowed,
            e.g. different labels).
        ref_scores: ``[N]`` reference scores.
        iou_threshold: smallest IoU of a pair (inclusive).

    Returns:
        ``(ref_index [K], got_index [K])`` int64, in the order the pairs were made. Reference boxes
        are visited best score first (equal scores: lower index first); each takes the free other box
        of highest IoU >= ``iou_threshold`` (equal IoUs: lower index first), or none.
    """
    n, m = iou.shape
    free = np.ones(m, bool)
    ri, gi = [], []
    for i in np.argsort(-np.asarray(ref_scores, np.float64), kind="stable"):
        cand = np.where(free, iou[i], -np.inf)
        j = int(np.argmax(cand)) if m else -1
        if j >= 0 and cand[j] >= iou_threshold:
            free[j] = False
            ri.append(int(i))
            gi.append(j)
    return np.asarray(ri, np.int64), np.asarray(gi, np.int64)


def match_detections(ref: Any, got: Any, iou_threshold: float = 0.5) -> BoxMatch:
    """Match ``got`` to ``ref`` one to one by rotated BEV IoU and the same label.

    Args:
        ref: reference set, ``boxes [N, 7]``, ``scores [N]``, ``labels [N]``.
        got: other set, ``boxes [M, 7]``, ``scores [M]``, ``labels [M]``.
        iou_threshold: smallest BEV IoU (:func:`~pointpillars_trt.postprocess.nms.iou_bev`) of a pair.

    Returns:
        BoxMatch of the pairs :func:`greedy_pairs` makes (best reference score first).
    """
    from ..postprocess.nms import iou_bev

    rb, gb = np.asarray(ref.boxes, np.float64).reshape(-1, 7), np.asarray(got.boxes, np.float64).reshape(-1, 7)
    if len(rb) == 0 or len(gb) == 0:
        return BoxMatch.unmatched(len(rb), len(gb))
    iou = iou_bev(rb, gb)
    iou[np.asarray(ref.labels)[:, None] != np.asarray(got.labels)[None, :]] = 0.0
    ri, gi = greedy_pairs(iou, ref.scores, iou_threshold)
    if len(ri) == 0:
        return BoxMatch.unmatched(len(rb), len(gb))
    ious = iou[ri, gi]
    score = np.abs(np.asarray(got.scores, np.float64)[gi] - np.asarray(ref.scores, np.float64)[ri])
    return BoxMatch(
        len(rb), len(gb), len(ri), float(ious.mean()), float(ious.min()),
        float(np.linalg.norm(gb[gi, :3] - rb[ri, :3], axis=1).max()), float(np.abs(gb[gi, 3:6] - rb[ri, 3:6]).max()),
        float(_yaw_diff(gb[gi, 6], rb[ri, 6]).max()), float(score.max()),
    )


# ---- which boxes ----------------------------------------------------------------------------
def select_above(det: Any, min_score: float | None) -> Any:
    """The boxes of ``det`` with score > ``min_score`` as a
    :class:`~pointpillars_trt.postprocess.RawDetections` (``det`` itself when ``min_score`` is None)."""
    from ..postprocess import RawDetections

    if min_score is None:
        return det
    keep = np.asarray(det.scores) > min_score
    return RawDetections(np.asarray(det.boxes)[keep], np.asarray(det.scores)[keep], np.asarray(det.labels)[keep])


def uncapped_threshold(postprocess: Any, heads: Mapping[str, np.ndarray]) -> float | None:
    """A score threshold under which the reference keeps fewer boxes than ``nms_post_max``.

    When the cap is reached (synthetic pillar sets fill the whole grid), which box comes last
    depends on scores equal to float precision; comparing at a higher threshold avoids that.

    Args:
        postprocess: a :class:`~pointpillars_trt.postprocess.PostProcessor`.
        heads: the reference's ``cls``, ``box``, ``dir`` head outputs.

    Returns:
        :func:`threshold_in_gap` of the reference scores, or ``None`` when the config's threshold
        already stays under the cap.
    """
    det = postprocess(heads["cls"], heads["box"], heads["dir"])
    if len(det.scores) < postprocess.cfg.postprocess.nms_post_max:
        return None
    return threshold_in_gap(det.scores)


def threshold_in_gap(scores: np.ndarray) -> float:
    """A threshold halfway across the widest gap between neighbouring scores in the middle half of
    ``scores [N]`` (sorted best first, N >= 2), so that no score lies within float error of it."""
    n = len(scores)
    s = np.asarray(scores, np.float64)[n // 4: max(3 * n // 4, n // 4 + 2)]
    gaps = s[:-1] - s[1:]
    k = int(np.argmax(gaps))
    return float((s[k] + s[k + 1]) / 2)
