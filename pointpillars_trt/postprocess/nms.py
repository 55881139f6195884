"""Rotated bird's-eye-view IoU (exact convex-polygon intersection) and greedy NMS, in numba."""

from __future__ import annotations

import numba
import numpy as np

from ..config import Comparison
from .polygon import convex_intersection_area, rect_corners


@numba.njit(cache=True)
def _pair_iou(ca, cb, area_a, area_b, buf_a, buf_b):
    inter = convex_intersection_area(ca, cb, buf_a, buf_b)
    union = area_a + area_b - inter
    if union <= 0.0:
        return 0.0
    return inter / union


@numba.njit(cache=True)
def _iou_matrix(a, b, out):
    ca = np.empty((4, 2))
    cb = np.empty((4, 2))
    buf_a = np.empty((16, 2))
    buf_b = np.empty((16, 2))
    for i in range(a.shape[0]):
        rect_corners(a[i, 0], a[i, 1], a[i, 3], a[i, 4], a[i, 6], ca)
        ra = 0.5 * np.sqrt(a[i, 3] ** 2 + a[i, 4] ** 2)
        for j in range(b.shape[0]):
            rb = 0.5 * np.sqrt(b[j, 3] ** 2 + b[j, 4] ** 2)
            if (a[i, 0] - b[j, 0]) ** 2 + (a[i, 1] - b[j, 1]) ** 2 > (ra + rb) ** 2:
                out[i, j] = 0.0
                continue
            rect_corners(b[j, 0], b[j, 1], b[j, 3], b[j, 4], b[j, 6], cb)
            out[i, j] = _pair_iou(ca, cb, a[i, 3] * a[i, 4], b[j, 3] * b[j, 4], buf_a, buf_b)


def iou_bev(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Rotated BEV IoU ``[N, M]`` (float64) of boxes ``[N, 7]`` and ``[M, 7]`` (x, y, z, l, w, h, yaw)."""
    a = np.ascontiguousarray(boxes_a, dtype=np.float64).reshape(-1, 7)
    b = np.ascontiguousarray(boxes_b, dtype=np.float64).reshape(-1, 7)
    out = np.zeros((a.shape[0], b.shape[0]), dtype=np.float64)
    _iou_matrix(a, b, out)
    return out


@numba.njit(cache=True)
def _nms(boxes, order, threshold, max_keep, at_least):
    n = order.shape[0]
    corners = np.empty((n, 4, 2))
    radius = np.empty(n)
    area = np.empty(n)
    for k in range(n):
        i = order[k]
        rect_corners(boxes[i, 0], boxes[i, 1], boxes[i, 3], boxes[i, 4], boxes[i, 6], corners[k])
        radius[k] = 0.5 * np.sqrt(boxes[i, 3] ** 2 + boxes[i, 4] ** 2)
        area[k] = boxes[i, 3] * boxes[i, 4]
    suppressed = np.zeros(n, dtype=np.bool_)
    keep = np.empty(n, dtype=np.int64)
    buf_a = np.empty((16, 2))
    buf_b = np.empty((16, 2))
    m = 0
    for k in range(n):
        if suppressed[k]:
            continue
        keep[m] = order[k]
        m += 1
        if m >= max_keep:
            break
        i = order[k]
        for q in range(k + 1, n):
            if suppressed[q]:
                continue
            j = order[q]
            iou = 0.0  # boxes farther apart than their circumradii do not overlap
            if (boxes[i, 0] - boxes[j, 0]) ** 2 + (boxes[i, 1] - boxes[j, 1]) ** 2 <= (radius[k] + radius[q]) ** 2:
                iou = _pair_iou(corners[k], corners[q], area[k], area[q], buf_a, buf_b)
            if iou > threshold or (at_least and iou == threshold):
                suppressed[q] = True
    return keep[:m]


def nms_bev(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None,
            rule: Comparison = Comparison.ABOVE) -> np.ndarray:
    """Greedy rotated NMS. Returns indices into ``boxes`` of the kept boxes, highest score first.

    A box is suppressed when its BEV IoU (float64) with a kept, higher-scored box is
    ``> iou_threshold`` (``rule`` ``above``: the CUDA NMS kernels of OpenPCDet, mmcv and
    zhulf0804) or ``>= iou_threshold`` (``at_least``: mmcv's CPU ``nms_rotated``). Equal scores
    keep input order (stable sort).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    b = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 7)
    return _nms(b, order.astype(np.int64), float(iou_threshold), int(max_keep or len(boxes)), rule == Comparison.AT_LEAST)
