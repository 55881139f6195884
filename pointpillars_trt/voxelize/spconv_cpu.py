"""CPU voxelizer on spconv's ``Point2VoxelCPU3d`` (OpenPCDet's), with our numba decoration."""

from __future__ import annotations

import numpy as np

from ..config import VoxelConfig
from ..errors import BackendUnavailableError
from .decorate import decorate_pillars
from .pillars import Pillars
from .range_filter import range_mask


def _import_point2voxel():
    try:
        from cumm import tensorview as tv
        from spconv.utils import Point2VoxelCPU3d
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendUnavailableError("spconv is not installed: pip install 'pointpillars_trt[spconv]'") from exc
    return tv, Point2VoxelCPU3d


class SpconvVoxelizer:
    """Groups points with spconv (same order rules as :class:`NumbaVoxelizer`, after the same range
    filter), then decorates.

    spconv does not report what it dropped, so the counters are computed from a cheap numpy
    pass over the points' cells.
    """

    name = "spconv"

    def __init__(self, cfg: VoxelConfig, max_pillars: int | None = None) -> None:
        tv, Point2VoxelCPU3d = _import_point2voxel()
        self._tv = tv
        self.cfg = cfg
        self.max_pillars = int(max_pillars or cfg.max_pillars)
        self._gen = Point2VoxelCPU3d(
            vsize_xyz=list(cfg.voxel_size),
            coors_range_xyz=list(cfg.point_cloud_range),
            num_point_features=cfg.num_point_features,
            max_num_voxels=self.max_pillars,
            max_num_points_per_voxel=cfg.max_points_per_pillar,
        )
        self._pc_min = np.asarray(cfg.point_cloud_range[:3], dtype=np.float32)
        self._voxel_size = np.asarray(cfg.voxel_size, dtype=np.float32)
        self._grid = np.asarray(cfg.grid_size)

    def __call__(self, points: np.ndarray) -> Pillars:
        num_input = len(points)
        pts = np.ascontiguousarray(points, dtype=np.float32)
        pts = np.ascontiguousarray(pts[range_mask(pts, self.cfg)])  # the source's range filter, then spconv's grid rule
        voxels, indices, counts = self._gen.point_to_voxel(self._tv.from_numpy(pts))
        raw = voxels.numpy_view()
        num_points = counts.numpy_view().astype(np.int32)
        coords = np.ascontiguousarray(indices.numpy_view()[:, [2, 1]], dtype=np.int32)  # zyx -> (ix, iy)
        features = np.empty((len(num_points), raw.shape[1], 10), dtype=np.float32)
        decorate_pillars(raw, num_points, coords, self._pc_min, self._voxel_size, features)
        cells = np.floor((pts[:, :3] - self._pc_min) / self._voxel_size)
        inside = np.all((cells >= 0) & (cells < self._grid), axis=1)
        n_in = int(inside.sum())
        if len(num_points) < self.max_pillars:
            n_pillars = len(num_points)
        else:
            flat = cells[inside, 1].astype(np.int64) * int(self._grid[0]) + cells[inside, 0].astype(np.int64)
            n_pillars = len(np.unique(flat))
        kept = int(np.minimum(_points_per_kept_pillar(pts, inside, cells, coords, self._grid), 1 << 30).sum()) if n_pillars > len(num_points) else n_in
        dropped_points = n_in - kept
        excess = kept - int(num_points.sum())
        return Pillars(features, num_points, coords, num_input, num_input - n_in, n_pillars - len(num_points), dropped_points, excess)


def _points_per_kept_pillar(pts, inside, cells, coords, grid) -> np.ndarray:
    nx = int(grid[0])
    flat = cells[inside, 1].astype(np.int64) * nx + cells[inside, 0].astype(np.int64)
    kept = coords[:, 1].astype(np.int64) * nx + coords[:, 0]
    return np.isin(flat, kept).astype(np.int64)
