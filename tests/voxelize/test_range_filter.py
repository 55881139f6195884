"""The range-filter rule (``voxel.range_filter``) in the CPU voxelizers, on points at the range's edges."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.config import RangeFilter, load_config
from pointpillars_trt.errors import ConfigError
from pointpillars_trt.voxelize import make_voxelizer
from pointpillars_trt.voxelize.range_filter import range_mask


def edge_points(cfg) -> np.ndarray:
    """Points on each face of the range (inside on the other axes) and one well inside."""
    r = np.asarray(cfg.voxel.point_cloud_range, np.float32)
    mid = (r[:3] + r[3:]) / 2
    pts = [np.r_[mid, 0.5]]
    for axis in range(3):
        for bound in (r[axis], r[axis + 3]):
            p = mid.copy()
            p[axis] = bound
            pts.append(np.r_[p, 0.5])
    return np.asarray(pts, np.float32)  # 0 inside; 1, 2 x min/max; 3, 4 y min/max; 5, 6 z min/max


@pytest.mark.parametrize("rule, kept", [(RangeFilter.XY_CLOSED, [0, 1, 2, 3, 4, 5, 6]), (RangeFilter.OPEN, [0])])
def test_range_mask_on_the_faces(kitti_config, rule, kept):
    cfg = kitti_config.replace(voxel={"range_filter": rule})
    assert np.flatnonzero(range_mask(edge_points(cfg), cfg.voxel)).tolist() == kept


@pytest.mark.parametrize("kind", ["numba", "spconv"])
@pytest.mark.parametrize("rule, in_grid", [(RangeFilter.XY_CLOSED, 4), (RangeFilter.OPEN, 1)])
def test_voxelizers_apply_the_rule_then_the_grid(kitti_config, kind, rule, in_grid):
    """xy_closed lets the max faces through the mask; the grid rule then drops x = max, y = max and
    z = max (cell n), keeping the centre and the three min faces: 4 points. open keeps the centre."""
    if kind == "spconv":
        pytest.importorskip("spconv")
    cfg = kitti_config.replace(voxel={"range_filter": rule})
    pillars = make_voxelizer(cfg.voxel, kind)(edge_points(cfg))
    assert int(pillars.num_points.sum()) == in_grid
    assert pillars.num_out_of_range == 7 - in_grid and pillars.num_input == 7


def test_unknown_rule_is_a_config_error(kitti_config):
    with pytest.raises(ConfigError, match=r"voxel.range_filter: 'closed' is not one of \['xy_closed', 'open'\]"):
        kitti_config.replace(voxel={"range_filter": "closed"})
    with pytest.raises(ConfigError, match="postprocess.nms_suppress_rule"):
        load_config().replace(postprocess={"nms_suppress_rule": ">="})
