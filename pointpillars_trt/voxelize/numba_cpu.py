"""CPU voxelizer in numba: points -> pillars, deterministic like spconv's Point2VoxelCPU3d."""

from __future__ import annotations

import threading

import numba
import numpy as np

from ..config import VoxelConfig
from .decorate import decorate_pillars
from .pillars import Pillars
from .range_filter import RULE_CODES, outside_range, range_bounds


@numba.njit(cache=True, nogil=True)
def group_points(points, pc_min, voxel_size, grid, max_pillars, cell_to_pillar, raw, num_points, coords, bounds=None, rule=0):
    """Group ``points [N, 4]`` into pillars; returns ``(P, out_of_range, dropped_pillars,
    dropped_points, excess_points)``.

    Points are visited in input order; a pillar keeps its first ``M`` points; pillars are
    numbered in first-seen order; once ``max_pillars`` exist, points of new cells are dropped
    and counted. ``cell_to_pillar [ny * nx]`` must be all -1 on entry and is restored on exit.
    The cell of a point is ``floor((p - min) / voxel_size)`` in float32; cells outside the grid
    (including along z) are out of range, and so are points refused by the range-filter ``rule``
    on float32 ``bounds [6]`` (:mod:`.range_filter`; ``bounds=None``: the grid rule alone).
    """
    N = points.shape[0]
    M = raw.shape[1]
    nx, ny, nz = grid[0], grid[1], grid[2]
    P = 0
    out_of_range = 0
    dropped_pillars = 0
    dropped_points = 0
    excess = 0
    for i in range(N):
        if bounds is not None and outside_range(points[i, 0], points[i, 1], points[i, 2], bounds, rule):
            out_of_range += 1
            continue
        fx = np.floor((points[i, 0] - pc_min[0]) / voxel_size[0])
        fy = np.floor((points[i, 1] - pc_min[1]) / voxel_size[1])
        fz = np.floor((points[i, 2] - pc_min[2]) / voxel_size[2])
        if not (fx >= 0 and fx < nx and fy >= 0 and fy < ny and fz >= 0 and fz < nz):
            out_of_range += 1
            continue
        ix = np.int32(fx)
        iy = np.int32(fy)
        cell = iy * nx + ix
        idx = cell_to_pillar[cell]
        if idx == -2:
            dropped_points += 1
            continue
        if idx == -1:
            if P >= max_pillars:
                cell_to_pillar[cell] = -2
                dropped_pillars += 1
                dropped_points += 1
                continue
            idx = P
            cell_to_pillar[cell] = P
            coords[P, 0] = ix
            coords[P, 1] = iy
            num_points[P] = 0
            P += 1
        n = num_points[idx]
        if n < M:
            for c in range(4):
                raw[idx, n, c] = points[i, c]
            num_points[idx] = n + 1
        else:
            excess += 1
    # restore the lookup table for the next frame
    for p in range(P):
        cell_to_pillar[coords[p, 1] * nx + coords[p, 0]] = -1
    if dropped_pillars > 0:
        for i in range(N):
            fx = np.floor((points[i, 0] - pc_min[0]) / voxel_size[0])
            fy = np.floor((points[i, 1] - pc_min[1]) / voxel_size[1])
            if fx >= 0 and fx < nx and fy >= 0 and fy < ny:
                cell_to_pillar[np.int32(fy) * nx + np.int32(fx)] = -1
    return P, out_of_range, dropped_pillars, dropped_points, excess


class NumbaVoxelizer:
    """Owns its buffers (sized for ``max_pillars``) and reuses them frame after frame.

    ``voxelizer(points)`` returns :class:`Pillars` whose arrays are fresh copies, so results of
    earlier frames stay valid. Calls are serialized by a lock (the scratch buffers and the cell
    table are shared; ``group_points`` runs without the GIL), and the cell table is reset when a
    call fails, so no call sees another's scratch state.
    """

    name = "numba"

    def __init__(self, cfg: VoxelConfig, max_pillars: int | None = None) -> None:
        self.cfg = cfg
        self.max_pillars = int(max_pillars or cfg.max_pillars)
        nx, ny, nz = cfg.grid_size
        self._grid = np.array([nx, ny, nz], dtype=np.int64)
        self._pc_min = np.asarray(cfg.point_cloud_range[:3], dtype=np.float32)
        self._voxel_size = np.asarray(cfg.voxel_size, dtype=np.float32)
        self._bounds, self._rule = range_bounds(cfg), RULE_CODES[cfg.range_filter]
        self._cell_to_pillar = np.full(nx * ny, -1, dtype=np.int32)
        m = cfg.max_points_per_pillar
        self._raw = np.zeros((self.max_pillars, m, 4), dtype=np.float32)
        self._num_points = np.zeros(self.max_pillars, dtype=np.int32)
        self._coords = np.zeros((self.max_pillars, 2), dtype=np.int32)
        self._lock = threading.Lock()

    def __call__(self, points: np.ndarray) -> Pillars:
        """``points`` float32 ``[N, 4]`` (validated by the caller) -> :class:`Pillars`."""
        pts = np.ascontiguousarray(points, dtype=np.float32)
        with self._lock:
            try:
                P, oor, dpil, dpts, excess = group_points(
                    pts, self._pc_min, self._voxel_size, self._grid, self.max_pillars,
                    self._cell_to_pillar, self._raw, self._num_points, self._coords, self._bounds, self._rule,
                )
            except BaseException:
                self._cell_to_pillar.fill(-1)
                raise
            num_points = self._num_points[:P].copy()
            coords = self._coords[:P].copy()
            features = np.empty((P, self._raw.shape[1], 10), dtype=np.float32)
            decorate_pillars(self._raw, num_points, coords, self._pc_min, self._voxel_size, features)
        return Pillars(features, num_points, coords, len(pts), oor, dpil, dpts, excess)
