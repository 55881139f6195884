"""The inputs and weights behind docs/ACCURACY.md: synthetic pillars and parity weights
(the measurements themselves are tested in tests/compare/)."""

from __future__ import annotations

import numpy as np

from pointpillars_trt.exporter.parity import parity_state_dict, synthetic_pillars


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


def test_parity_state_dict_is_seeded(example_config):
    a, b = parity_state_dict(example_config, seed=1), parity_state_dict(example_config, seed=1)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert not (parity_state_dict(example_config, seed=2)["rpn.conv_cls.bias"] == a["rpn.conv_cls.bias"]).all()
