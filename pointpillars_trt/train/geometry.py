"""Box and point geometry used by the data pipeline (LiDAR frame, canonical boxes).

Boxes are ``[N, 7]`` ``(x, y, z_centre, dx=length, dy=width, dz=height, yaw)``, yaw CCW from +x
about +z. Points are ``[N, >=3]`` with x, y, z first.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _points_in_boxes(points, boxes, extra, out):
    n = points.shape[0]
    for b in range(boxes.shape[0]):
        cx, cy, cz = boxes[b, 0], boxes[b, 1], boxes[b, 2]
        hl = 0.5 * boxes[b, 3] + extra
        hw = 0.5 * boxes[b, 4] + extra
        hh = 0.5 * boxes[b, 5] + extra
        c = np.cos(boxes[b, 6])
        s = np.sin(boxes[b, 6])
        r2 = hl * hl + hw * hw
        for i in range(n):
            dx = points[i, 0] - cx
            dy = points[i, 1] - cy
            if dx * dx + dy * dy > r2:
                continue
            dz = points[i, 2] - cz
            if dz > hh or dz < -hh:
                continue
            lx = dx * c + dy * s
            if lx > hl or lx < -hl:
                continue
            ly = -dx * s + dy * c
            if ly > hw or ly < -hw:
                continue
            out[i, b] = True


def points_in_boxes(points: np.ndarray, boxes: np.ndarray, extra: float = 0.0) -> np.ndarray:
    """Boolean ``[N, B]``: point ``i`` lies inside box ``b`` (faces included), each half-extent
    enlarged by ``extra`` metres."""
    pts = np.ascontiguousarray(np.asarray(points)[:, :3], dtype=np.float64)
    bx = np.ascontiguousarray(np.asarray(boxes, dtype=np.float64).reshape(-1, 7))
    out = np.zeros((pts.shape[0], bx.shape[0]), dtype=np.bool_)
    if len(pts) and len(bx):
        _points_in_boxes(pts, bx, float(extra), out)
    return out


def points_in_any_box(points: np.ndarray, boxes: np.ndarray, extra: float = 0.0) -> np.ndarray:
    """Boolean ``[N]``: the point lies inside at least one of ``boxes``."""
    return points_in_boxes(points, boxes, extra).any(axis=1)


def count_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Int ``[B]``: how many of ``points`` lie inside each box."""
    return points_in_boxes(points, boxes).sum(axis=0).astype(np.int64)


def rotate_z(xy: np.ndarray, angle: float) -> np.ndarray:
    """Rotate ``[N, >=2]`` coordinates CCW by ``angle`` about the origin (x, y columns only); returns a copy."""
    out = np.array(xy, copy=True)
    c, s = np.cos(angle), np.sin(angle)
    x, y = xy[:, 0].copy(), xy[:, 1].copy()
    out[:, 0] = x * c - y * s
    out[:, 1] = x * s + y * c
    return out


def boxes_in_range(boxes: np.ndarray, point_cloud_range) -> np.ndarray:
    """Boolean ``[N]``: the box centre lies in the xy extent of the range (OpenPCDet's
    ``mask_boxes_outside_range_numpy`` with its centre rule; z is not tested)."""
    r = point_cloud_range
    b = np.asarray(boxes).reshape(-1, 7)
    return (b[:, 0] >= r[0]) & (b[:, 0] <= r[3]) & (b[:, 1] >= r[1]) & (b[:, 1] <= r[4])


def points_in_range(points: np.ndarray, point_cloud_range) -> np.ndarray:
    """Boolean ``[N]``: the point lies inside the point-cloud range (all three axes, max exclusive)."""
    r = point_cloud_range
    p = points
    return (
        (p[:, 0] >= r[0]) & (p[:, 0] < r[3]) & (p[:, 1] >= r[1]) & (p[:, 1] < r[4]) & (p[:, 2] >= r[2]) & (p[:, 2] < r[5])
    )
