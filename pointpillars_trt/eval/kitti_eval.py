"""The official KITTI object evaluation (bbox / bev / 3d / aos, R11 and R40).

Semantics of the KITTI devkit's ``evaluate_object.cpp`` as reproduced by OpenPCDet's
``kitti_object_eval_python`` (whose numbers the community publishes):

* Difficulties from the ground truth's 2D box height, occlusion and truncation:
  easy ``> 40 px, occ <= 0, trunc <= 0.15``; moderate ``> 25 px, occ <= 1, trunc <= 0.3``;
  hard ``> 25 px, occ <= 2, trunc <= 0.5``. Ground truth outside the difficulty is *ignored*
  (matching it is neither a TP nor a FP; missing it is not a FN).
* Neighbouring classes are ignored, not false positives: ``Van`` when evaluating ``Car``,
  ``Person_sitting`` when evaluating ``Pedestrian``. Other classes do not take part.
* Predictions whose 2D box is lower than the difficulty's minimum height are ignored.
* ``DontCare`` regions: an unmatched prediction whose 2D box lies in a DontCare box by more than the
  minimum overlap (intersection over the prediction's area) is not a false positive. OpenPCDet applies
  this to the ``bbox`` metric only (so do we by default); ``dontcare_all_metrics=True`` applies it to
  bev and 3d as the devkit does.
* Matching is greedy over ground truth in file order, overlap strictly greater than the minimum:
  bbox 2D IoU, bev rotated IoU in the camera ``(x, z)`` plane, 3d = bev intersection x height overlap
  over the union volume. AOS sums ``(1 + cos(alpha_gt - alpha_dt)) / 2`` over the bbox matches.
* Precision is sampled at (up to) 41 score thresholds chosen for linearly spaced recall
  (``get_thresholds``), made monotone (max over higher recall), and averaged over samples
  ``0, 4, ..., 40`` (R11: ``sum / 11``) or ``1, 2, ..., 40`` (R40: ``sum / 40``), in percent.
* Minimum overlaps (OpenPCDet's ``get_official_eval_result`` tables), per metric ``(bbox, bev, 3d)``:
  standard Car ``0.7/0.7/0.7``, Pedestrian and Cyclist ``0.5/0.5/0.5``; loose Car ``0.7/0.5/0.5``,
  Pedestrian and Cyclist ``0.5/0.25/0.25`` (bbox and so aos keep the standard overlap).

A class with no valid ground truth in a difficulty gets AP 0 (OpenPCDet fails on it instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numba
import numpy as np

from ..io.kitti import KittiObject
from . import iou

__all__ = [
    "DIFFICULTIES",
    "METRICS",
    "MIN_OVERLAPS",
    "KittiEvaluator",
    "PRCurve",
    "evaluate",
    "format_table",
]

DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40.0, 25.0, 25.0)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
METRICS = ("bbox", "bev", "3d", "aos")
_OVERLAP_METRICS = ("bbox", "bev", "3d")
N_SAMPLE_PTS = 41

# class -> {"standard": (bbox, bev, 3d), "loose": (bbox, bev, 3d)} (OpenPCDet's tables)
MIN_OVERLAPS: Mapping[str, Mapping[str, tuple[float, float, float]]] = {
    "Car": {"standard": (0.7, 0.7, 0.7), "loose": (0.7, 0.5, 0.5)},
    "Pedestrian": {"standard": (0.5, 0.5, 0.5), "loose": (0.5, 0.25, 0.25)},
    "Cyclist": {"standard": (0.5, 0.5, 0.5), "loose": (0.5, 0.25, 0.25)},
    "Van": {"standard": (0.7, 0.7, 0.7), "loose": (0.7, 0.5, 0.5)},
    "Person_sitting": {"standard": (0.5, 0.5, 0.5), "loose": (0.5, 0.25, 0.25)},
    "Truck": {"standard": (0.7, 0.7, 0.7), "loose": (0.5, 0.5, 0.5)},
}
# evaluated class (lower case) -> ground-truth class that is ignored rather than missed
NEIGHBOUR_CLASS = {"car": "van", "pedestrian": "person_sitting"}


# --------------------------------------------------------------------------------------------------
# numba kernels


@numba.njit(cache=True)
def _get_thresholds(scores, num_gt):
    """Score thresholds for linearly spaced recall (KITTI's ``getThresholds``); ``scores`` sorted
    descending."""
    out = np.empty(scores.shape[0])
    n = 0
    current = 0.0
    last = scores.shape[0] - 1
    for i in range(scores.shape[0]):
        l_recall = (i + 1) / num_gt
        r_recall = (i + 2) / num_gt if i < last else l_recall
        if (r_recall - current) < (current - l_recall) and i < last:
            continue
        out[n] = scores[i]
        n += 1
        current += 1.0 / (N_SAMPLE_PTS - 1.0)
    return out[:n]


@numba.njit(cache=True, inline="always")
def _frame_rows(g0, ng, d0, nd, ign_gt, ign_dt, dt_score, thresh, compute_fp, gts, dts, assigned):
    """``(n_g, n_d)``: the frame's GT rows that take part (``ign_gt != -1``) go to ``gts[:n_g]``, its
    predictions that take part (and, with ``compute_fp``, score at least ``thresh``) to ``dts[:n_d]``,
    with ``assigned[:n_d]`` cleared. Rows are frame-local (GT ``i`` is global row ``g0 + i``)."""
    n_g = 0
    for i in range(ng):
        if ign_gt[g0 + i] != -1:
            gts[n_g] = i
            n_g += 1
    n_d = 0
    for j in range(nd):
        if ign_dt[d0 + j] != -1 and not (compute_fp and dt_score[d0 + j] < thresh):
            dts[n_d] = j
            assigned[n_d] = False
            n_d += 1
    return n_g, n_d


@numba.njit(cache=True, inline="always")
def _dontcare_hits(f, d0, n_d, dts, assigned, ign_dt, dt_bbox, dc_off, dc_bbox, min_overlap):
    """Unassigned valid predictions of frame ``f`` whose 2D box lies in one of its DontCare boxes by
    more than ``min_overlap`` (intersection over the prediction's area): marked assigned, counted."""
    nstuff = 0
    for c in range(dc_off[f], dc_off[f + 1]):
        for b in range(n_d):
            dj = d0 + dts[b]
            if assigned[b] or ign_dt[dj] != 0:
                continue
            iw = min(dt_bbox[dj, 2], dc_bbox[c, 2]) - max(dt_bbox[dj, 0], dc_bbox[c, 0])
            ih = min(dt_bbox[dj, 3], dc_bbox[c, 3]) - max(dt_bbox[dj, 1], dc_bbox[c, 1])
            area = (dt_bbox[dj, 2] - dt_bbox[dj, 0]) * (dt_bbox[dj, 3] - dt_bbox[dj, 1])
            if iw > 0.0 and ih > 0.0 and area > 0.0 and iw * ih / area > min_overlap:
                assigned[b] = True
                nstuff += 1
    return nstuff


@numba.njit(cache=True)
def _frame_statistics(
    f, ov, ov_off, gt_off, dt_off, dc_off, ign_gt, ign_dt, dt_score, gt_alpha, dt_alpha, dt_bbox,
    dc_bbox, min_overlap, thresh, compute_fp, apply_dc, gts, dts, assigned, tp_score,
):  # fmt: skip
    """Match one frame (the devkit's ``computeStatistics``); returns ``(tp, fp, fn, similarity)``.

    Without ``compute_fp`` each valid GT takes the highest-scoring overlapping prediction and the
    TP scores are written to ``tp_score`` (by GT row). With it, predictions under ``thresh`` are
    dropped and each GT takes the best-overlapping valid prediction (else an ignored one).
    """
    g0 = gt_off[f]
    ng = gt_off[f + 1] - g0
    d0 = dt_off[f]
    nd = dt_off[f + 1] - d0
    base = ov_off[f]
    n_g, n_d = _frame_rows(g0, ng, d0, nd, ign_gt, ign_dt, dt_score, thresh, compute_fp, gts, dts, assigned)
    tp = 0
    fp = 0
    fn = 0
    similarity = 0.0
    for a in range(n_g):
        i = gts[a]
        det = -1
        best_score = -np.inf
        max_overlap = 0.0
        assigned_ignored = False
        for b in range(n_d):
            if assigned[b]:
                continue
            j = dts[b]
            overlap = ov[base + j * ng + i]
            if overlap <= min_overlap:
                continue
            if not compute_fp:
                if dt_score[d0 + j] > best_score:
                    det = b
                    best_score = dt_score[d0 + j]
            elif (overlap > max_overlap or assigned_ignored) and ign_dt[d0 + j] == 0:
                max_overlap = overlap
                det = b
                assigned_ignored = False
            elif det == -1 and ign_dt[d0 + j] == 1:
                det = b
                assigned_ignored = True
        gi = g0 + i
        if det == -1:
            if ign_gt[gi] == 0:
                fn += 1
        elif ign_gt[gi] == 1 or ign_dt[d0 + dts[det]] == 1:
            assigned[det] = True
        else:
            tp += 1
            dj = d0 + dts[det]
            if not compute_fp:
                tp_score[gi] = dt_score[dj]
            similarity += (1.0 + math.cos(gt_alpha[gi] - dt_alpha[dj])) / 2.0
            assigned[det] = True
    if compute_fp:
        for b in range(n_d):
            if not assigned[b] and ign_dt[d0 + dts[b]] == 0:
                fp += 1
        if apply_dc:
            fp -= _dontcare_hits(f, d0, n_d, dts, assigned, ign_dt, dt_bbox, dc_off, dc_bbox, min_overlap)
    return tp, fp, fn, similarity


@numba.njit(cache=True, parallel=True)
def _tp_scores(ov, ov_off, gt_off, dt_off, dc_off, ign_gt, ign_dt, dt_score, gt_alpha, dt_alpha,
               dt_bbox, dc_bbox, min_overlap, max_g, max_d):  # fmt: skip
    """Scores of the predictions matched as TP (no score threshold): one entry per GT, NaN if none."""
    out = np.full(ign_gt.shape[0], np.nan)
    for f in numba.prange(gt_off.shape[0] - 1):
        gts = np.empty(max_g, np.int64)
        dts = np.empty(max_d, np.int64)
        assigned = np.empty(max_d, np.bool_)
        _frame_statistics(f, ov, ov_off, gt_off, dt_off, dc_off, ign_gt, ign_dt, dt_score, gt_alpha,
                          dt_alpha, dt_bbox, dc_bbox, min_overlap, 0.0, False, False, gts, dts,
                          assigned, out)  # fmt: skip
    return out


@numba.njit(cache=True, parallel=True)
def _pr_counts(thresholds, ov, ov_off, gt_off, dt_off, dc_off, ign_gt, ign_dt, dt_score, gt_alpha,
               dt_alpha, dt_bbox, dc_bbox, min_overlap, apply_dc, max_g, max_d):  # fmt: skip
    """``[T, 4]`` sums of (tp, fp, fn, similarity) over all frames, one row per score threshold."""
    pr = np.zeros((thresholds.shape[0], 4))
    unused = np.empty(0)
    for t in numba.prange(thresholds.shape[0]):
        gts = np.empty(max_g, np.int64)
        dts = np.empty(max_d, np.int64)
        assigned = np.empty(max_d, np.bool_)
        for f in range(gt_off.shape[0] - 1):
            tp, fp, fn, sim = _frame_statistics(
                f, ov, ov_off, gt_off, dt_off, dc_off, ign_gt, ign_dt, dt_score, gt_alpha, dt_alpha,
                dt_bbox, dc_bbox, min_overlap, thresholds[t], True, apply_dc, gts, dts, assigned, unused,
            )  # fmt: skip
            pr[t, 0] += tp
            pr[t, 1] += fp
            pr[t, 2] += fn
            pr[t, 3] += sim
    return pr


# --------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class PRCurve:
    """One (class, metric, difficulty, min-overlap) precision/recall curve at the 41 sample points.

    ``precision``, ``recall`` and ``orientation`` (AOS similarity over TP+FP) are ``[41]``, already
    made monotone; samples past the last threshold are 0. ``thresholds`` are the score thresholds.
    """

    precision: np.ndarray
    recall: np.ndarray
    orientation: np.ndarray
    thresholds: np.ndarray
    num_gt: int

    @staticmethod
    def r11(values: np.ndarray) -> float:
        return float(np.sum(values[0::4]) / 11.0 * 100.0)

    @staticmethod
    def r40(values: np.ndarray) -> float:
        return float(np.sum(values[1:]) / 40.0 * 100.0)

    def ap(self, interpolation: str = "R40", orientation: bool = False) -> float:
        """AP (or AOS with ``orientation=True``) in percent, ``interpolation`` "R11" or "R40"."""
        values = self.orientation if orientation else self.precision
        if interpolation == "R11":
            return self.r11(values)
        if interpolation == "R40":
            return self.r40(values)
        raise ValueError(f"interpolation must be 'R11' or 'R40', got {interpolation!r}")


def _csr(counts: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)


def _array(rows, width: int) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(-1, width)


class KittiEvaluator:
    """Ground truth and predictions of a set of frames, ready to be evaluated.

    ``gt_annos[i]`` and ``dt_annos[i]`` are the objects of frame ``i`` (ground truth with
    ``DontCare`` lines; predictions with scores). Overlaps are computed once per metric; curves are
    cached per (class, metric, difficulty, min overlap).
    """

    def __init__(
        self,
        gt_annos: Sequence[Sequence[KittiObject]],
        dt_annos: Sequence[Sequence[KittiObject]],
        *,
        dontcare_all_metrics: bool = False,
    ) -> None:
        if len(gt_annos) != len(dt_annos):
            raise ValueError(f"evaluate: {len(gt_annos)} ground-truth frames but {len(dt_annos)} prediction frames")
        self.dontcare_all_metrics = bool(dontcare_all_metrics)
        gt_rows, dc_rows, dt_rows = [], [], []
        gt_counts, dc_counts, dt_counts = [], [], []
        for frame, (gts, dts) in enumerate(zip(gt_annos, dt_annos)):
            kept = [o for o in gts if o.type != "DontCare"]
            dc = [o for o in gts if o.type == "DontCare"]
            for k, obj in enumerate(dts):
                if obj.score is None or not math.isfinite(obj.score):
                    raise ValueError(f"evaluate: prediction {k} of frame {frame} ({obj.type}) has no finite score")
            gt_rows.extend(kept)
            dc_rows.extend(dc)
            dt_rows.extend(dts)
            gt_counts.append(len(kept))
            dc_counts.append(len(dc))
            dt_counts.append(len(dts))
        self.num_frames = len(gt_annos)
        self.gt_off, self.dc_off, self.dt_off = _csr(gt_counts), _csr(dc_counts), _csr(dt_counts)
        self.max_g = max(gt_counts, default=0)
        self.max_d = max(dt_counts, default=0)
        self.gt_name = np.array([o.type.lower() for o in gt_rows], dtype=object)
        self.gt_bbox = _array([o.bbox for o in gt_rows], 4)
        self.gt_alpha = np.array([o.alpha for o in gt_rows], dtype=np.float64)
        self.gt_trunc = np.array([o.truncated for o in gt_rows], dtype=np.float64)
        self.gt_occ = np.array([o.occluded for o in gt_rows], dtype=np.int64)
        self.gt_cam = _array([o.camera_box() for o in gt_rows], 7)
        self.dc_bbox = _array([o.bbox for o in dc_rows], 4)
        self.dt_name = np.array([o.type.lower() for o in dt_rows], dtype=object)
        self.dt_bbox = _array([o.bbox for o in dt_rows], 4)
        self.dt_alpha = np.array([o.alpha for o in dt_rows], dtype=np.float64)
        self.dt_score = np.array([o.score for o in dt_rows], dtype=np.float64)
        self.dt_cam = _array([o.camera_box() for o in dt_rows], 7)
        self.ov_off = iou.pair_offsets(self.dt_off, self.gt_off)
        self._overlaps: dict[str, np.ndarray] = {}
        self._curves: dict[tuple, PRCurve] = {}

    # -- overlaps and flags ----------------------------------------------------------------------

    def overlaps(self, metric: str) -> np.ndarray:
        """Flattened per-frame ``[n_dt, n_gt]`` overlaps of ``metric`` (offsets ``self.ov_off``)."""
        if metric not in self._overlaps:
            if metric == "bbox":
                ov = iou.image_box_overlap_frames(self.dt_bbox, self.dt_off, self.gt_bbox, self.gt_off)
            elif metric == "bev":
                ov = iou.rotated_iou_bev_frames(
                    iou.camera_boxes_to_bev(self.dt_cam), self.dt_off, iou.camera_boxes_to_bev(self.gt_cam), self.gt_off
                )
            elif metric == "3d":
                ov = iou.iou_3d_camera_frames(self.dt_cam, self.dt_off, self.gt_cam, self.gt_off)
            else:
                raise ValueError(f"metric must be one of {_OVERLAP_METRICS}, got {metric!r}")
            self._overlaps[metric] = ov
        return self._overlaps[metric]

    def ignore_flags(self, cls: str, difficulty: int) -> tuple[np.ndarray, np.ndarray]:
        """(``ign_gt``, ``ign_dt``) int64: 0 counts, 1 ignored, -1 not part of this class
        (the devkit's ``cleanData``)."""
        name = cls.lower()
        neighbour = NEIGHBOUR_CLASS.get(name)
        valid = np.where(self.gt_name == name, 1, np.where(self.gt_name == neighbour, 0, -1))
        height = self.gt_bbox[:, 3] - self.gt_bbox[:, 1]
        hard = (
            (self.gt_occ > MAX_OCCLUSION[difficulty])
            | (self.gt_trunc > MAX_TRUNCATION[difficulty])
            | (height <= MIN_HEIGHT[difficulty])
        )
        ign_gt = np.full(len(valid), -1, dtype=np.int64)
        ign_gt[(valid == 0) | ((valid == 1) & hard)] = 1
        ign_gt[(valid == 1) & ~hard] = 0
        dt_height = np.abs(self.dt_bbox[:, 3] - self.dt_bbox[:, 1])
        ign_dt = np.where(dt_height < MIN_HEIGHT[difficulty], 1, np.where(self.dt_name == name, 0, -1))
        return ign_gt, ign_dt.astype(np.int64)

    # -- curves ----------------------------------------------------------------------------------

    def curve(self, cls: str, metric: str, difficulty: str | int, min_overlap: float) -> PRCurve:
        """The precision / recall / orientation curve of one class, metric (bbox/bev/3d), difficulty."""
        d = DIFFICULTIES.index(difficulty) if isinstance(difficulty, str) else int(difficulty)
        key = (cls.lower(), metric, d, float(min_overlap))
        if key not in self._curves:
            self._curves[key] = self._compute_curve(cls, metric, d, float(min_overlap))
        return self._curves[key]

    def _compute_curve(self, cls: str, metric: str, d: int, min_overlap: float) -> PRCurve:
        ov = self.overlaps(metric)
        ign_gt, ign_dt = self.ignore_flags(cls, d)
        num_gt = int(np.sum(ign_gt == 0))
        zeros = np.zeros(N_SAMPLE_PTS)
        common = (
            ov, self.ov_off, self.gt_off, self.dt_off, self.dc_off, ign_gt, ign_dt, self.dt_score,
            self.gt_alpha, self.dt_alpha, self.dt_bbox, self.dc_bbox, min_overlap,
        )  # fmt: skip
        scores = _tp_scores(*common, self.max_g, self.max_d)
        scores = -np.sort(-scores[~np.isnan(scores)])
        if num_gt == 0 or len(scores) == 0:
            return PRCurve(zeros, zeros.copy(), zeros.copy(), np.zeros(0), num_gt)
        thresholds = _get_thresholds(scores, float(num_gt))[:N_SAMPLE_PTS]
        apply_dc = metric == "bbox" or self.dontcare_all_metrics
        pr = _pr_counts(thresholds, *common, apply_dc, self.max_g, self.max_d)
        tp, fp, fn, sim = pr[:, 0], pr[:, 1], pr[:, 2], pr[:, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.nan_to_num(tp / (tp + fn))
            precision = np.nan_to_num(tp / (tp + fp))
            orientation = np.nan_to_num(sim / (tp + fp))
        out = []
        for values in (precision, recall, orientation):
            full = np.zeros(N_SAMPLE_PTS)
            full[: len(values)] = np.maximum.accumulate(values[::-1])[::-1]
            out.append(full)
        return PRCurve(out[0], out[1], out[2], thresholds, num_gt)

    # -- tables ----------------------------------------------------------------------------------

    def table(self, classes: Sequence[str], overlap_set: str, interpolation: str) -> dict:
        """``T[class][metric][difficulty]`` AP in percent for ``overlap_set`` "standard" or "loose"."""
        table: dict = {}
        for cls in classes:
            overlaps = dict(zip(_OVERLAP_METRICS, _class_overlaps(cls)[overlap_set]))
            entry: dict = {m: {} for m in METRICS}
            for diff in DIFFICULTIES:
                for metric in _OVERLAP_METRICS:
                    entry[metric][diff] = self.curve(cls, metric, diff, overlaps[metric]).ap(interpolation)
                bbox = self.curve(cls, "bbox", diff, overlaps["bbox"])
                entry["aos"][diff] = bbox.ap(interpolation, orientation=True)
            table[cls] = entry
        return table


def _class_overlaps(cls: str) -> Mapping[str, tuple[float, float, float]]:
    for name, overlaps in MIN_OVERLAPS.items():
        if name.lower() == cls.lower():
            return overlaps
    raise ValueError(f"evaluate: unknown class {cls!r}; known classes are {list(MIN_OVERLAPS)}")


def evaluate(
    gt_annos: Sequence[Sequence[KittiObject]],
    dt_annos: Sequence[Sequence[KittiObject]],
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    *,
    dontcare_all_metrics: bool = False,
) -> dict:
    """Evaluate predictions against KITTI ground truth, frame by frame (see the module docstring).

    Returns ``{"R11": T, "R40": T, "loose": {"R11": T, "R40": T}}`` with ``T[class][metric][difficulty]``
    the AP in percent; metric in bbox/bev/3d/aos, difficulty in easy/moderate/hard.
    """
    for cls in classes:
        _class_overlaps(cls)
    ev = KittiEvaluator(gt_annos, dt_annos, dontcare_all_metrics=dontcare_all_metrics)
    return {
        "R11": ev.table(classes, "standard", "R11"),
        "R40": ev.table(classes, "standard", "R40"),
        "loose": {"R11": ev.table(classes, "loose", "R11"), "R40": ev.table(classes, "loose", "R40")},
    }


def _format_block(table: Mapping, cls: str, overlap_set: str, interpolation: str) -> list[str]:
    try:
        overlaps = ", ".join(f"{v:.2f}" for v in _class_overlaps(cls)[overlap_set])
    except ValueError:
        overlaps = "?"
    tag = "AP" if interpolation == "R11" else "AP_R40"
    lines = [f"{cls} {tag}@{overlaps}:"]
    for metric in METRICS:
        values = ", ".join(f"{table[cls][metric][d]:.4f}" for d in DIFFICULTIES)
        lines.append(f"{metric:<4} AP:{values}")
    return lines


def format_table(result: Mapping) -> str:
    """The result as OpenPCDet prints it (per class: R11, R40, loose R11, loose R40 blocks), then a
    summary of the moderate 3D / BEV AP."""
    classes = list(result["R40"])
    lines: list[str] = []
    for cls in classes:
        lines += _format_block(result["R11"], cls, "standard", "R11")
        lines += _format_block(result["R40"], cls, "standard", "R40")
        lines += _format_block(result["loose"]["R11"], cls, "loose", "R11")
        lines += _format_block(result["loose"]["R40"], cls, "loose", "R40")
    lines.append("")
    lines.append("Moderate AP (standard overlaps)  " + "  ".join(f"{c:>10}" for c in classes))
    for interpolation in ("R11", "R40"):
        for metric in ("3d", "bev"):
            values = "  ".join(f"{result[interpolation][c][metric]['moderate']:>10.2f}" for c in classes)
            lines.append(f"{metric + ' ' + interpolation:<33}{values}")
    return "\n".join(lines)
