"""Far GT sampling: move a sampled object away from the sensor, thinned as a LiDAR would see it there.

A database object seen at BEV range ``r0`` is turned about the sensor's z axis (so its side facing
the sensor stays the one facing it) and pushed out along its new azimuth to a range ``r1 >= r0``;
its points keep a random share ``(r0 / r1) ** 2`` (a spinning LiDAR's returns per object fall with
the square of the range: both angular steps are fixed). Its box bottom is set on the ground near
the new place (a low percentile of the frame's points there) when there are enough of them, else it
keeps its height. The new centre lies in ``bounds`` (the model's point-cloud range) and in the
range interval ``ranges``; nothing here assumes a particular sensor or dataset.

Cut at the view's edge (``edge_share``): when the frame's points cover only part of the circle (a
camera-view crop such as KITTI's ``velodyne_reduced``), a share of the moved objects is put across one
end of that span (:func:`view_edges`: the ends of the widest azimuth gap of the points), with its
centre within half its angular half-width of the edge, and its points beyond the edge are dropped:
a far, sparse object cut by the crop, whose whole box stays the target, like a labelled cut object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..postprocess import limit_period
from ..viz.box_geometry import box_corners_bev
from .geometry import rotate_z


@dataclass(frozen=True)
class FarPlacement:
    """``share``: probability per sampled object of being moved; ``ranges``: ``(r_min, r_max)``
    BEV range of the new centre (m); ``bounds``: ``(x_min, y_min, x_max, y_max)`` of the new centre;
    ``min_points``: a move that would leave fewer points is not made; ``tries``: azimuth draws."""

    share: float
    ranges: tuple[float, float]
    bounds: tuple[float, float, float, float]
    min_points: int = 5
    tries: int = 20
    edge_share: float = 0.0


Edges = tuple[float, float]  # (start, end) azimuths (radians) of the points' span, counter-clockwise


def _wrap(a):
    """Angles (radians) into ``[-pi, pi)`` (:func:`~pointpillars_trt.postprocess.limit_period`)."""
    return limit_period(a, 0.5, 2 * np.pi)


def view_edges(points: np.ndarray, min_gap: float = math.radians(30), min_range: float = 2.0) -> Edges | None:
    """The ends of the widest azimuth gap of ``points [N, >=2]`` (those beyond ``min_range`` m, BEV):
    ``(start, end)``, the points' span running counter-clockwise from ``start`` to ``end``; None when
    that gap is narrower than ``min_gap`` (a full sweep) or fewer than 2 points count."""
    xy = points[:, :2]
    far = xy[:, 0] ** 2 + xy[:, 1] ** 2 >= min_range * min_range
    if int(far.sum()) < 2:
        return None
    az = np.sort(np.arctan2(xy[far, 1], xy[far, 0]))
    gaps = np.append(np.diff(az), az[0] + 2 * np.pi - az[-1])
    i = int(np.argmax(gaps))
    if gaps[i] < min_gap:
        return None
    return float(az[(i + 1) % len(az)]), float(az[i])


def angular_half_width(box: np.ndarray) -> float:
    """Half the azimuth span (radians) of ``box [7]``'s BEV corners as seen from the origin (the box
    not containing it)."""
    corners = box_corners_bev(np.asarray(box)[None])[0]  # [4, 2]
    d = _wrap(np.arctan2(corners[:, 1], corners[:, 0]) - math.atan2(float(box[1]), float(box[0])))
    return 0.5 * float(d.max() - d.min())


def edge_azimuth(edges: Edges, half_width: float, rng: np.random.Generator) -> tuple[float, float, int]:
    """``(azimuth, edge, outward)`` for an object of angular ``half_width`` (radians) put across one end of
    ``edges`` (drawn at random): its centre within ``half_width / 2`` of the edge; ``outward`` is +1 when
    the outside lies at larger azimuths (the span's end), -1 at its start."""
    side = int(rng.integers(2))
    edge, outward = (edges[1], 1) if side else (edges[0], -1)
    return float(_wrap(edge + outward * rng.uniform(-0.5, 0.5) * half_width)), edge, outward


def ground_height(points: np.ndarray, x: float, y: float, radius: float = 2.5, min_count: int = 3) -> float | None:
    """The 10th percentile of the z of ``points [N, >=3]`` within ``radius`` (BEV) of ``(x, y)``,
    or None with fewer than ``min_count`` of them."""
    near = (points[:, 0] - x) ** 2 + (points[:, 1] - y) ** 2 <= radius * radius
    if int(near.sum()) < min_count:
        return None
    return float(np.percentile(points[near, 2], 10))


def far_target(box: np.ndarray, rng: np.random.Generator, far: FarPlacement,
               edges: Edges | None = None) -> tuple[float, float, tuple[float, int] | None] | None:
    """``(turn, scale, cut)`` that move ``box``'s centre to a new place at range ``r1 >= r0`` inside
    ``far.bounds``: turn about z by ``turn`` (radians), then scale the BEV centre by ``scale = r1 / r0``;
    with ``edges``, the new azimuth is across one of them (:func:`edge_azimuth`) and ``cut = (edge,
    outward)``, else anywhere and ``cut`` None. None when the object is at the origin, already beyond
    ``far.ranges``, or no draw fits."""
    r0 = math.hypot(float(box[0]), float(box[1]))
    lo, hi = max(far.ranges[0], r0), far.ranges[1]
    if r0 < 1.0 or lo >= hi:
        return None
    x0, y0, x1, y1 = far.bounds
    a0 = math.atan2(float(box[1]), float(box[0]))
    span = angular_half_width(box) * r0 if edges is not None else 0.0  # the half-width at range r1 is span / r1
    for _ in range(far.tries):
        r1 = float(rng.uniform(lo, hi))
        cut = None
        if edges is not None:
            a1, edge, outward = edge_azimuth(edges, span / r1, rng)
            cut = (edge, outward)
        else:
            a1 = float(rng.uniform(-math.pi, math.pi))
        x, y = r1 * math.cos(a1), r1 * math.sin(a1)
        if x0 <= x <= x1 and y0 <= y <= y1:
            return a1 - a0, r1 / r0, cut
    return None


def inside_view(xy: np.ndarray, edge: float, outward: int) -> np.ndarray:
    """``[N]`` bool: points ``xy [N, >=2]`` on the span's side of azimuth ``edge`` (``outward``: see
    :func:`edge_azimuth`), for points within half a turn of the edge (an object across it)."""
    return outward * _wrap(np.arctan2(xy[:, 1], xy[:, 0]) - edge) <= 0


def place_far(
    box: np.ndarray, rel_points: np.ndarray, scene_points: np.ndarray, rng: np.random.Generator, far: FarPlacement,
    edges: Edges | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Move one database object (``box [7]``, ``rel_points [M, 4]`` relative to its centre) far away
    (see the module docstring); ``scene_points [N, >=3]`` give the ground; with ``edges`` (the scene's
    :func:`view_edges`) it is cut there. Returns the new box and its points relative to the new centre,
    or None when it stays where it is (also when fewer than ``far.min_points`` points would be left)."""
    target = far_target(box, rng, far, edges)
    if target is None:
        return None
    turn, scale, cut = target
    keep = rng.random(len(rel_points)) < 1.0 / (scale * scale)
    new = np.array(box, dtype=np.float32, copy=True)
    new[:2] = rotate_z(np.asarray(box[None, :3], dtype=np.float64), turn)[0, :2] * scale
    new[6] = box[6] + turn
    pts = rel_points[keep].copy()
    pts[:, :3] = rotate_z(pts[:, :3], turn)
    if cut is not None:
        pts = pts[inside_view(pts[:, :2] + new[:2], *cut)]
    if len(pts) < far.min_points:
        return None
    ground = ground_height(scene_points, float(new[0]), float(new[1]))
    if ground is not None:
        new[2] = ground + 0.5 * box[5]
    return new, pts.astype(np.float32)
