"""Batched scatter and on-device decoration against the model's batch-1 reference and the numba voxelizer."""

from __future__ import annotations

import numpy as np
import torch

from pointpillars_trt.model import PointPillars, scatter_reference
from pointpillars_trt.train import RawPillarizer, decorate, forward_batch, scatter_batch
from pointpillars_trt.voxelize import make_voxelizer

from tests.helpers import random_cloud
from tests.train.tiny_data import tiny_config


def test_scatter_batch_matches_reference_per_sample():
    nx, ny, c = 23, 17, 5
    rng = np.random.default_rng(0)
    feats, coords, per = [], [], []
    for b, n in enumerate((30, 0, 55)):
        cells = rng.choice(nx * ny, size=n, replace=False)
        xy = np.stack([cells % nx, cells // nx], axis=1)
        f = torch.randn(n, c)
        per.append((f, torch.from_numpy(xy)))
        feats.append(f)
        coords.append(np.column_stack([np.full(n, b), xy]))
    canvas = scatter_batch(torch.cat(feats), torch.from_numpy(np.concatenate(coords)), 3, nx, ny)
    assert canvas.shape == (3, c, ny, nx)
    for b, (f, xy) in enumerate(per):
        torch.testing.assert_close(canvas[b : b + 1], scatter_reference(f, xy, nx, ny), rtol=0, atol=0)


def test_raw_pillars_and_decoration_match_numba_voxelizer(kitti_config):
    cfg = kitti_config
    pts = random_cloud(cfg, 30000, seed=1, margin=1.0)
    pts = np.concatenate([pts, pts[:2000] + 0.01])  # denser pillars
    ref = make_voxelizer(cfg.voxel, "numba", max_pillars=cfg.voxel.max_pillars_train)(pts)
    pill = RawPillarizer(cfg)
    pill(random_cloud(cfg, 5000, seed=9))  # a previous frame leaves stale buffer data
    raw, num, coords = pill(pts)
    np.testing.assert_array_equal(num, ref.num_points)
    np.testing.assert_array_equal(coords, ref.coords)
    feats = decorate(torch.from_numpy(raw), torch.from_numpy(num), torch.from_numpy(coords), cfg)
    np.testing.assert_allclose(feats.numpy(), ref.features, rtol=1e-5, atol=2e-5)


def test_forward_batch_equals_single_frame_model():
    """In eval mode the batched forward of two frames equals the model's own batch-1 forward."""
    cfg = tiny_config()
    torch.manual_seed(0)
    model = PointPillars(cfg).eval()
    pill = RawPillarizer(cfg, max_pillars=3000)
    frames = [pill(random_cloud(cfg, 4000, seed=s)) for s in (2, 3)]
    raw = torch.from_numpy(np.concatenate([f[0] for f in frames]))
    num = torch.from_numpy(np.concatenate([f[1] for f in frames]))
    coords = torch.from_numpy(np.concatenate([np.column_stack([np.full(len(f[2]), b), f[2]]) for b, f in enumerate(frames)]))
    with torch.no_grad():
        batched = forward_batch(model, raw, num, coords, 2)
        for b, f in enumerate(frames):
            n, c = torch.from_numpy(f[1]), torch.from_numpy(f[2])
            single = model(decorate(torch.from_numpy(f[0]), n, c, cfg), n, c)
            for x, y in zip(batched, single):
                torch.testing.assert_close(x[b : b + 1], y, rtol=1e-4, atol=1e-4)
