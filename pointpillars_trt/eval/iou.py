"""Box overlaps for the KITTI evaluation: 2D image boxes, rotated bird's-eye-view boxes and 3D boxes.

Rotated overlaps are exact: the intersection of two rectangles is found by clipping one convex
polygon with the other (Sutherland-Hodgman) and measuring it with the shoelace formula, in float64,
with numba on the CPU. The batched ``*_frames`` functions take many frames at once in CSR layout
(boxes of all frames concatenated, ``offsets[f]:offsets[f+1]`` the rows of frame ``f``) and return
every frame's ``[n_boxes, n_query]`` matrix flattened into one array, frames in parallel.

Conventions:

* Image boxes ``(x1, y1, x2, y2)`` pixels.
* BEV rectangles ``(cx, cy, dx, dy, heading)``: centre, extent along the heading, extent across it,
  heading counter-clockwise from +x in the ``(cx, cy)`` plane. A KITTI camera box
  ``(x, y, z, l, h, w, ry)`` lies in the ``(x, z)`` plane as ``(x, z, l, w, -ry)``.
* 3D camera boxes ``(x, y, z, l, h, w, ry)``: bottom centre, so the box spans ``[y - h, y]`` in y.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..postprocess.polygon import convex_intersection_area, rect_corners

__all__ = [
    "camera_boxes_to_bev",
    "image_box_overlap",
    "image_box_overlap_frames",
    "iou_3d_camera",
    "iou_3d_camera_frames",
    "rotated_iou_bev",
    "rotated_iou_bev_frames",
    "pair_offsets",
]

_MAX_VERTICES = 16  # clipping a quadrilateral by 4 half-planes gives at most 8 vertices


@numba.njit(cache=True)
def _rect_corners(box, out):
    """``box`` (cx, cy, dx, dy, heading) -> ``out`` [4, 2] corners, counter-clockwise."""
    rect_corners(box[0], box[1], box[2], box[3], box[4], out)


@numba.njit(cache=True)
def _frame_bev_intersections(boxes, qboxes, out):
    """Intersection areas of BEV rectangles ``boxes`` [N, 5] x ``qboxes`` [K, 5] into ``out`` [N*K]."""
    n = boxes.shape[0]
    k = qboxes.shape[0]
    ca = np.empty((n, 4, 2))
    cb = np.empty((k, 4, 2))
    ra = np.empty(n)
    rb = np.empty(k)
    for i in range(n):
        _rect_corners(boxes[i], ca[i])
        ra[i] = 0.5 * math.sqrt(boxes[i, 2] ** 2 + boxes[i, 3] ** 2)
    for j in range(k):
        _rect_corners(qboxes[j], cb[j])
        rb[j] = 0.5 * math.sqrt(qboxes[j, 2] ** 2 + qboxes[j, 3] ** 2)
    buf_a = np.empty((_MAX_VERTICES, 2))
    buf_b = np.empty((_MAX_VERTICES, 2))
    for i in range(n):
        for j in range(k):
            dx = boxes[i, 0] - qboxes[j, 0]
            dy = boxes[i, 1] - qboxes[j, 1]
            reach = ra[i] + rb[j]
            if dx * dx + dy * dy >= reach * reach:
                out[i * k + j] = 0.0
            else:
                out[i * k + j] = convex_intersection_area(ca[i], cb[j], buf_a, buf_b)


@numba.njit(cache=True)
def _bev_ratio(inter, area_a, area_b, criterion):
    if criterion == -1:
        union = area_a + area_b - inter
    elif criterion == 0:
        union = area_a
    elif criterion == 1:
        union = area_b
    else:
        return inter
    return inter / union if union > 0.0 else 0.0


@numba.njit(cache=True, parallel=True)
def _bev_frames(boxes, offsets, qboxes, qoffsets, out_offsets, criterion):
    out = np.zeros(out_offsets[-1])
    for f in numba.prange(offsets.shape[0] - 1):
        a = boxes[offsets[f] : offsets[f + 1]]
        b = qboxes[qoffsets[f] : qoffsets[f + 1]]
        block = out[out_offsets[f] : out_offsets[f + 1]]
        _frame_bev_intersections(a, b, block)
        nb = b.shape[0]
        for i in range(a.shape[0]):
            for j in range(nb):
                v = block[i * nb + j]
                if v > 0.0:
                    block[i * nb + j] = _bev_ratio(v, a[i, 2] * a[i, 3], b[j, 2] * b[j, 3], criterion)
    return out


@numba.njit(cache=True, parallel=True)
def _iou3d_frames(boxes, offsets, qboxes, qoffsets, out_offsets, criterion, bev, qbev):
    """``bev``/``qbev``: the boxes' BEV rectangles (:func:`camera_boxes_to_bev`), row for row."""
    out = np.zeros(out_offsets[-1])
    for f in numba.prange(offsets.shape[0] - 1):
        a = boxes[offsets[f] : offsets[f + 1]]
        b = qboxes[qoffsets[f] : qoffsets[f + 1]]
        na = a.shape[0]
        nb = b.shape[0]
        bev_a = bev[offsets[f] : offsets[f + 1]]
        bev_b = qbev[qoffsets[f] : qoffsets[f + 1]]
        block = out[out_offsets[f] : out_offsets[f + 1]]
        _frame_bev_intersections(bev_a, bev_b, block)
        for i in range(na):
            for j in range(nb):
                inter = block[i * nb + j]
                if inter <= 0.0:
                    block[i * nb + j] = 0.0
                    continue
                # camera y points down; the box spans [y - h, y]
                ih = min(a[i, 1], b[j, 1]) - max(a[i, 1] - a[i, 4], b[j, 1] - b[j, 4])
                if ih <= 0.0:
                    block[i * nb + j] = 0.0
                    continue
                inc = ih * inter
                vol_a = a[i, 3] * a[i, 4] * a[i, 5]
                vol_b = b[j, 3] * b[j, 4] * b[j, 5]
                block[i * nb + j] = _bev_ratio(inc, vol_a, vol_b, criterion)
    return out


@numba.njit(cache=True, parallel=True)
def _image_frames(boxes, offsets, qboxes, qoffsets, out_offsets, criterion):
    out = np.zeros(out_offsets[-1])
    for f in numba.prange(offsets.shape[0] - 1):
        a = boxes[offsets[f] : offsets[f + 1]]
        b = qboxes[qoffsets[f] : qoffsets[f + 1]]
        nb = b.shape[0]
        base = out_offsets[f]
        for i in range(a.shape[0]):
            area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
            for j in range(nb):
                iw = min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0])
                if iw <= 0.0:
                    continue
                ih = min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1])
                if ih <= 0.0:
                    continue
                area_b = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
                out[base + i * nb + j] = _bev_ratio(iw * ih, area_a, area_b, criterion)
    return out


# --------------------------------------------------------------------------------------------------
# public wrappers


def pair_offsets(offsets: np.ndarray, qoffsets: np.ndarray) -> np.ndarray:
    """CSR offsets of the flattened per-frame ``[n_f, k_f]`` matrices: ``[0, n_0*k_0, ...]`` (int64)."""
    counts = np.diff(offsets) * np.diff(qoffsets)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _frames_args(boxes, offsets, qboxes, qoffsets, width):
    boxes = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, width)
    qboxes = np.ascontiguousarray(qboxes, dtype=np.float64).reshape(-1, width)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    qoffsets = np.ascontiguousarray(qoffsets, dtype=np.int64)
    if offsets.shape != qoffsets.shape or offsets[-1] != len(boxes) or qoffsets[-1] != len(qboxes):
        raise ValueError("overlap: offsets do not match the box arrays")
    return boxes, offsets, qboxes, qoffsets, pair_offsets(offsets, qoffsets)


def _check_criterion(criterion: int) -> int:
    if criterion not in (-1, 0, 1, 2):
        raise ValueError(f"criterion must be -1 (IoU), 0 (/area of boxes), 1 (/area of qboxes) or 2 (raw), got {criterion}")
    return int(criterion)


def image_box_overlap_frames(boxes, offsets, qboxes, qoffsets, criterion: int = -1) -> np.ndarray:
    """Per-frame 2D overlaps, flattened (see module docstring). ``criterion`` -1: IoU, 0: intersection
    over the area of ``boxes``, 1: over the area of ``qboxes``, 2: intersection area."""
    args = _frames_args(boxes, offsets, qboxes, qoffsets, 4)
    return _image_frames(*args, _check_criterion(criterion))


def rotated_iou_bev_frames(boxes, offsets, qboxes, qoffsets, criterion: int = -1) -> np.ndarray:
    """Per-frame rotated BEV overlaps of ``(cx, cy, dx, dy, heading)`` rectangles, flattened."""
    args = _frames_args(boxes, offsets, qboxes, qoffsets, 5)
    return _bev_frames(*args, _check_criterion(criterion))


def iou_3d_camera_frames(boxes, offsets, qboxes, qoffsets, criterion: int = -1) -> np.ndarray:
    """Per-frame 3D overlaps of KITTI camera boxes ``(x, y, z, l, h, w, ry)``, flattened:
    BEV intersection area times the y overlap, over the union volume (``criterion=-1``)."""
    args = _frames_args(boxes, offsets, qboxes, qoffsets, 7)
    return _iou3d_frames(*args, _check_criterion(criterion), camera_boxes_to_bev(args[0]), camera_boxes_to_bev(args[2]))


def _single(fn, boxes, qboxes, width, criterion):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, width)
    qboxes = np.asarray(qboxes, dtype=np.float64).reshape(-1, width)
    flat = fn(boxes, [0, len(boxes)], qboxes, [0, len(qboxes)], criterion)
    return flat.reshape(len(boxes), len(qboxes))


def image_box_overlap(boxes, qboxes, criterion: int = -1) -> np.ndarray:
    """2D box overlaps [N, K] of ``boxes`` [N, 4] and ``qboxes`` [K, 4] ``(x1, y1, x2, y2)``."""
    return _single(image_box_overlap_frames, boxes, qboxes, 4, criterion)


def rotated_iou_bev(boxes, qboxes, criterion: int = -1) -> np.ndarray:
    """Exact rotated IoU [N, K] of rectangles ``(cx, cy, dx, dy, heading)`` [N, 5] and [K, 5]."""
    return _single(rotated_iou_bev_frames, boxes, qboxes, 5, criterion)


def iou_3d_camera(boxes, qboxes, criterion: int = -1) -> np.ndarray:
    """Exact 3D IoU [N, K] of KITTI camera boxes ``(x, y, z, l, h, w, ry)`` [N, 7] and [K, 7]."""
    return _single(iou_3d_camera_frames, boxes, qboxes, 7, criterion)


def camera_boxes_to_bev(boxes_camera: np.ndarray) -> np.ndarray:
    """KITTI camera boxes [N, 7] -> BEV rectangles [N, 5] ``(x, z, l, w, -ry)`` in the ``(x, z)`` plane."""
    cam = np.asarray(boxes_camera, dtype=np.float64).reshape(-1, 7)
    return np.column_stack([cam[:, 0], cam[:, 2], cam[:, 3], cam[:, 5], -cam[:, 6]])
