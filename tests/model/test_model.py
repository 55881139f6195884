import numpy as np
import pytest
import torch

from pointpillars_trt.model import PillarFeatureNet, PointPillarsScatter, build_model, scatter_reference


def test_pfn_masks_padding_and_max_includes_padded_slots():
    torch.manual_seed(0)
    pfn = PillarFeatureNet(10, 8).eval()
    with torch.no_grad():
        pfn.norm.running_mean.uniform_(-1, 1)
        pfn.norm.running_var.uniform_(0.5, 2)
        pfn.norm.bias.uniform_(-1, 1)
    feats = torch.randn(5, 4, 10)
    counts = torch.tensor([1, 2, 4, 3, 1], dtype=torch.int32)
    out = pfn(feats, counts)
    # reference: zero the padded slots, linear, BN, relu, max over all slots (OpenPCDet semantics)
    mask = (torch.arange(4)[None] < counts[:, None]).float()[..., None]
    x = (feats * mask) @ pfn.linear.weight.t()
    x = (x - pfn.norm.running_mean) / torch.sqrt(pfn.norm.running_var + pfn.norm.eps) * pfn.norm.weight + pfn.norm.bias
    ref = torch.relu(x).max(dim=1).values
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # garbage in padded slots must not matter
    noisy = feats.clone()
    noisy[0, 1:] = 1e6
    torch.testing.assert_close(pfn(noisy, counts), out)


@pytest.mark.parametrize("p", [0, 1, 17])
def test_scatter_module_equals_reference(p):
    nx, ny, c = 13, 7, 5
    rng = np.random.default_rng(p)
    cells = rng.choice(nx * ny, size=p, replace=False)
    coords = torch.tensor(np.stack([cells % nx, cells // nx], 1), dtype=torch.int32).reshape(-1, 2)
    feats = torch.randn(p, c)
    out = PointPillarsScatter(nx, ny, c)(feats, coords)
    ref = scatter_reference(feats, coords, nx, ny)
    assert out.shape == (1, c, ny, nx)
    torch.testing.assert_close(out, ref)
    if p:
        ix, iy = coords[0].tolist()
        torch.testing.assert_close(out[0, :, iy, ix], feats[0])


@pytest.mark.parametrize("name", ["kitti_config", "example_config"])
def test_head_shapes_follow_the_config(name, request):
    cfg = request.getfixturevalue(name)
    model = build_model(cfg)
    nx, ny = cfg.feature_map_size
    m = cfg.voxel.max_points_per_pillar
    feats = torch.randn(30, m, 10)
    counts = torch.randint(1, m + 1, (30,), dtype=torch.int32)
    gx, gy, _ = cfg.grid_size
    cells = torch.randperm(gx * gy)[:30]
    coords = torch.stack([cells % gx, cells // gx], 1).int()
    with torch.inference_mode():
        cls, box, dirs = model(feats, counts, coords)
    ch = cfg.head_channels
    assert cls.shape == (1, ch["cls"], ny, nx) and box.shape == (1, ch["box"], ny, nx) and dirs.shape == (1, ch["dir"], ny, nx)
