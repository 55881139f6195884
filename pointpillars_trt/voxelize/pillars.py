"""The voxelizer's output: decorated pillars and the counts of what did not fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pillars:
    """Pillars of one frame, in first-seen order of the input points.

    * ``features`` float32 ``[P, M, 10]``: per point x, y, z, r, offsets from the mean of the
      pillar's points, offsets from the pillar's centre; slots ``j >= num_points[p]`` are zero.
    * ``num_points`` int32 ``[P]`` in ``1..M``.
    * ``coords`` int32 ``[P, 2]``: ``(ix, iy)`` grid cell of each pillar.

    Counters: ``num_input`` points given; ``num_out_of_range`` outside the point-cloud range;
    ``num_dropped_pillars`` pillars (and ``num_dropped_points`` points in them) beyond the pillar
    cap; ``num_excess_points`` points beyond ``M`` in a pillar (normal PointPillars behaviour).
    """

    features: np.ndarray
    num_points: np.ndarray
    coords: np.ndarray
    num_input: int
    num_out_of_range: int
    num_dropped_pillars: int
    num_dropped_points: int
    num_excess_points: int

    @property
    def num_pillars(self) -> int:
        return int(self.num_points.shape[0])

    @property
    def overflowed(self) -> bool:
        return self.num_dropped_pillars > 0
