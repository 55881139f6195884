"""Head maps -> final boxes: score threshold, top-k, decoding, direction, rotated NMS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import PointPillarsConfig
from .anchors import generate_anchors
from .box_coder import apply_direction, decode_boxes, to_canonical
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
    return (1.0 / (1.0 + np.exp(-x.astype(np.float32)))).astype(np.float32)


class PostProcessor:
    """Owns the anchors of a config and turns head maps into :class:`RawDetections`.

    Class-agnostic mode (OpenPCDet): best class per anchor, ``score >= threshold``, top
    ``nms_pre_max``, one rotated NMS, keep ``nms_post_max``. Class-aware mode (mmdet3d): top
    ``nms_pre_max`` anchors by best score, then per class ``score > threshold`` and NMS, merged
    and cut to ``nms_post_max`` by score. Only the selected anchors are decoded.
    """

    def __init__(self, cfg: PointPillarsConfig) -> None:
        self.cfg = cfg
        self.anchors = generate_anchors(cfg).reshape(-1, 7)

    def __call__(self, cls_map, box_map, dir_map, score_threshold: float | None = None) -> RawDetections:
        cfg, pp = self.cfg, self.cfg.postprocess
        thresh = pp.score_threshold if score_threshold is None else float(score_threshold)
        cls, box, dirs = flatten_head(cls_map, box_map, dir_map, cfg)
        best = cls.max(axis=1)
        if pp.class_agnostic_nms:
            cand = np.flatnonzero(_sigmoid(best) >= thresh)
            cand = cand[np.argsort(-best[cand], kind="stable")][: pp.nms_pre_max]
            labels = cls[cand].argmax(axis=1)
            scores = _sigmoid(best[cand])
            boxes = self._decode(box[cand], dirs[cand], cand)
            keep = nms_bev(boxes, scores, pp.nms_iou_threshold, pp.nms_post_max)
            return RawDetections(boxes[keep], scores[keep], labels[keep].astype(np.int64))
        cand = np.argsort(-best, kind="stable")[: pp.nms_pre_max]
        probs = _sigmoid(cls[cand])
        boxes = self._decode(box[cand], dirs[cand], cand)
        out_b, out_s, out_l = [], [], []
        for k in range(cfg.num_classes):
            sel = np.flatnonzero(probs[:, k] > thresh)
            keep = sel[nms_bev(boxes[sel], probs[sel, k], pp.nms_iou_threshold)]
            out_b.append(boxes[keep]), out_s.append(probs[keep, k]), out_l.append(np.full(len(keep), k))
        b, s, l = np.concatenate(out_b), np.concatenate(out_s), np.concatenate(out_l)
        order = np.argsort(-s, kind="stable")[: pp.nms_post_max]
        return RawDetections(b[order], s[order], l[order].astype(np.int64))

    def _decode(self, deltas: np.ndarray, dir_logits: np.ndarray, anchor_idx: np.ndarray) -> np.ndarray:
        h = self.cfg.head
        boxes = decode_boxes(deltas, self.anchors[anchor_idx])
        boxes[:, 6] = apply_direction(boxes[:, 6], dir_logits.argmax(axis=1), h.dir_offset, h.dir_limit_offset, h.num_dir_bins)
        return to_canonical(boxes, h.box_layout)
