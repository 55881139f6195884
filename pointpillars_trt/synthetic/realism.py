"""Realism statistics of LiDAR frames, to compare a generator version with real KITTI frames.

All functions take clouds ``[N, >=4]`` float32 ``(x, y, z, intensity)`` in the LiDAR frame and
(where needed) canonical boxes ``[K, 7]``; ranges are BEV distances ``hypot(x, y)`` in metres,
binned by ``bins`` (edges, ascending). Statistics of real frames with reference boxes are for
validation only; nothing here feeds a generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..io.kitti import fov_mask
from .frame import points_in_boxes
from .kitti_writer import IMAGE_SHAPE
from .versions import GeneratorSettings

RANGE_EDGES = (5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 80.0)


@dataclass
class RealismStats:
    """Pooled statistics of a set of frames (see :func:`add_frame`)."""

    edges: tuple[float, ...] = RANGE_EDGES
    intensities: list[list[np.ndarray]] = field(default_factory=list)
    box_points: list[list[int]] = field(default_factory=list)
    box_zero_intensity: list[list[float]] = field(default_factory=list)
    frames: int = 0
    points: int = 0

    def __post_init__(self) -> None:
        n = len(self.edges) - 1
        self.intensities = [[] for _ in range(n)]
        self.box_points = [[] for _ in range(n)]
        self.box_zero_intensity = [[] for _ in range(n)]

    def bin_of(self, r: np.ndarray) -> np.ndarray:
        """``[N]`` bin index of ranges ``r`` (-1 outside the edges)."""
        b = np.searchsorted(np.asarray(self.edges), r, side="right") - 1
        return np.where((b >= 0) & (b < len(self.edges) - 1), b, -1)

    def add_frame(self, points: np.ndarray, car_boxes: np.ndarray) -> None:
        """Add a cloud's intensities per range bin and its cars' point counts and zero-intensity shares."""
        self.frames += 1
        self.points += len(points)
        b = self.bin_of(np.hypot(points[:, 0], points[:, 1]))
        for k in range(len(self.edges) - 1):
            self.intensities[k].append(points[b == k, 3])
        if len(car_boxes) == 0:
            return
        inside = points_in_boxes(points, car_boxes)
        for k, kb in enumerate(self.bin_of(np.hypot(car_boxes[:, 0], car_boxes[:, 1]))):
            mine = points[inside[:, k], 3]
            if kb >= 0 and len(mine):
                self.box_points[kb].append(len(mine))
                self.box_zero_intensity[kb].append(float((mine == 0).mean()))

    def table(self) -> list[dict]:
        """One row per range bin: zero-intensity share, mean intensity, cars, median car points and
        median zero-intensity share of car points."""
        rows = []
        for k in range(len(self.edges) - 1):
            i = np.concatenate(self.intensities[k]) if self.intensities[k] else np.zeros(0)
            rows.append({
                "range": f"{self.edges[k]:g}-{self.edges[k + 1]:g}",
                "zero_intensity": float((i == 0).mean()) if len(i) else None,
                "mean_intensity": float(i.mean()) if len(i) else None,
                "cars": len(self.box_points[k]),
                "median_car_points": float(np.median(self.box_points[k])) if self.box_points[k] else None,
                "median_car_zero_intensity": float(np.median(self.box_zero_intensity[k])) if self.box_points[k] else None,
            })
        return rows


def intensity_histogram(clouds: Iterable[np.ndarray], bins: int = 10) -> np.ndarray:
    """``[bins]`` share of points per intensity bin over ``[0, 1]``."""
    h = sum(np.histogram(c[:, 3], bins=bins, range=(0.0, 1.0))[0] for c in clouds)
    return h / max(int(np.sum(h)), 1)


def synthetic_stats(settings: GeneratorSettings, seed: int, indices: Sequence[int]) -> tuple[RealismStats, list[np.ndarray]]:
    """Statistics of frames ``indices`` of dataset ``seed`` as ``velodyne_reduced`` sees them (cars
    whose centre is in the camera view); also returns the reduced clouds."""
    calib = settings.calibration()
    stats, clouds = RealismStats(), []
    for i in indices:
        f = settings.frame(seed, i)
        pts = f.points[fov_mask(f.points, calib, IMAGE_SHAPE)]
        cars = f.boxes[np.array([n == "Car" for n in f.names], dtype=bool)].reshape(-1, 7)
        cars = cars[fov_mask(cars[:, :3].astype(np.float32), calib, IMAGE_SHAPE)] if len(cars) else cars
        stats.add_frame(pts, cars)
        clouds.append(pts)
    return stats, clouds
