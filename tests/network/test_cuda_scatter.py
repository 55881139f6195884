"""The CUDA scatter kernel against ``scatter_reference`` (GPU; skipped without a CUDA GPU).

Sizes come from the config (grid, channels, max pillars). Coordinates are unique random cells.
A scatter is a copy, so results must be bit-exact. "Every cell is written or zeroed" is proven
with NaN: the memset mode starts from a NaN-poisoned canvas; the cell-clearing mode scatters a
frame of NaN features first, and the next frame must leave no NaN behind.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.cuda_helpers import cuda_device, download, torch_cuda, upload  # noqa: F401  (fixtures)
from pointpillars_trt.config import load_config
from pointpillars_trt.model.scatter import scatter_reference

pytestmark = pytest.mark.gpu

CFG = load_config()
NX, NY, _ = CFG.grid_size
C = CFG.network.pfn_channels
MAX_P = CFG.voxel.max_pillars
COUNTS = [0, 1, 7, 12000, MAX_P]
DTYPES = [np.float32, np.float16]


def random_frame(p: int, dtype, seed: int, nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    flat = rng.choice(NX * NY, size=p, replace=False)
    coords = np.stack([flat % NX, flat // NX], axis=1).astype(np.int32)
    feats = np.full((p, C), np.nan, dtype) if nan else rng.standard_normal((p, C)).astype(dtype)
    return feats, coords


def reference(feats: np.ndarray, coords: np.ndarray) -> np.ndarray:
    out = scatter_reference(torch.from_numpy(feats.astype(np.float32)), torch.from_numpy(coords), NX, NY)
    return out.numpy().astype(feats.dtype)


def run(scatter, feats, coords, device, stream=0) -> np.ndarray:
    f, c = upload(feats if len(feats) else np.zeros((1, C), feats.dtype), device), upload(coords if len(coords) else np.zeros((1, 2), np.int32), device)
    ptr = scatter(f.ptr, c.ptr, len(feats), stream)
    out = download(ptr, scatter.canvas_shape, scatter.dtype, stream)
    f.free()
    c.free()
    return out


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    assert not np.isnan(got).any(), f"{np.isnan(got).sum()} NaN cells left"
    bits = {2: np.uint16, 4: np.uint32}[got.dtype.itemsize]
    diff = got.view(bits) != want.view(bits)
    assert not diff.any(), f"{diff.sum()} elements differ"


def poison(scatter) -> None:
    """Fill the whole canvas with NaN bit patterns."""
    from pointpillars_trt.cuda.bindings import bindings, check
    from pointpillars_trt.cuda.memory import stream_synchronize

    drv = bindings()[0]
    n = scatter.canvas_nbytes
    if scatter.itemsize == 4:
        check(drv.cuMemsetD32Async(drv.CUdeviceptr(scatter.canvas_ptr), 0x7FC00000, n // 4, drv.CUstream(0)), "cuMemsetD32Async")
    else:
        check(drv.cuMemsetD16Async(drv.CUdeviceptr(scatter.canvas_ptr), 0x7E00, n // 2, drv.CUstream(0)), "cuMemsetD16Async")
    stream_synchronize(0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16"])
@pytest.mark.parametrize("p", COUNTS)
def test_memset_mode_writes_every_cell(cuda_device, p, dtype):
    from pointpillars_trt.network.cuda_scatter import CudaScatter

    s = CudaScatter(NX, NY, C, dtype, max_pillars=MAX_P, clear="memset")
    poison(s)
    feats, coords = random_frame(p, dtype, seed=p)
    assert_same_bits(run(s, feats, coords, cuda_device)[0], reference(feats, coords)[0])
    s.free()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16"])
@pytest.mark.parametrize("p", COUNTS)
def test_cells_mode_clears_the_previous_frame(cuda_device, p, dtype):
    from pointpillars_trt.network.cuda_scatter import CudaScatter

    s = CudaScatter(NX, NY, C, dtype, max_pillars=MAX_P, clear="cells")
    nan_feats, nan_coords = random_frame(MAX_P, dtype, seed=1000 + p, nan=True)
    run(s, nan_feats, nan_coords, cuda_device)  # poison every cell this mode will have to clear
    feats, coords = random_frame(p, dtype, seed=p)
    assert_same_bits(run(s, feats, coords, cuda_device)[0], reference(feats, coords)[0])
    s.free()


@pytest.mark.parametrize("clear", ["cells", "memset"])
def test_sequence_of_frames_on_a_stream(cuda_device, clear):
    from pointpillars_trt.cuda.memory import Stream
    from pointpillars_trt.network.cuda_scatter import CudaScatter

    stream = Stream(cuda_device)
    s = CudaScatter(NX, NY, C, np.float32, clear=clear)  # capacity grows on demand
    for i, p in enumerate([5, 12000, 0, 3, MAX_P, 1]):
        feats, coords = random_frame(p, np.float32, seed=50 + i)
        assert_same_bits(run(s, feats, coords, cuda_device, stream.handle)[0], reference(feats, coords)[0])
    s.free()
    stream.free()


def test_device_side_count(cuda_device):
    from pointpillars_trt.network.cuda_scatter import CudaScatter

    s = CudaScatter(NX, NY, C, np.float32, max_pillars=MAX_P)
    for i, p in enumerate([300, 20, 0, 4000]):
        feats, coords = random_frame(MAX_P, np.float32, seed=70 + i)  # buffers at max, count on the device
        f, c, n = upload(feats, cuda_device), upload(coords, cuda_device), upload(np.array([p], np.int32), cuda_device)
        ptr = s.scatter_device_count(f.ptr, c.ptr, n.ptr, MAX_P, 0)
        got = download(ptr, s.canvas_shape, np.float32)
        assert_same_bits(got[0], reference(feats[:p], coords[:p])[0])
    s.free()


def test_out_of_grid_coords_are_skipped(cuda_device):
    from pointpillars_trt.network.cuda_scatter import CudaScatter

    s = CudaScatter(NX, NY, C, np.float32, max_pillars=8, clear="memset")
    feats, coords = random_frame(4, np.float32, seed=3)
    bad = np.array([[-1, 0], [NX, 0], [0, NY], [0, -5]], np.int32)
    got = run(s, np.concatenate([feats, feats]), np.concatenate([coords, bad]), cuda_device)
    assert_same_bits(got[0], reference(feats, coords)[0])
    s.free()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("p", COUNTS)
def test_scatter_torch(torch_cuda, p, dtype):
    from pointpillars_trt.network.cuda_scatter import scatter_torch

    feats, coords = random_frame(p, np.float32, seed=p)
    pf = torch.from_numpy(feats).to("cuda", dtype)
    xy = torch.from_numpy(coords).to("cuda", torch.int64)  # int64 coords are converted
    got = scatter_torch(pf, xy, NX, NY)
    want = scatter_reference(pf, xy, NX, NY)  # the torch reference, on the GPU
    assert got.dtype == dtype and got.shape == (1, C, NY, NX)
    assert torch.equal(got, want)


def test_scatter_torch_on_a_side_stream(torch_cuda):
    from pointpillars_trt.network.cuda_scatter import scatter_torch

    feats, coords = random_frame(12000, np.float32, seed=9)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        pf = torch.from_numpy(feats).cuda()
        xy = torch.from_numpy(coords).cuda()
        got = scatter_torch(pf, xy, NX, NY)
    side.synchronize()
    assert torch.equal(got.cpu(), scatter_reference(torch.from_numpy(feats), torch.from_numpy(coords), NX, NY))
