"""The source's point-range filter (``voxel.range_filter``), applied before the voxel grid rule.

Both rules compare float32 coordinates with the float32 range, as the sources do (OpenPCDet's
``mask_points_by_range`` on a float32 range array; mmdet3d's ``in_range_3d`` and zhulf0804's
``point_range_filter`` on float32 points):

* ``xy_closed`` (code 1): ``min <= x <= max`` and ``min <= y <= max``; z only by the grid rule.
* ``open`` (code 2): ``min < p < max`` on x, y and z.

The grid rule (``floor((p - min) / voxel)`` in ``[0, n)``) applies afterwards in every voxelizer.
"""

from __future__ import annotations

import numba
import numpy as np

from ..config import RangeFilter, VoxelConfig

RULE_CODES = {RangeFilter.XY_CLOSED: 1, RangeFilter.OPEN: 2}  # the codes of outside_range and voxelize.cu


def range_bounds(cfg: VoxelConfig) -> np.ndarray:
    """``point_cloud_range`` as float32 ``[6]`` (x_min, y_min, z_min, x_max, y_max, z_max)."""
    return np.asarray(cfg.point_cloud_range, dtype=np.float32)


@numba.njit(cache=True, nogil=True, inline="always")
def outside_range(x, y, z, bounds, rule):
    """Whether float32 ``(x, y, z)`` is refused by rule ``rule`` (a :data:`RULE_CODES` value) on
    float32 ``bounds [6]``; code 0 refuses nothing."""
    if rule == 1:
        return not (x >= bounds[0] and x <= bounds[3] and y >= bounds[1] and y <= bounds[4])
    if rule == 2:
        return not (x > bounds[0] and x < bounds[3] and y > bounds[1] and y < bounds[4] and z > bounds[2] and z < bounds[5])
    return False


def range_mask(points: np.ndarray, cfg: VoxelConfig) -> np.ndarray:
    """Boolean ``[N]``: the points of float32 ``points [N, >=3]`` that ``cfg.range_filter`` lets through."""
    p = np.asarray(points, dtype=np.float32)
    b = range_bounds(cfg)
    if cfg.range_filter == RangeFilter.XY_CLOSED:
        return np.all((p[:, :2] >= b[:2]) & (p[:, :2] <= b[3:5]), axis=1)
    return np.all((p[:, :3] > b[:3]) & (p[:, :3] < b[3:]), axis=1)
