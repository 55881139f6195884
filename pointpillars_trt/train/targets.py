"""Anchor target assignment (OpenPCDet's ``AxisAlignedTargetAssigner``), vectorised with numba.

For each class, its anchors are matched to the ground-truth boxes of that class by BEV IoU:

* ``iou="nearest_bev"`` (default, what OpenPCDet's PointPillars uses with ``MATCH_HEIGHT: False``):
  both boxes are snapped to the nearest axis-aligned orientation (``|yaw| mod pi >= pi/4`` swaps
  length and width) and compared as axis-aligned rectangles;
* ``iou="rotated"``: exact rotated BEV IoU (:func:`pointpillars_trt.postprocess.iou_bev`).

IoU is only computed for anchors whose location is within reach of a box (the sum of both BEV
half-diagonals), so a frame costs a few milliseconds. Rules, as OpenPCDet: an anchor is positive
when its best IoU is ``>= matched_threshold``, background when ``< unmatched_threshold``, ignored in
between; every box is also force-matched to the anchor(s) with its highest non-zero IoU. Box
targets are :func:`~pointpillars_trt.postprocess.encode_boxes` residuals against the matched box;
direction targets are the bin of the box's yaw consistent with
:func:`~pointpillars_trt.postprocess.apply_direction`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..config import PointPillarsConfig
from ..errors import ConfigError
from ..postprocess import anchor_positions, encode_boxes, generate_anchors, iou_bev, limit_period, to_canonical

IOU_MODES = ("nearest_bev", "rotated")


@dataclass(frozen=True)
class FrameTargets:
    """Training targets of one frame, in the anchor order of :func:`generate_anchors` (flattened).

    * ``labels`` int8 ``[N]``: ``-1`` ignored, ``0`` background, ``k + 1`` class ``k``.
    * ``pos_index`` int64 ``[P]``: the anchors with ``labels > 0``, ascending.
    * ``box_targets`` float32 ``[P, 7]``: residuals of the matched box against each positive anchor.
    * ``dir_targets`` int64 ``[P]``: direction bin of the matched box.
    * ``matched_gt`` int64 ``[P]``: index of the matched ground-truth box.
    """

    labels: np.ndarray
    pos_index: np.ndarray
    box_targets: np.ndarray
    dir_targets: np.ndarray
    matched_gt: np.ndarray

    @property
    def num_positive(self) -> int:
        return int(self.pos_index.shape[0])


def from_canonical(boxes: np.ndarray, layout: str) -> np.ndarray:
    """Canonical boxes -> a head's ``layout`` (inverse of :func:`~pointpillars_trt.postprocess.to_canonical`)."""
    if layout == "lwh_ccw":
        return np.asarray(boxes, dtype=np.float32)
    out = np.array(boxes, dtype=np.float32, copy=True)
    out[:, 3] = boxes[:, 4]
    out[:, 4] = boxes[:, 3]
    out[:, 6] = -boxes[:, 6] - np.float32(np.pi / 2)
    return out


def direction_bins(yaw: np.ndarray, offset: float, limit_offset: float, num_bins: int) -> np.ndarray:
    """Direction-classifier target of each ``yaw`` (head layout): int64 bin in ``[0, num_bins)``.

    OpenPCDet's ``get_direction_target`` is ``floor(limit_period(yaw - offset, 0, 2 pi) / period)``
    with ``period = 2 pi / num_bins``; the ``limit_offset * period`` shift makes the bin agree with
    :func:`~pointpillars_trt.postprocess.apply_direction` for any ``limit_offset`` (it is 0 in OpenPCDet).
    """
    period = 2.0 * np.pi / num_bins
    rot = limit_period(np.asarray(yaw, dtype=np.float64) - offset + limit_offset * period, 0.0, 2.0 * np.pi)
    return np.clip(np.floor(rot / period), 0, num_bins - 1).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _aligned(x, y, l, w, yaw):
    r = yaw - np.floor(yaw / np.pi + 0.5) * np.pi
    if abs(r) >= np.pi / 4:
        l, w = w, l
    return x - 0.5 * l, y - 0.5 * w, x + 0.5 * l, y + 0.5 * w


@numba.njit(cache=True, nogil=True)
def _candidates(anchors, a0, na, xs, ys, reach, gts, nearest):
    """Anchors of one class near each box: returns (flat anchor index, gt index, IoU) triples
    (IoU filled only when ``nearest``; otherwise 0 and computed by the caller)."""
    ny, nx, A = anchors.shape[0], anchors.shape[1], anchors.shape[2]
    G = gts.shape[0]
    lo_x = np.empty(G, np.int64)
    hi_x = np.empty(G, np.int64)
    lo_y = np.empty(G, np.int64)
    hi_y = np.empty(G, np.int64)
    total = 0
    for g in range(G):
        r = 0.5 * np.sqrt(gts[g, 3] ** 2 + gts[g, 4] ** 2) + reach
        lo_x[g] = np.searchsorted(xs, gts[g, 0] - r)
        hi_x[g] = np.searchsorted(xs, gts[g, 0] + r, side="right")
        lo_y[g] = np.searchsorted(ys, gts[g, 1] - r)
        hi_y[g] = np.searchsorted(ys, gts[g, 1] + r, side="right")
        total += max(hi_x[g] - lo_x[g], 0) * max(hi_y[g] - lo_y[g], 0) * na
    idx = np.empty(total, np.int64)
    gid = np.empty(total, np.int64)
    iou = np.zeros(total, np.float64)
    m = 0
    for g in range(G):
        if nearest:
            gx1, gy1, gx2, gy2 = _aligned(gts[g, 0], gts[g, 1], gts[g, 3], gts[g, 4], gts[g, 6])
            garea = (gx2 - gx1) * (gy2 - gy1)
        for iy in range(lo_y[g], hi_y[g]):
            for ix in range(lo_x[g], hi_x[g]):
                for j in range(na):
                    a = a0 + j
                    v = 0.0
                    if nearest:
                        ax1, ay1, ax2, ay2 = _aligned(
                            anchors[iy, ix, a, 0], anchors[iy, ix, a, 1], anchors[iy, ix, a, 3], anchors[iy, ix, a, 4], anchors[iy, ix, a, 6]
                        )
                        iw = min(ax2, gx2) - max(ax1, gx1)
                        ih = min(ay2, gy2) - max(ay1, gy1)
                        if iw <= 0.0 or ih <= 0.0:
                            continue
                        inter = iw * ih
                        v = inter / max((ax2 - ax1) * (ay2 - ay1) + garea - inter, 1e-9)
                    idx[m] = (iy * nx + ix) * A + a
                    gid[m] = g
                    iou[m] = v
                    m += 1
    return idx[:m], gid[:m], iou[:m]


class TargetAssigner:
    """Owns the anchors of a config and assigns the targets of one frame at a time.

    ``assigner(gt_boxes, gt_labels)``: canonical boxes ``[G, 7]`` and class indices ``[G]`` (into
    ``cfg.classes``) -> :class:`FrameTargets`.
    """

    def __init__(self, cfg: PointPillarsConfig, iou: str = "nearest_bev") -> None:
        if iou not in IOU_MODES:
            raise ConfigError(f"target assignment iou {iou!r} is not one of {IOU_MODES}")
        self.cfg = cfg
        self.iou_mode = iou
        self.anchors = generate_anchors(cfg)  # [ny, nx, A, 7], head layout
        ny, nx, A, _ = self.anchors.shape
        self.num_anchors = ny * nx * A
        self.anchors_flat = self.anchors.reshape(-1, 7)
        canon = to_canonical(self.anchors_flat, cfg.head.box_layout)
        self._canonical = np.ascontiguousarray(canon.reshape(ny, nx, A, 7), dtype=np.float64)
        r = cfg.voxel.point_cloud_range
        self._xs = anchor_positions(r[0], r[3], nx, cfg.head.anchor_align_center).astype(np.float64)
        self._ys = anchor_positions(r[1], r[4], ny, cfg.head.anchor_align_center).astype(np.float64)
        self._classes = []  # (a0, na, reach, matched, unmatched)
        a0 = 0
        for a in cfg.anchors:
            na = a.num_anchors
            reach = max(0.5 * float(np.hypot(s[0], s[1])) for s in a.sizes)
            self._classes.append((a0, na, reach, a.matched_threshold, a.unmatched_threshold))
            a0 += na

    def __call__(self, gt_boxes: np.ndarray, gt_labels: np.ndarray) -> FrameTargets:
        cfg = self.cfg
        gt = np.ascontiguousarray(np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 7))
        lab = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
        labels = np.zeros(self.num_anchors, dtype=np.int8)
        arg_gt = np.full(self.num_anchors, -1, dtype=np.int64)  # only read at positives
        for k, (a0, na, reach, matched, unmatched) in enumerate(self._classes):
            sel = np.flatnonzero(lab == k)
            if len(sel) == 0:
                continue
            g = gt[sel]
            idx, gid, iou = _candidates(self._canonical, a0, na, self._xs, self._ys, reach, g, self.iou_mode == "nearest_bev")
            if self.iou_mode == "rotated":
                iou = self._rotated(idx, gid, g)
            keep = iou > 0
            idx, gid, iou = idx[keep], gid[keep], iou[keep]
            if len(idx) == 0:
                continue
            # best box of each anchor (ties: lowest box index, as torch argmax)
            order = np.lexsort((gid, -iou, idx))
            uniq, first = np.unique(idx[order], return_index=True)
            a_iou = iou[order][first]
            a_gid = gid[order][first]
            # best IoU of each box; force-match the anchors reaching it
            gt_max = np.zeros(len(sel))
            np.maximum.at(gt_max, gid, iou)
            forced_anchor = np.unique(idx[iou == gt_max[gid]])
            ignore = uniq[a_iou >= unmatched]
            labels[ignore] = -1
            pos = uniq[a_iou >= matched]
            pos_all = np.union1d(pos, forced_anchor)
            labels[pos_all] = k + 1
            arg_gt[pos_all] = sel[a_gid[np.searchsorted(uniq, pos_all)]]
        pos_index = np.flatnonzero(labels > 0).astype(np.int64)
        matched_gt = arg_gt[pos_index]
        gt_head = from_canonical(gt.astype(np.float32), cfg.head.box_layout)
        box_t = encode_boxes(gt_head[matched_gt], self.anchors_flat[pos_index]) if len(pos_index) else np.zeros((0, 7), np.float32)
        h = cfg.head
        dir_t = direction_bins(gt_head[matched_gt, 6], h.dir_offset, h.dir_limit_offset, h.num_dir_bins)
        return FrameTargets(labels, pos_index, box_t.astype(np.float32), dir_t, matched_gt)

    def _rotated(self, idx: np.ndarray, gid: np.ndarray, gt: np.ndarray) -> np.ndarray:
        flat = self._canonical.reshape(-1, 7)
        out = np.zeros(len(idx))
        for g in range(len(gt)):
            m = np.flatnonzero(gid == g)
            if len(m):
                out[m] = iou_bev(gt[g : g + 1], flat[idx[m]])[0]
        return out
