"""benchmarks/sparse_conv.py against a dense convolution chain. The constants need only torch; the Triton
kernels run where Triton imports: on a GPU, or on the CPU in Triton's interpreter (TRITON_INTERPRET=1 set
before the import), otherwise they skip."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks import sparse_conv as sc

ON_GPU = torch.cuda.is_available()
needs_triton = pytest.mark.skipif(sc.triton is None or not (ON_GPU or os.environ.get("TRITON_INTERPRET") == "1"),
                                  reason="needs Triton on a GPU, or its interpreter (TRITON_INTERPRET=1) on the CPU")


def chain(seed: int, channels=(16, 32, 32, 32), strides=(2, 1, 1), dtype=torch.float16, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    ws = [(torch.randn(co, ci, 3, 3, generator=g) / (3 * ci ** 0.5)).to(dtype).to(device) for ci, co in zip(channels, channels[1:])]
    bs = [(torch.randn(co, generator=g) * 0.3).to(dtype).to(device) for co in channels[1:]]
    return ws, bs, list(strides)


def dense(canvas, ws, bs, strides):
    """The reference: each layer in float32 from the rounded input, rounded once."""
    x = canvas
    for w, b, s in zip(ws, bs, strides):
        x = F.relu(F.conv2d(x.float(), w.float(), b.float(), stride=s, padding=1)).to(canvas.dtype)
    return x


def sparse_canvas(seed: int, cin: int, hw: tuple[int, int], share: float, device="cpu"):
    """Pillars at a ``share`` of the cells of the canvas's top-left third (as a LiDAR's are clustered), the
    rest empty."""
    rng = np.random.default_rng(seed)
    ny, nx = hw
    iy, ix = np.divmod(np.arange(ny * nx), nx)
    cells = np.flatnonzero((rng.random(ny * nx) < share) & (iy < ny // 3) & (ix < nx // 3))
    coords = np.stack([cells % nx, cells // nx], 1).astype(np.int32)  # (ix, iy)
    canvas = torch.zeros(1, cin, ny, nx, dtype=torch.float16)
    feats = torch.from_numpy(rng.uniform(0, 2, (len(cells), cin)).astype(np.float16))
    canvas[0, :, coords[:, 1], coords[:, 0]] = feats.t()
    padded = np.zeros((len(cells) + 7, 2), np.int32)  # more rows than pillars, as the pipeline's buffer
    padded[:len(cells)] = coords
    return (canvas.to(device).contiguous(memory_format=torch.channels_last), torch.from_numpy(padded).to(device),
            torch.tensor([len(cells)], dtype=torch.int32, device=device))


def test_chain_constants_are_what_a_dense_chain_gives_on_an_empty_canvas():
    ws, bs, strides = chain(0)
    out = dense(torch.zeros(1, 16, 40, 50, dtype=torch.float16), ws, bs, strides)
    c = sc.chain_constants(ws, bs)[-1]
    interior = out[0, :, 3:-3, 3:-3]  # away from the border, where the zero padding is not the constant
    assert torch.allclose(interior.float(), c.float()[:, None, None].expand_as(interior), atol=2e-3)
    assert torch.equal(sc.chain_constants(ws[:1], bs[:1])[0], torch.relu(bs[0]))


@needs_triton
@pytest.mark.parametrize("share, channels, strides", [
    (0.0, (16, 32, 32, 32), (2, 1, 1)), (0.02, (16, 32, 32, 32), (2, 1, 1)), (0.5, (16, 32, 32, 32), (2, 1, 1)),
    (0.02, (16, 32, 32, 64, 64), (2, 1, 2, 1)),  # a later strided layer: the next block's first, as in blocks 0 + 1
])
def test_chain_is_the_dense_chain(share, channels, strides):
    dev = "cuda" if ON_GPU else "cpu"
    ws, bs, strides = chain(1, channels, strides, device=dev)
    hw = (135, 230)  # 68 x 115 after the stride: 9 x 8 tiles, partial ones at the far edges
    canvas, coords, count = sparse_canvas(2, 16, hw, share, dev)
    run = sc.ConstAwareChain(ws, bs, strides, hw)
    ref = dense(canvas, ws, bs, strides)
    for _ in range(2):  # the first layer's marks are cleared by the call: a second frame gives the same
        got = run(canvas, coords, count)
        assert got.shape == ref.shape
        err = (got.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-6)
        assert err < 1e-2, err
        assert int(run.first_marks.abs().sum()) == 0
    shares = run.computed_share()
    if share == 0.0:
        assert shares[0] == 0.0 and shares[1] > 0  # nothing marked; the border of later layers is always computed
    if share == 0.02 and len(shares) == 3:  # (the 4-layer chain's last map is 5 x 4 tiles: all at the border)
        assert shares[0] < shares[-1] < 1.0  # constant tiles in every layer: both branches run
    assert all(a <= b + 1e-9 for a, b in zip(shares[1:], shares[2:]))  # flags only grow along the chain


@needs_triton
@pytest.mark.parametrize("iy, ix, first_tiles", [
    (15, 31, [(0, 0), (0, 1), (1, 0), (1, 1)]),  # read by outputs oh 7 and 8, ow 15 and 16: four tiles' corners
    (20, 29, [(1, 0)]),  # read by ow 14 and 15 only: one tile, whose right neighbour's windows reach it in layer 1
])
def test_one_pillar_marks_the_tiles_whose_windows_hold_it(iy, ix, first_tiles):
    dev = "cuda" if ON_GPU else "cpu"
    ws, bs, strides = chain(3, device=dev)
    hw = (64, 128)
    canvas = torch.zeros(1, 16, *hw, dtype=torch.float16, device=dev)
    canvas[0, :, iy, ix] = 1.5
    canvas = canvas.contiguous(memory_format=torch.channels_last)
    coords = torch.tensor([[ix, iy], [0, 0]], dtype=torch.int32, device=dev)
    run = sc.ConstAwareChain(ws, bs, strides, hw)
    got = run(canvas, coords, torch.tensor([1], dtype=torch.int32, device=dev))
    ref = dense(canvas, ws, bs, strides)
    assert (got.float() - ref.float()).abs().max() / ref.float().abs().max() < 1e-2
    first = run.flags[0].cpu()
    assert sorted(map(tuple, first.nonzero().tolist())) == first_tiles
    assert int(run.flags[1][1, 1]) == 1  # an interior tile (its windows miss the border) next to the pillar's tiles


def reference_marks(coords: np.ndarray, hw: tuple[int, int], strides: list[int]) -> list[np.ndarray]:
    """Per layer, the output pixels that need not be the chain's constant: layer 0's whose 3 x 3 window (stride
    ``strides[0]``, pad 1) holds a pillar; later layers' whose window holds such a pixel or reaches the padding."""
    ny, nx = hw
    cells = torch.zeros(1, 1, ny, nx)
    cells[0, 0, coords[:, 1], coords[:, 0]] = 1.0
    out = []
    x = F.max_pool2d(F.pad(cells, (1, 1, 1, 1)), 3, strides[0])  # the first layer's pad is zeros: no pillar there
    out.append(x[0, 0].numpy() > 0)
    for s in strides[1:]:
        x = F.max_pool2d(F.pad(x, (1, 1, 1, 1), value=1.0), 3, s)  # later pads are zeros, not the constant
        out.append(x[0, 0].numpy() > 0)
    return out


@needs_triton
def test_marks_are_the_exact_non_constant_pixels_and_tiles_hold_them():
    dev = "cuda" if ON_GPU else "cpu"
    ws, bs, strides = chain(4, (16, 32, 32, 32, 64), (2, 1, 1, 2), device=dev)
    hw = (135, 230)
    canvas, coords, count = sparse_canvas(5, 16, hw, 0.02, dev)
    run = sc.ConstAwareChain(ws, bs, strides, hw)
    run(canvas, coords, count)
    want = reference_marks(coords[: int(count[0])].cpu().numpy(), hw, strides)
    for layer, (mask, flags, ref) in enumerate(zip(run.masks, run.flags, want)):
        got = mask.cpu().numpy() != 0
        assert got.shape == ref.shape and np.array_equal(got, ref), f"layer {layer}: {int((got != ref).sum())} pixels differ"
        tr, tc = flags.shape  # a tile is computed exactly when it holds a marked pixel
        padded = np.zeros((tr * sc.TILE_H, tc * sc.TILE_W), bool)
        padded[: ref.shape[0], : ref.shape[1]] = ref
        tiles = padded.reshape(tr, sc.TILE_H, tc, sc.TILE_W).any(axis=(1, 3))
        assert np.array_equal(flags.cpu().numpy() != 0, tiles), f"layer {layer}"
    # per-pixel marks grow by one pixel per layer, not by a tile: some tiles stay constant after three layers
    assert 0 < run.computed_share()[2] < 1
