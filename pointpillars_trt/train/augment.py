"""Global and per-object augmentations (OpenPCDet's ``augmentor_utils``), on points and boxes together.

Each function takes ``points [N, >=3]`` float32, canonical ``boxes [G, 7]`` and a
``numpy.random.Generator``, and returns new arrays; a point inside a box stays inside it (:func:`tilt`:
to within a few centimetres).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..postprocess import iou_bev
from .geometry import points_in_boxes, rotate_z


def flip_x(points: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror across the x axis (``y -> -y``, ``yaw -> -yaw``), OpenPCDet's ``random_flip_along_x``."""
    p, b = points.copy(), boxes.copy()
    p[:, 1] = -p[:, 1]
    b[:, 1] = -b[:, 1]
    b[:, 6] = -b[:, 6]
    return p, b


def rotate(points: np.ndarray, boxes: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the scene CCW by ``angle`` about the LiDAR z axis."""
    p = rotate_z(points, angle)
    b = rotate_z(boxes, angle)
    b[:, 6] += angle
    return p.astype(points.dtype), b.astype(boxes.dtype)


def scale(points: np.ndarray, boxes: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale the scene about the sensor origin: xyz and box centres and sizes times ``factor``."""
    p, b = points.copy(), boxes.copy()
    p[:, :3] *= factor
    b[:, :6] *= factor
    return p, b


def tilt(points: np.ndarray, boxes: np.ndarray, pitch: float, roll: float) -> tuple[np.ndarray, np.ndarray]:
    """The scene as a sensor pitched by ``pitch`` (about the y axis, positive: far points lower) and
    rolled by ``roll`` (about the x axis, positive: points on the left, +y, higher), in radians, both
    about the sensor origin: points and box centres are rotated; boxes stay upright (size and yaw
    unchanged), so a point inside a box stays inside it to within ``h / 2 * sin`` of the angle (3 cm
    for a 1.5 m tall car at 2 degrees). Roads on a grade, seen from a level sensor, look the same
    far from the sensor: a ground ``angle * range`` higher or lower."""
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]]) @ np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    p, b = points.copy(), boxes.copy()
    p[:, :3] = (points[:, :3].astype(np.float64) @ rot.T).astype(points.dtype)
    b[:, :3] = (boxes[:, :3].astype(np.float64) @ rot.T).astype(boxes.dtype)
    return p, b


def random_tilt(points, boxes, rng: np.random.Generator, sigma: float, clip: float = 2.5):
    """:func:`tilt` by a pitch and a roll each ``N(0, sigma)`` radians, clipped to ``clip * sigma``
    (vehicle pitch under braking, banked and graded roads); no draw when ``sigma`` is 0."""
    if sigma <= 0:
        return points, boxes
    pitch, roll = np.clip(rng.normal(0.0, sigma, 2), -clip * sigma, clip * sigma)
    return tilt(points, boxes, float(pitch), float(roll))


def random_flip_x(points, boxes, rng: np.random.Generator, prob: float = 0.5):
    return flip_x(points, boxes) if rng.random() < prob else (points, boxes)


def random_rotation(points, boxes, rng: np.random.Generator, limits=(-np.pi / 4, np.pi / 4)):
    return rotate(points, boxes, float(rng.uniform(limits[0], limits[1])))


def random_scaling(points, boxes, rng: np.random.Generator, limits=(0.95, 1.05)):
    if limits[1] - limits[0] < 1e-3:
        return points, boxes
    return scale(points, boxes, float(rng.uniform(limits[0], limits[1])))


def object_noise(
    points: np.ndarray,
    boxes: np.ndarray,
    rng: np.random.Generator,
    translation_std=(0.25, 0.25, 0.25),
    rotation_range=(-np.pi / 20, np.pi / 20),
    tries: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Move and turn each box (with its points) by a random offset (normal, ``translation_std``) and
    yaw (uniform in ``rotation_range``) about its centre; a box keeps its first draw whose BEV
    footprint does not touch any other box, or stays put (SECOND's ``noise_per_object``)."""
    if len(boxes) == 0:
        return points, boxes
    p, b = points.copy(), boxes.copy()
    inside = points_in_boxes(points, boxes)
    moved = np.zeros(len(points), dtype=bool)
    for k in range(len(b)):
        others = np.delete(b, k, axis=0)
        for _ in range(tries):
            t = rng.normal(0.0, translation_std).astype(np.float32)
            r = np.float32(rng.uniform(rotation_range[0], rotation_range[1]))
            cand = b[k].copy()
            cand[:3] += t
            cand[6] += r
            if len(others) and iou_bev(cand[None], others).max() > 0:
                continue
            sel = inside[:, k] & ~moved
            local = p[sel, :3] - b[k, :3]
            local = rotate_z(local, float(r))
            p[sel, :3] = local + cand[:3]
            moved |= sel
            b[k] = cand
            break
    return p, b


# --- domain robustness (synthetic to real): sparsity, missing beams, intensity -------------------


def random_point_dropout(points: np.ndarray, rng: np.random.Generator, max_fraction: float) -> np.ndarray:
    """Drop a share ``U(0, max_fraction)`` of the points, uniformly (another sensor's density)."""
    if max_fraction <= 0 or len(points) == 0:
        return points
    return points[rng.random(len(points)) >= rng.uniform(0.0, max_fraction)]


def random_beam_dropout(points: np.ndarray, rng: np.random.Generator, prob: float, band_deg: float = 0.42) -> np.ndarray:
    """Drop whole elevation bands ``band_deg`` wide (about one HDL-64E beam each), each with
    probability ``prob`` (dead or dim lasers, sparser sensors). Elevation is ``atan2(z, hypot(x, y))``
    from the sensor origin."""
    if prob <= 0 or len(points) == 0:
        return points
    el = np.degrees(np.arctan2(points[:, 2], np.hypot(points[:, 0], points[:, 1])))
    band = np.floor((el + 90.0) / band_deg).astype(np.int64)
    dead = rng.random(int(180.0 / band_deg) + 2) < prob
    return points[~dead[np.clip(band, 0, len(dead) - 1)]]


def jitter_intensity(points: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Intensity (column 3) times a per-frame ``exp(N(0, sigma))`` and a per-point ``1 + N(0, sigma / 2)``,
    a share ``U(0, sigma)`` of points set to 0, clipped to [0, 1] and quantised to 0.01 (KITTI's)."""
    if sigma <= 0 or len(points) == 0 or points.shape[1] < 4:
        return points
    p = points.copy()
    i = p[:, 3] * np.exp(rng.normal(0.0, sigma)) * (1.0 + rng.normal(0.0, sigma / 2, len(p)))
    i[rng.random(len(p)) < rng.uniform(0.0, sigma)] = 0.0
    p[:, 3] = np.round(np.clip(i, 0.0, 1.0), 2)
    return p


def _drop_per_box(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, prob: float, min_points: int,
                  lose: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """The loop of the per-box point augmentations: with probability ``prob`` per box ``k``, drop the
    points ``lose(idx, k)`` marks (bool over ``idx``, box ``k``'s points that no earlier box dropped),
    unless fewer than ``min_points`` would remain. ``lose`` draws from ``rng``, box by box. No draw at
    all when ``prob`` is 0 or nothing is there."""
    if prob <= 0 or len(boxes) == 0 or len(points) == 0:
        return points
    inside = points_in_boxes(points, boxes)
    drop = np.zeros(len(points), dtype=bool)
    for k in np.flatnonzero(rng.random(len(boxes)) < prob):
        idx = np.flatnonzero(inside[:, k] & ~drop)
        gone = lose(idx, k)
        if len(idx) - int(gone.sum()) >= min_points:
            drop[idx[gone]] = True
    return points[~drop]


def _along(points: np.ndarray, centre: np.ndarray, angle: float) -> np.ndarray:
    """BEV offsets of ``points [N, >=2]`` from ``centre [>=2]`` projected on the direction ``angle``."""
    d = points[:, :2] - centre[:2]
    return d[:, 0] * np.cos(angle) + d[:, 1] * np.sin(angle)


def keep_object_ends(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, prob: float,
                     keep: tuple[float, float] = (0.15, 0.5), min_points: int = 3) -> np.ndarray:
    """With probability ``prob`` per box: keep only its points in one end of its length (either end,
    a share ``U(keep)`` of the length), as of a car seen past an occluder or cut by the view's edge; the
    whole box stays the target. ``boxes [G, 7]`` ``(x, y, z, l, w, h, yaw)``, the length along yaw. A
    box keeps its points when fewer than ``min_points`` would remain. No draw at all when ``prob`` is 0."""

    def lose(idx: np.ndarray, k: int) -> np.ndarray:
        share, end = rng.uniform(*keep), (1.0 if rng.random() < 0.5 else -1.0)
        along = end * _along(points[idx], boxes[k], boxes[k, 6])  # toward the kept end
        return along < boxes[k, 3] * (0.5 - share)

    return _drop_per_box(points, boxes, rng, prob, min_points, lose)


def keep_object_runs(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, prob: float,
                     run: tuple[float, float] = (0.8, 2.0), min_points: int = 3) -> np.ndarray:
    """With probability ``prob`` per box: keep only its points in one run of its length, ``U(run)`` metres long
    (at most the length) and anywhere along it, as of a crossing car whose side is seen between occluders or up to
    the view's edge: a run as long as a car is wide reads as a car's back (docs/MODEL_CARD.md, 2026-12-06); the
    whole box stays the target. ``boxes [G, 7]`` ``(x, y, z, l, w, h, yaw)``, the length along yaw. A box keeps its
    points when fewer than ``min_points`` would remain. No draw at all when ``prob`` is 0."""

    def lose(idx: np.ndarray, k: int) -> np.ndarray:
        length = float(boxes[k, 3])
        keep = min(float(rng.uniform(*run)), length)
        x0 = float(rng.uniform(-length / 2, length / 2 - keep))
        along = _along(points[idx], boxes[k], boxes[k, 6])
        return (along < x0) | (along > x0 + keep)

    return _drop_per_box(points, boxes, rng, prob, min_points, lose)


def sparsify_objects(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, prob: float, min_points: int = 5) -> np.ndarray:
    """With probability ``prob`` per box: keep a share ``U(0.15, 1)`` of its points, and half the
    time only those on one side of a random vertical plane through its centre (a far or partly
    seen object). A box keeps its points when fewer than ``min_points`` would remain."""

    def lose(idx: np.ndarray, k: int) -> np.ndarray:
        gone = rng.random(len(idx)) >= rng.uniform(0.15, 1.0)
        if rng.random() < 0.5:
            gone |= _along(points[idx], boxes[k], rng.uniform(-np.pi, np.pi)) > 0
        return gone

    return _drop_per_box(points, boxes, rng, prob, min_points, lose)
