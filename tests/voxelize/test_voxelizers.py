"""Voxelizers against a slow pure-Python reference and against spconv's Point2VoxelCPU3d."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers import random_cloud
from pointpillars_trt.voxelize import make_voxelizer


def reference_voxelize(points: np.ndarray, cfg, max_pillars: int):
    """Slow, obvious reference: dict of cells in first-seen order, first M points per pillar."""
    vc = cfg.voxel
    lo = np.float32(vc.point_cloud_range[:3])
    vs = np.float32(vc.voxel_size)
    nx, ny, nz = vc.grid_size
    m = vc.max_points_per_pillar
    pillars: dict[tuple[int, int], list] = {}
    dropped_cells: set = set()
    oor = dropped_pts = excess = 0
    for p in points:
        cell = [math.floor(np.float32((p[a] - lo[a]) / vs[a])) for a in range(3)]
        if not (0 <= cell[0] < nx and 0 <= cell[1] < ny and 0 <= cell[2] < nz):
            oor += 1
            continue
        key = (cell[0], cell[1])
        if key not in pillars:
            if len(pillars) >= max_pillars:
                dropped_cells.add(key)
                dropped_pts += 1
                continue
            pillars[key] = []
        if len(pillars[key]) < m:
            pillars[key].append(p)
        else:
            excess += 1
    feats = np.zeros((len(pillars), m, 10), np.float64)
    for i, ((ix, iy), pts) in enumerate(pillars.items()):
        pts = np.array(pts, np.float64)
        mean = pts[:, :3].mean(0)
        centre = np.array([(ix + 0.5) * vs[0] + lo[0], (iy + 0.5) * vs[1] + lo[1], lo[2] + vs[2] / 2])
        feats[i, : len(pts), :4] = pts
        feats[i, : len(pts), 4:7] = pts[:, :3] - mean
        feats[i, : len(pts), 7:10] = pts[:, :3] - centre
    coords = np.array(list(pillars), np.int32).reshape(-1, 2)
    counts = np.array([len(v) for v in pillars.values()], np.int32)
    return feats, counts, coords, oor, len(dropped_cells), dropped_pts, excess


def _check_against_reference(pillars, ref):
    feats, counts, coords, oor, dpil, dpts, excess = ref
    assert np.array_equal(pillars.coords, coords)
    assert np.array_equal(pillars.num_points, counts)
    np.testing.assert_allclose(pillars.features, feats, atol=2e-5, rtol=0)
    assert (pillars.num_out_of_range, pillars.num_dropped_pillars, pillars.num_dropped_points, pillars.num_excess_points) == (
        oor, dpil, dpts, excess)


@pytest.mark.parametrize("kind", ["numba", "spconv"])
@pytest.mark.parametrize("cap", [None, 7])
def test_matches_reference_on_dense_random_cloud(kitti_config, kind, cap):
    # few cells, many points per cell: exercises the per-pillar cap and out-of-range points
    rng = np.random.default_rng(1)
    cfg = kitti_config
    lo = np.array(cfg.voxel.point_cloud_range[:3])
    centres = lo + np.array([3.0, 40.0, 2.0])
    pts = np.concatenate([centres + rng.normal(0, 0.4, (3000, 3)), rng.uniform(0, 1, (3000, 1))], 1).astype(np.float32)
    pts = np.concatenate([pts, random_cloud(cfg, 500, seed=2, margin=3.0)])
    vox = make_voxelizer(cfg.voxel, kind, max_pillars=cap)
    _check_against_reference(vox(pts), reference_voxelize(pts, cfg, cap or cfg.voxel.max_pillars))


@pytest.mark.parametrize("kind", ["numba", "spconv"])
def test_matches_reference_on_non_kitti_config(example_config, kind):
    pts = random_cloud(example_config, 4000, seed=3, margin=2.0)
    vox = make_voxelizer(example_config.voxel, kind, max_pillars=500)
    _check_against_reference(vox(pts), reference_voxelize(pts, example_config, 500))


def test_numba_equals_spconv_on_every_real_frame(kitti_config, kitti_frames):
    """spconv's Point2VoxelCPU3d (OpenPCDet's voxelizer) is the oracle."""
    numba_vox = make_voxelizer(kitti_config.voxel, "numba")
    spconv_vox = make_voxelizer(kitti_config.voxel, "spconv")
    for path in kitti_frames:
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
        a, b = numba_vox(pts), spconv_vox(pts)
        assert a.num_pillars > 1000, path
        assert np.array_equal(a.coords, b.coords), path
        assert np.array_equal(a.num_points, b.num_points), path
        assert np.array_equal(a.features, b.features), path
        assert (a.num_out_of_range, a.num_excess_points) == (b.num_out_of_range, b.num_excess_points)


def test_real_frame_against_reference(kitti_config, kitti_points):
    vox = make_voxelizer(kitti_config.voxel, "numba", max_pillars=2000)
    _check_against_reference(vox(kitti_points), reference_voxelize(kitti_points, kitti_config, 2000))


def test_buffers_are_reused_without_leaking_state(kitti_config, kitti_points):
    vox = make_voxelizer(kitti_config.voxel, "numba", max_pillars=300)
    first = vox(kitti_points)
    vox(kitti_points[::-1].copy())
    again = vox(kitti_points)
    assert np.array_equal(first.coords, again.coords) and np.array_equal(first.features, again.features)
    assert first.num_dropped_pillars > 0


def test_empty_and_all_out_of_range(kitti_config):
    vox = make_voxelizer(kitti_config.voxel, "numba")
    empty = vox(np.zeros((0, 4), np.float32))
    assert empty.num_pillars == 0 and empty.features.shape == (0, 32, 10)
    far = np.array([[1e4, 0, 0, 0], [0, 0, 50, 0]], np.float32)
    out = vox(far)
    assert out.num_pillars == 0 and out.num_out_of_range == 2
