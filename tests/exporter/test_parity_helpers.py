"""The measuring helpers behind docs/ACCURACY.md: error statistics, box matching, synthetic pillars."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from pointpillars_trt.exporter.parity import compare_arrays, compare_detections, match_detections, synthetic_pillars


def dets(boxes, scores, labels):
    return SimpleNamespace(boxes=np.asarray(boxes, np.float32).reshape(-1, 7), scores=np.asarray(scores, np.float32),
                           labels=np.asarray(labels, np.int64))


def test_compare_arrays():
    ref = np.array([0.0, 1.0, -4.0, 1e-6])
    s = compare_arrays(ref, ref + np.array([0.0, 0.1, 0.0, 1e-3]))
    assert s.max_abs == pytest.approx(0.1)
    assert s.ref_max == 4.0
    assert s.max_rel == pytest.approx(1e-3 / 4e-3)  # tiny reference values are measured against 1e-3 * max
    assert compare_arrays(np.zeros((0, 3)), np.zeros((0, 3))).count == 0
    with pytest.raises(ValueError):
        compare_arrays(np.zeros(3), np.zeros(4))


def test_compare_detections_wraps_yaw():
    a = dets([[1, 2, 0, 4, 2, 1.5, math.pi - 1e-6]], [0.9], [0])
    b = dets([[1, 2, 0, 4, 2, 1.5, -math.pi + 1e-6]], [0.9], [0])
    d = compare_detections(a, b)
    assert d.agrees() and d.max_box_diff < 1e-5
    assert not compare_detections(a, dets([], [], [])).agrees()


def test_match_detections():
    ref = dets([[0, 0, 0, 4, 2, 1.5, 0], [10, 0, 0, 4, 2, 1.5, 0], [20, 0, 0, 1, 1, 1, 0]], [0.9, 0.8, 0.7], [0, 0, 1])
    got = dets([[10.05, 0, 0, 4, 2, 1.5, 0.01], [0, 0, 0, 4, 2, 1.5, 0], [20, 0, 0, 1, 1, 1, 0]], [0.81, 0.9, 0.7], [0, 0, 2])
    m = match_detections(ref, got)
    assert (m.n_ref, m.n_got, m.n_matched) == (3, 3, 2)  # the third pair differs in class
    assert m.recall == pytest.approx(2 / 3) and m.max_center_diff == pytest.approx(0.05, abs=1e-6)
    assert m.max_score_diff == pytest.approx(0.01, abs=1e-6)


def test_synthetic_pillars(kitti_config):
    cfg = kitti_config
    feeds = synthetic_pillars(cfg, 300, seed=4)
    m = cfg.voxel.max_points_per_pillar
    assert feeds["features"].shape == (300, m, cfg.voxel.num_decorated_features)
    assert len({tuple(c) for c in feeds["coords"]}) == 300
    nx, ny, _ = cfg.grid_size
    assert (feeds["coords"][:, 0] < nx).all() and (feeds["coords"][:, 1] < ny).all()
    n = feeds["num_points"]
    assert n.min() >= 1 and n.max() <= m
    valid = np.arange(m)[None, :] < n[:, None]
    assert not feeds["features"][~valid].any()
    # offsets from the pillar centre stay inside the cell
    vx = cfg.voxel.voxel_size[0]
    assert np.abs(feeds["features"][valid][:, 7]).max() <= vx / 2 + 1e-4
