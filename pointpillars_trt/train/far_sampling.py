"""Far GT sampling: move a sampled object away from the sensor, thinned as a LiDAR would see it there.

A database object seen at BEV range ``r0`` is turned about the sensor's z axis (so its side facing
the sensor stays the one facing it) and pushed out along its new azimuth to a range ``r1 >= r0``;
its points keep a random share ``(r0 / r1) ** 2`` (a spinning LiDAR's returns per object fall with
the square of the range: both angular steps are fixed). Its box bottom is set on the ground near
the new place (a low percentile of the frame's points there) when there are enough of them, else it
keeps its height. The new centre lies in ``bounds`` (the model's point-cloud range) and in the
range interval ``ranges``; nothing here assumes a particular sensor or dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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


def ground_height(points: np.ndarray, x: float, y: float, radius: float = 2.5, min_count: int = 3) -> float | None:
    """The 10th percentile of the z of ``points [N, >=3]`` within ``radius`` (BEV) of ``(x, y)``,
    or None with fewer than ``min_count`` of them."""
    near = (points[:, 0] - x) ** 2 + (points[:, 1] - y) ** 2 <= radius * radius
    if int(near.sum()) < min_count:
        return None
    return float(np.percentile(points[near, 2], 10))


def far_target(box: np.ndarray, rng: np.random.Generator, far: FarPlacement) -> tuple[float, float] | None:
    """``(turn, scale)`` that move ``box``'s centre to a new place at range ``r1 >= r0`` inside
    ``far.bounds``: turn about z by ``turn`` (radians), then scale the BEV centre by ``scale = r1 / r0``;
    None when the object is at the origin, already beyond ``far.ranges``, or no draw fits."""
    r0 = math.hypot(float(box[0]), float(box[1]))
    lo, hi = max(far.ranges[0], r0), far.ranges[1]
    if r0 < 1.0 or lo >= hi:
        return None
    x0, y0, x1, y1 = far.bounds
    a0 = math.atan2(float(box[1]), float(box[0]))
    for _ in range(far.tries):
        r1 = float(rng.uniform(lo, hi))
        a1 = float(rng.uniform(-math.pi, math.pi))
        x, y = r1 * math.cos(a1), r1 * math.sin(a1)
        if x0 <= x <= x1 and y0 <= y <= y1:
            return a1 - a0, r1 / r0
    return None


def place_far(
    box: np.ndarray, rel_points: np.ndarray, scene_points: np.ndarray, rng: np.random.Generator, far: FarPlacement
) -> tuple[np.ndarray, np.ndarray] | None:
    """Move one database object (``box [7]``, ``rel_points [M, 4]`` relative to its centre) far away
    (see the module docstring); ``scene_points [N, >=3]`` give the ground. Returns the new box and
    its points relative to the new centre, or None when it stays where it is."""
    target = far_target(box, rng, far)
    if target is None:
        return None
    turn, scale = target
    keep = rng.random(len(rel_points)) < 1.0 / (scale * scale)
    if int(keep.sum()) < far.min_points:
        return None
    new = np.array(box, dtype=np.float32, copy=True)
    new[:2] = rotate_z(np.asarray(box[None, :3], dtype=np.float64), turn)[0, :2] * scale
    new[6] = box[6] + turn
    ground = ground_height(scene_points, float(new[0]), float(new[1]))
    if ground is not None:
        new[2] = ground + 0.5 * box[5]
    pts = rel_points[keep].copy()
    pts[:, :3] = rotate_z(pts[:, :3], turn)
    return new, pts.astype(np.float32)
