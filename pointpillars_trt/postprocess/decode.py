"""Head maps -> final boxes: candidate selection, decoding, direction, rotated NMS, yaw range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Comparison, PointPillarsConfig, PostProcessConfig, PreNmsOrder, YawRange
from .anchors import generate_anchors
from .box_coder import apply_direction, canonical_yaw, decode_boxes, to_canonical
from .nms import nms_bev


@dataclass(frozen=True)
class RawDetections:
    """``boxes [N, 7]`` canonical, ``scores [N]``, ``labels [N]`` (class index), best first."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def flatten_head(cls_map: np.ndarray, box_map: np.ndarray, dir_map: np.ndarray, cfg: PointPillarsConfig):
    """Head maps ``[1, A*K, ny, nx]``, ``[1, A*7, ...]``, ``[1, A*D, ...]`` -> per-anchor rows
    ``[ny*nx*A, K]``, ``[.., 7]``, ``[.., D]`` in the order of :func:`generate_anchors`."""
    k, d = cfg.num_classes, cfg.head.num_dir_bins
    cls = np.ascontiguousarray(np.asarray(cls_map)[0].transpose(1, 2, 0)).reshape(-1, k)
    box = np.ascontiguousarray(np.asarray(box_map)[0].transpose(1, 2, 0)).reshape(-1, 7)
    dirs = np.ascontiguousarray(np.asarray(dir_map)[0].transpose(1, 2, 0)).reshape(-1, d)
    return cls, box, dirs


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic of ``x``; a logit below about -88 overflows ``exp`` to inf, which gives the
    right 0 (so that overflow is not warned about)."""
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x.astype(np.float32)))).astype(np.float32)


def passes(scores: np.ndarray, threshold: float, rule: Comparison) -> np.ndarray:
    """Boolean mask ``[N]``: ``scores >= threshold`` (``at_least``) or ``scores > threshold`` (``above``),
    compared in float32 (scores float32, the threshold rounded to float32 as the GPU does)."""
    thr = np.float32(threshold)
    return scores >= thr if rule == Comparison.AT_LEAST else scores > thr


def select_candidates(best: np.ndarray, threshold: float, pp: PostProcessConfig) -> np.ndarray:
    """Anchor indices ``[C]`` chosen before decoding, best first, from the best-class logits ``best [R]``.

    ``threshold_then_topk``: anchors whose best score passes ``pp.score_rule``, then the top
    ``nms_pre_max`` of them. ``topk_then_threshold``: the top ``nms_pre_max`` anchors (their
    scores are tested per class later). Ties keep anchor order (stable sort on the logits).
    """
    cand = np.arange(best.shape[0])
    if pp.pre_nms_order == PreNmsOrder.THRESHOLD_THEN_TOPK:
        cand = np.flatnonzero(passes(_sigmoid(best), threshold, pp.score_rule))
    return cand[np.argsort(-best[cand], kind="stable")][: pp.nms_pre_max]


def merge_by_score(groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]], max_keep: int) -> RawDetections:
    """Per-class ``(boxes [n, 7], scores [n], labels [n])`` lists -> one :class:`RawDetections`
    of at most ``max_keep`` rows, by score (stable: class order, then each list's order)."""
    b = np.concatenate([g[0] for g in groups]).reshape(-1, 7)
    s = np.concatenate([g[1] for g in groups]).astype(np.float32)
    l = np.concatenate([g[2] for g in groups]).astype(np.int64)
    order = np.argsort(-s, kind="stable")[:max_keep]
    return RawDetections(b[order], s[order], l[order])


class PostProcessor:
    """Owns the anchors of a config and turns head maps into :class:`RawDetections`.

    Pipeline (``cfg.postprocess``): candidates by :func:`select_candidates`; only those are
    decoded. Class-agnostic NMS: the best class of each candidate whose best score passes the
    score rule, one rotated NMS, keep ``nms_post_max``. Per-class NMS: for each class the
    candidates whose score of that class passes the rule, one NMS each, merged by score and cut
    to ``nms_post_max``. NMS suppresses by ``nms_suppress_rule``; ``yaw_range`` canonical wraps
    the output yaw into ``[-pi, pi)``.
    """

    def __init__(self, cfg: PointPillarsConfig) -> None:
        self.cfg = cfg
        self.anchors = generate_anchors(cfg).reshape(-1, 7)

    def __call__(self, cls_map, box_map, dir_map, score_threshold: float | None = None) -> RawDetections:
        cfg, pp = self.cfg, self.cfg.postprocess
        thresh = pp.score_threshold if score_threshold is None else float(score_threshold)
        cls, box, dirs = flatten_head(cls_map, box_map, dir_map, cfg)
        best = cls.max(axis=1)
        cand = select_candidates(best, thresh, pp)
        boxes = self._decode(box[cand], dirs[cand], cand)
        if pp.class_agnostic_nms:
            scores = _sigmoid(best[cand])
            ok = np.flatnonzero(passes(scores, thresh, pp.score_rule))
            keep = ok[nms_bev(boxes[ok], scores[ok], pp.nms_iou_threshold, pp.nms_post_max, pp.nms_suppress_rule)]
            out = RawDetections(boxes[keep], scores[keep], cls[cand[keep]].argmax(axis=1).astype(np.int64))
        else:
            probs = _sigmoid(cls[cand])
            groups = []
            for k in range(cfg.num_classes):
                sel = np.flatnonzero(passes(probs[:, k], thresh, pp.score_rule))
                keep = sel[nms_bev(boxes[sel], probs[sel, k], pp.nms_iou_threshold, pp.nms_post_max, pp.nms_suppress_rule)]
                groups.append((boxes[keep], probs[keep, k], np.full(len(keep), k)))
            out = merge_by_score(groups, pp.nms_post_max)
        if pp.yaw_range == YawRange.CANONICAL:
            out.boxes[:, 6] = canonical_yaw(out.boxes[:, 6])
        return out

    def _decode(self, deltas: np.ndarray, dir_logits: np.ndarray, anchor_idx: np.ndarray) -> np.ndarray:
        h = self.cfg.head
        boxes = decode_boxes(deltas, self.anchors[anchor_idx])
        boxes[:, 6] = apply_direction(boxes[:, 6], dir_logits.argmax(axis=1), h.dir_offset, h.dir_limit_offset, h.num_dir_bins)
        return to_canonical(boxes, h.box_layout)
