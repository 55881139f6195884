"""GPU voxelization (``kernels/voxelize.cu``) against the CPU reference (NumbaVoxelizer).

The NVRTC compile tests run on the CPU; everything else needs a CUDA GPU (marked ``gpu``).
The GPU result must be identical: same pillars in the same order, same points per pillar in
input order, the same float32 decoration (compared bit for bit, which implies 1e-6), same counters.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.cuda_helpers import cuda_device, nvrtc_skip_reason, torch_cuda  # noqa: F401  (fixtures)
from pointpillars_trt.cuda.nvrtc import Target, choose_target, compile_source, read_kernel_source
from tests.helpers import kitti_frame_paths, random_cloud

needs_nvrtc = pytest.mark.skipif(nvrtc_skip_reason() is not None, reason=str(nvrtc_skip_reason()))
ENTRIES = {f"pp_vox_{n}" for n in ("cells", "number", "bucket", "decorate", "decorate_pfn")}


@needs_nvrtc
@pytest.mark.parametrize("cc", [(8, 0), (8, 7), (9, 0)])
def test_voxelize_compiles(cc):
    src, _ = read_kernel_source("voxelize.cu")
    assert "#include" not in src
    image = compile_source(src, "voxelize.cu", choose_target(cc, [cc[0] * 10 + cc[1]]))
    assert image.kind == "cubin" and image.data[:4] == b"\x7fELF"
    ptx = compile_source(src, "voxelize.cu", Target(f"--gpu-architecture=compute_{cc[0]}{cc[1]}", "ptx")).data.decode(errors="replace")
    assert set(re.findall(r"\.entry (\w+)\(", ptx)) == ENTRIES
    # programmatic launch only where the PDL guard allows it (sm_90+); the look-back's relaxed loads everywhere
    assert ("griddepcontrol.wait" in ptx) == (cc >= (9, 0))
    assert "ld.relaxed.gpu" in ptx


@pytest.mark.parametrize("m", [1, 20, 31, 32, 33, 160, 255, 256])
def test_shared_memory_fits_48k(m):
    """Pass 4's dynamic shared memory (no opt-in attribute) stays within 48 KiB for every allowed M."""
    from pointpillars_trt.voxelize.cuda import MAX_POINTS_PER_PILLAR, CudaVoxelizer

    vox = CudaVoxelizer.__new__(CudaVoxelizer)  # shared_bytes needs M only, not a device
    vox.max_points_per_pillar = m
    assert m <= MAX_POINTS_PER_PILLAR and vox.shared_bytes <= 48 * 1024 and vox.shared_bytes % 16 == 0


# ---- GPU -------------------------------------------------------------------------------------------
def gpu_voxelize(cfg, points: np.ndarray, device_count: bool = False):
    import torch

    from pointpillars_trt.voxelize.cuda import CudaVoxelizer, TorchPillarBuffers, voxelize_torch

    vox = CudaVoxelizer(cfg.voxel, max(len(points), 1))
    pts = torch.from_numpy(points if len(points) else np.zeros((1, 4), np.float32)).cuda()
    if device_count:  # garbage rows beyond N must be ignored
        pad = torch.full((len(points) + 1000, 4), 1.0, device="cuda")
        pad[: len(points)] = pts[: len(points)]
        vox.reserve(len(pad))
        out = TorchPillarBuffers.allocate(vox)
        n = torch.tensor([len(points)], dtype=torch.int32, device="cuda")
        vox.enqueue(pad.data_ptr(), torch.cuda.current_stream().cuda_stream, features_ptr=out.features.data_ptr(),
                    num_points_out_ptr=out.num_points.data_ptr(), coords_ptr=out.coords.data_ptr(),
                    counters_ptr=out.counters.data_ptr(), num_points_ptr=n.data_ptr(), num_points_bound=len(pad))
    else:
        out = voxelize_torch(pts[: len(points)], vox)
    got = out.to_pillars()
    rest = out.num_points[got.num_pillars:].cpu().numpy()
    vox.free()
    return got, rest


def assert_same_pillars(got, want):
    assert got.num_pillars == want.num_pillars
    np.testing.assert_array_equal(got.coords, want.coords)
    np.testing.assert_array_equal(got.num_points, want.num_points)
    assert got.features.shape == want.features.shape
    bad = got.features.view(np.uint32) != want.features.view(np.uint32)
    assert not bad.any(), f"{bad.sum()} feature values differ, max |diff| {np.abs(got.features - want.features).max()}"
    for name in ("num_input", "num_out_of_range", "num_dropped_pillars", "num_dropped_points", "num_excess_points"):
        assert getattr(got, name) == getattr(want, name), name


def cpu_voxelize(cfg, points):
    from pointpillars_trt.voxelize import NumbaVoxelizer

    return NumbaVoxelizer(cfg.voxel)(points)


@pytest.mark.gpu
def test_every_real_frame(torch_cuda, kitti_config, kitti_frames):
    for path in kitti_frame_paths():
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
        got, rest = gpu_voxelize(kitti_config, pts)
        assert_same_pillars(got, cpu_voxelize(kitti_config, pts))
        assert not rest.any(), f"{path}: rows >= P must have num_points == 0"


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["uniform", "margin", "dense_cells", "overflow", "single", "device_count"])
def test_synthetic_clouds(torch_cuda, kitti_config, example_config, case):
    cfg = kitti_config
    if case == "uniform":
        pts = random_cloud(cfg, 30000, seed=1)
    elif case == "margin":  # a third of the points outside the range, on every axis
        pts = random_cloud(cfg, 30000, seed=2, margin=10.0)
    elif case == "dense_cells":  # hundreds of points per cell: the first-M selection path
        rng = np.random.default_rng(3)
        base = random_cloud(cfg, 40, seed=3)
        pts = np.repeat(base, 300, axis=0) + rng.normal(0, 0.01, (12000, 4)).astype(np.float32)
        pts = pts[rng.permutation(len(pts))]
        cfg = example_config  # M = 20, another grid
    elif case == "overflow":
        cfg = kitti_config.replace(voxel={"max_pillars": 500})
        pts = random_cloud(cfg, 20000, seed=4)
    elif case == "single":
        r = cfg.voxel.point_cloud_range
        pts = np.array([[(r[0] + r[3]) / 2, (r[1] + r[4]) / 2, (r[2] + r[5]) / 2, 0.5]], np.float32)
    else:
        pts = random_cloud(example_config, 25000, seed=6, margin=5.0)
        cfg = example_config
    got, _ = gpu_voxelize(cfg, pts, device_count=case in ("device_count", "overflow"))
    want = cpu_voxelize(cfg, pts)
    assert_same_pillars(got, want)
    if case == "overflow":
        assert got.num_dropped_pillars > 0 and got.num_pillars == 500


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["empty", "all_out_of_range"])
def test_no_pillars(torch_cuda, kitti_config, case):
    pts = np.zeros((0, 4), np.float32) if case == "empty" else np.full((5000, 4), 1000.0, np.float32)
    got, rest = gpu_voxelize(kitti_config, pts)
    assert got.num_pillars == 0 and got.num_input == len(pts) and got.num_out_of_range == len(pts)
    assert not rest.any()


@pytest.mark.gpu
def test_capacity_is_checked(torch_cuda, kitti_config):
    import torch

    from pointpillars_trt.voxelize.cuda import CudaVoxelizer, voxelize_torch
    from pointpillars_trt.errors import ConfigError

    vox = CudaVoxelizer(kitti_config.voxel, 100)
    pts = torch.from_numpy(random_cloud(kitti_config, 500, seed=0)).cuda()
    with pytest.raises(ConfigError, match="exceed its capacity of 100"):
        vox.enqueue(pts.data_ptr(), 0, features_ptr=0, num_points_out_ptr=0, coords_ptr=0, counters_ptr=0, num_points=500)
    got = voxelize_torch(pts, vox).to_pillars()  # the torch helper grows the buffers
    assert_same_pillars(got, cpu_voxelize(kitti_config, pts.cpu().numpy()))


@pytest.mark.gpu
@pytest.mark.parametrize("nhwc,half,channels", [(False, False, 64), (True, False, 64), (False, True, 64), (True, True, 64),
                                                (False, False, 96), (True, True, 96)],
                         ids=["nchw-f32", "nhwc-f32", "nchw-f16", "nhwc-f16", "nchw-f32-96ch", "nhwc-f16-96ch"])
def test_fused_pfn_matches_torch_pfn_and_scatter(torch_cuda, kitti_config, kitti_frames, nhwc, half, channels):
    """96 channels: the fused kernel passes over its pillars twice (64 channels a pass)."""
    import torch

    from pointpillars_trt.voxelize.cuda import CudaVoxelizer, TorchPillarBuffers
    from pointpillars_trt.model import build_model
    from pointpillars_trt.model.scatter import scatter_reference

    cfg = kitti_config.replace(network={"pfn_channels": channels})
    torch.manual_seed(0)
    model = build_model(cfg).cuda().eval()
    bn = model.pfn.norm
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(-1.0, 1.0)  # negative scales too
        bn.bias.uniform_(-0.5, 0.5)
        scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).contiguous()
        shift = (bn.bias - bn.running_mean * scale).contiguous()
        weight = model.pfn.linear.weight.contiguous()
    nx, ny, _ = cfg.grid_size
    C = cfg.network.pfn_channels
    vox = CudaVoxelizer(cfg.voxel, 200000)
    out = TorchPillarBuffers.allocate(vox)
    dtype = torch.float16 if half else torch.float32
    canvas = torch.full((1, C, ny, nx), float("nan"), dtype=dtype, device="cuda")
    canvas.zero_()
    if nhwc:
        canvas = canvas.contiguous(memory_format=torch.channels_last)
    for path in kitti_frames[:2] + kitti_frames[:1]:  # the third frame re-clears the second's cells
        pts = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(-1, 4)).cuda()
        vox.enqueue_fused_pfn(pts.data_ptr(), torch.cuda.current_stream().cuda_stream, num_points_out_ptr=out.num_points.data_ptr(),
                              coords_ptr=out.coords.data_ptr(), counters_ptr=out.counters.data_ptr(), weight_ptr=weight.data_ptr(),
                              scale_ptr=scale.data_ptr(), shift_ptr=shift.data_ptr(), channels=C, canvas_ptr=canvas.data_ptr(),
                              nhwc=nhwc, half=half, num_points=len(pts))
        p = cpu_voxelize(cfg, pts.cpu().numpy())
        with torch.inference_mode():
            pf = model.pfn(torch.from_numpy(p.features).cuda(), torch.from_numpy(p.num_points).cuda())
            want = scatter_reference(pf, torch.from_numpy(p.coords).cuda(), nx, ny)
        torch.testing.assert_close(canvas.float(), want, atol=2e-3 if half else 1e-5, rtol=2e-3 if half else 1e-5)
    vox.free()


@pytest.mark.gpu
@pytest.mark.parametrize("programmatic", [True, False], ids=["pdl", "no-pdl"])
def test_one_voxelizer_over_many_frames(torch_cuda, kitti_config, kitti_frames, programmatic):
    """The cell table is set once and put back by the last pass of every frame (the whole table
    after a frame that dropped pillars): a voxelizer reused over frames, overflowing ones between
    them, gives every frame exactly the CPU's pillars, with programmatic launches and without."""
    import torch

    from pointpillars_trt.cuda.nvrtc import set_programmatic_launch
    from pointpillars_trt.voxelize.cuda import CudaVoxelizer, TorchPillarBuffers, voxelize_torch

    cfg = kitti_config.replace(voxel={"max_pillars": 6000})
    frames = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frame_paths()[:4]]
    clouds = [frames[0], random_cloud(cfg, 30000, seed=7), frames[1], frames[2], random_cloud(cfg, 200, seed=8),
              random_cloud(cfg, 40000, seed=9), frames[3], np.zeros((0, 4), np.float32), frames[0]]
    old = set_programmatic_launch(programmatic)
    try:
        vox = CudaVoxelizer(cfg.voxel, 50000)
        out = TorchPillarBuffers.allocate(vox)
        for i, pts in enumerate(clouds):
            t = torch.from_numpy(pts if len(pts) else np.zeros((1, 4), np.float32)).cuda()[: len(pts)]
            got = voxelize_torch(t, vox, out).to_pillars()
            assert_same_pillars(got, cpu_voxelize(cfg, pts))
        assert any(cpu_voxelize(cfg, c).num_dropped_pillars for c in clouds), "the sequence must overflow somewhere"
        vox.free()
    finally:
        set_programmatic_launch(old)


@pytest.mark.gpu
@pytest.mark.parametrize("rule", ["xy_closed", "open"])
def test_range_filter_rules(torch_cuda, kitti_config, kitti_frames, rule):
    """The range filter (voxel.range_filter) on the GPU equals the CPU's, also for points on the range's faces."""
    from tests.voxelize.test_range_filter import edge_points

    cfg = kitti_config.replace(voxel={"range_filter": rule})
    frame = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)
    for pts in (frame, np.concatenate([edge_points(cfg), frame[:1000]])):
        got, _ = gpu_voxelize(cfg, pts)
        assert_same_pillars(got, cpu_voxelize(cfg, pts))


# ---- edges of the four-kernel voxelizer (pass 2's 1024-point scan tiles, pass 4's 32-lane chunks) ----
@pytest.mark.gpu
@pytest.mark.parametrize("m", [1, 20, 32, 33, 100, 256])
def test_dense_pillars_across_scan_tiles(torch_cuda, kitti_config, m):
    """Pillars of 40 and of 1500 points whose points lie in many of pass 2's tiles, beside sparse
    ones: the first M in input order for M <= 32 (register sort and merges), odd M (scalar stores)
    and M > 32 (chunks of 32 lanes; the shared-memory selection beyond 32 points)."""
    cfg = kitti_config.replace(voxel={"max_points_per_pillar": m})
    rng = np.random.default_rng(m)
    sparse = random_cloud(cfg, 6000, seed=m)
    clusters = [np.repeat(random_cloud(cfg, k, seed=100 + m + k), size, axis=0) for k, size in ((6, 1500), (20, 40))]
    dense = np.concatenate(clusters)
    dense = dense + rng.normal(0, 0.01, dense.shape).astype(np.float32)
    pts = np.concatenate([sparse, dense])
    pts = pts[rng.permutation(len(pts))]
    want = cpu_voxelize(cfg, pts)
    assert want.num_excess_points > 0 and want.num_points.max() == m
    got, rest = gpu_voxelize(cfg, pts)
    assert_same_pillars(got, want)
    assert not rest.any()


@pytest.mark.gpu
@pytest.mark.parametrize("device_count", [False, True], ids=["host-count", "device-count"])
def test_many_scan_tiles(torch_cuda, kitti_config, device_count):
    """300k points: ~300 tiles, so the look-back crosses several 32-tile windows; without pillar
    overflow (max_pillars 250000) and with it (the default 40000: dropped pillars, whole-table
    reset); the device count's grid has a tile past N."""
    cfg = kitti_config if device_count else kitti_config.replace(voxel={"max_pillars": 250000})
    pts = random_cloud(cfg, 300000, seed=11, margin=3.0)
    want = cpu_voxelize(cfg, pts)
    assert (want.num_dropped_pillars > 0) == device_count
    got, rest = gpu_voxelize(cfg, pts, device_count=device_count)
    assert_same_pillars(got, want)
    assert not rest.any()


@pytest.mark.gpu
def test_grid_wider_than_a_scan_tile(torch_cuda, kitti_config, kitti_frames):
    """A 1728 x 1984 grid (3.4M cells, rows wider than a 1024-point tile): a real frame and a uniform cloud."""
    cfg = kitti_config.replace(voxel={"voxel_size": (0.04, 0.04, 4.0), "max_pillars": 60000})
    assert cfg.grid_size[0] > 1024
    frame = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)
    for pts in (frame, random_cloud(cfg, 50000, seed=12)):
        got, _ = gpu_voxelize(cfg, pts)
        assert_same_pillars(got, cpu_voxelize(cfg, pts))


@pytest.mark.gpu
@pytest.mark.parametrize("n", [0, 1, 1024, 1025])
def test_device_count_at_tile_edges(torch_cuda, kitti_config, n):
    """N = 0, one point, exactly one tile and one past it, counted on the device (grids sized for N + 1000)."""
    r = kitti_config.voxel.point_cloud_range
    centre = np.array([[(r[0] + r[3]) / 2, (r[1] + r[4]) / 2, (r[2] + r[5]) / 2, 0.5]], np.float32)
    pts = np.concatenate([centre, random_cloud(kitti_config, max(n - 1, 0), seed=13)])[:n]
    got, rest = gpu_voxelize(kitti_config, pts, device_count=True)
    want = cpu_voxelize(kitti_config, pts)
    assert_same_pillars(got, want)
    assert got.num_pillars == want.num_pillars and (n == 0) == (got.num_pillars == 0)
    assert not rest.any()


@pytest.mark.gpu
@pytest.mark.parametrize("n", [0, 1, 1025, None], ids=["empty", "one", "tile-edge", "real-frame"])
def test_mapped_points_are_read_from_pinned_memory_and_copied(torch_cuda, kitti_config, kitti_frames, n):
    """``mapped``: pass 1 reads the pinned host rows and count over the bus (garbage rows beyond N in
    both buffers) and writes the device copies: the CPU reference's pillars, and the copies equal the
    pinned rows and count."""
    import torch

    from pointpillars_trt.cuda.memory import mapped_pointer
    from pointpillars_trt.voxelize.cuda import CudaVoxelizer, MappedPoints, TorchPillarBuffers

    if n is None:
        pts = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)
    else:
        pts = random_cloud(kitti_config, n, seed=17)[:n].astype(np.float32)
    bound = len(pts) + 1000
    host = torch.full((bound, 4), 7.0, dtype=torch.float32, pin_memory=True)
    host[: len(pts)] = torch.from_numpy(pts)
    count = torch.tensor([len(pts)], dtype=torch.int32, pin_memory=True)
    dev = torch.full((bound, 4), -3.0, dtype=torch.float32, device="cuda")
    n_dev = torch.full((1,), -1, dtype=torch.int32, device="cuda")
    vox = CudaVoxelizer(kitti_config.voxel, bound)
    out = TorchPillarBuffers.allocate(vox)
    vox.enqueue(dev.data_ptr(), torch.cuda.current_stream().cuda_stream, features_ptr=out.features.data_ptr(),
                num_points_out_ptr=out.num_points.data_ptr(), coords_ptr=out.coords.data_ptr(), counters_ptr=out.counters.data_ptr(),
                num_points_ptr=n_dev.data_ptr(), num_points_bound=bound,
                mapped=MappedPoints(mapped_pointer(host.data_ptr()), mapped_pointer(count.data_ptr())))
    got = out.to_pillars()
    assert_same_pillars(got, cpu_voxelize(kitti_config, pts))
    assert int(n_dev.item()) == len(pts)
    np.testing.assert_array_equal(dev[: len(pts)].cpu().numpy(), pts)
    assert bool((dev[len(pts):] == -3.0).all())  # nothing beyond N is read or written
    with pytest.raises(ValueError, match="mapped points take their count"):
        vox.enqueue(dev.data_ptr(), 0, features_ptr=out.features.data_ptr(), num_points_out_ptr=out.num_points.data_ptr(),
                    coords_ptr=out.coords.data_ptr(), counters_ptr=out.counters.data_ptr(), num_points=len(pts),
                    mapped=MappedPoints(mapped_pointer(host.data_ptr()), mapped_pointer(count.data_ptr())))
    vox.free()
