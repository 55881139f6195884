"""The depth-to-space kernel (kernels/depth_to_space.cu) against torch's reference copy."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.cuda_helpers import cuda_device, nvrtc_skip_reason, torch_cuda  # noqa: F401  (fixtures)
from pointpillars_trt.cuda.nvrtc import Target, compile_source, read_kernel_source

needs_nvrtc = pytest.mark.skipif(nvrtc_skip_reason() is not None, reason=str(nvrtc_skip_reason()))


@needs_nvrtc
def test_compiles():
    src, _ = read_kernel_source("depth_to_space.cu")
    ptx = compile_source(src, "depth_to_space.cu", Target("--gpu-architecture=compute_80", "ptx")).data.decode(errors="replace")
    assert sorted(re.findall(r"\.entry (\w+)\(", ptx)) == ["pp_depth_to_space", "pp_depth_to_space_add"]


@pytest.mark.gpu
@pytest.mark.parametrize("s", [1, 2, 4])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_matches_torch_copy_into_a_channel_slice(torch_cuda, s, dtype):
    import torch

    from pointpillars_trt.network.depth_to_space import depth_to_space_cuda, fits
    from pointpillars_trt.model.inference_rpn import depth_to_space_into

    dt = getattr(torch, dtype)
    g = torch.Generator(device="cuda").manual_seed(s)
    n, cout, h, w, total, off = 2, 64, 10, 14, 200, 64
    y = torch.randn((n, s * s * cout, h, w), generator=g, device="cuda").to(dt).contiguous(memory_format=torch.channels_last)
    want = torch.full((n, total, h * s, w * s), float("nan"), device="cuda", dtype=dt).contiguous(memory_format=torch.channels_last)
    got = want.clone()
    ref = y.permute(0, 2, 3, 1).unflatten(3, (s, s, cout)).permute(0, 1, 3, 2, 4, 5)
    want.permute(0, 2, 3, 1)[..., off:off + cout].unflatten(1, (h, s)).unflatten(3, (w, s)).copy_(ref)
    assert fits(y, got[:, off:off + cout], s)
    depth_to_space_cuda(y, got[:, off:off + cout], s)
    torch.cuda.synchronize()
    assert torch.equal(got.isnan(), want.isnan())  # nothing outside the slice was written
    assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(want))
    # the dispatching helper takes the same path; unaligned slices fall back to torch's copy
    assert not fits(y, got[:, 1:1 + cout], s)
    other = want.clone()
    depth_to_space_into(y, other[:, 1:1 + cout], s)
    torch.testing.assert_close(other[:, 1:1 + cout], want[:, off:off + cout])


# ---- pp_depth_to_space_add: the head's per-branch float32 terms added in depth-to-space order ---
def kernel_mirror(shape, terms, bias, half: bool) -> np.ndarray:
    """numpy copy of pp_depth_to_space_add's index math, sum order and rounding: ``shape`` the NHWC
    output ``[N, Hs, Ws, H]``, each term ``(z, s)`` a flat float32 array, ``bias`` ``[H]`` or None
    (float16 or float32); quads of 4 channels; float32 sums in the order bias, z_0, z_1, ... (the
    partial sums between launches stay float32, so launches do not show); rounded once to float16
    when ``half``."""
    n_, hs, ws, hc = shape
    run = hc // 4
    v = np.arange(n_ * hs * ws * run, dtype=np.int64)
    p = v // run
    c = v - p * run
    r = p // ws
    x_out = p - r * ws
    n = r // hs
    y_out = r - n * hs
    acc = np.zeros((v.size, 4), np.float32) if bias is None else bias.astype(np.float32).reshape(run, 4)[c]
    for z, s in terms:
        y, i, x, j = y_out // s, y_out % s, x_out // s, x_out % s
        at = ((((n * (hs // s) + y) * (ws // s) + x) * s + i) * s + j) * run + c
        acc = acc + z.reshape(-1, 4)[at]
    return acc.reshape(shape).astype(np.float16 if half else np.float32)


def _terms(rng, n, hc, hs, ws, strides):
    return [(rng.standard_normal(n * hs * ws * hc).astype(np.float32), s) for s in strides]


STRIDES = [(2, 4, 1), (1, 2, 4, 8, 16)]  # one launch on CUDA; five terms: two launches


@pytest.mark.parametrize("strides", STRIDES)
@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("with_bias", [True, False])
def test_kernel_index_math_matches_the_torch_adds(strides, half, with_bias):
    import torch

    from pointpillars_trt.model.inference_rpn import add_depth_to_space_into

    rng = np.random.default_rng(len(strides))
    n, hc, hs, ws = 2, 12, 16, 32
    terms = _terms(rng, n, hc, hs, ws, strides)
    dt = np.float16 if half else np.float32
    bias = rng.standard_normal(hc).astype(dt) if with_bias else None
    want = kernel_mirror((n, hs, ws, hc), terms, bias, half)
    got = torch.full((n, hs, ws, hc), float("nan"), dtype=getattr(torch, dt.__name__)).permute(0, 3, 1, 2)  # channels_last
    add_depth_to_space_into(got, [(torch.from_numpy(z), s) for z, s in terms], None if bias is None else torch.from_numpy(bias))
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), want)  # same float32 sums in the same order, one rounding
    # a term's row (n, y, x, i, j) lands on output pixel (y*s + i, x*s + j)
    z, s = terms[1]
    row = z.reshape(n, hs // s, ws // s, s, s, hc)[1, 1, 0, s - 1, 0]
    alone = kernel_mirror((n, hs, ws, hc), [terms[1]], None, False)
    np.testing.assert_array_equal(alone[1, 1 * s + s - 1, 0], row)


def test_float16_output_is_rounded_once_after_the_float32_sum():
    """Two terms that cancel: each rounded to float16 first, their sum would be 0; summed in float32
    and rounded once, 1/64 is kept (what the per-branch head in float16 relies on)."""
    import torch

    from pointpillars_trt.model.inference_rpn import add_depth_to_space_into

    a = np.float32(1000.0 + 1 / 64)  # float16's spacing at 1000 is 0.5
    assert np.float16(a) + np.float16(-1000.0) == 0
    terms = [(torch.full((4,), float(a)), 1), (torch.full((4,), -1000.0), 1)]
    out = torch.empty((1, 4, 1, 1), dtype=torch.float16)
    add_depth_to_space_into(out, terms)
    assert torch.all(out == 1 / 64)
    np.testing.assert_array_equal(kernel_mirror((1, 1, 1, 4), [(t.numpy(), s) for t, s in terms], None, True).ravel(), out.ravel().numpy())


@pytest.mark.gpu
@pytest.mark.parametrize("strides", [(2, 4), (1, 2, 4), (1, 2, 4, 8, 16)])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_add_kernel_matches_the_float32_sums_rounded_once(torch_cuda, strides, with_bias, dtype):
    import torch

    from pointpillars_trt.model.inference_rpn import add_depth_to_space_into
    from pointpillars_trt.network.depth_to_space import add_fits, depth_to_space_add_cuda

    dt = getattr(torch, dtype)
    rng = np.random.default_rng(len(strides))
    n, hc, hs, ws = 2, 72, 16, 32
    cpu_terms = [(torch.from_numpy(z), s) for z, s in _terms(rng, n, hc, hs, ws, strides)]
    terms = [(z.cuda(), s) for z, s in cpu_terms]
    bias = torch.from_numpy(rng.standard_normal(hc).astype(np.float32)).to("cuda", dt) if with_bias else None
    want = torch.empty((n, hc, hs, ws), dtype=dt).contiguous(memory_format=torch.channels_last)
    add_depth_to_space_into(want, cpu_terms, None if bias is None else bias.cpu())  # torch's adds on the CPU
    got = torch.full((n, hc, hs, ws), float("nan"), device="cuda", dtype=dt).contiguous(memory_format=torch.channels_last)
    assert add_fits(got, terms, bias)
    depth_to_space_add_cuda(got, terms, bias)
    again = torch.zeros_like(got)
    depth_to_space_add_cuda(again, terms, bias)
    torch.cuda.synchronize()
    assert torch.equal(got.cpu(), want) and torch.equal(got, again)
    assert not add_fits(got, [(z.half(), s) for z, s in terms], bias)  # float16 terms: not this kernel
    odd = torch.zeros((n, 70, hs, ws), device="cuda", dtype=dt).contiguous(memory_format=torch.channels_last)
    assert not add_fits(odd, [(z[: odd.numel()], s) for z, s in terms], None)  # rows of 70 values: torch's adds


@pytest.mark.gpu
def test_add_kernel_in_a_cuda_graph(torch_cuda):
    """Captured once, replayed: the same bits as the eager launch (five terms: the two launches and
    the float32 scratch map are inside the graph)."""
    import torch

    from pointpillars_trt.network.depth_to_space import depth_to_space_add_cuda

    rng = np.random.default_rng(5)
    n, hc, hs, ws = 1, 88, 32, 16
    terms = [(torch.from_numpy(z).cuda(), s) for z, s in _terms(rng, n, hc, hs, ws, (1, 2, 4, 8, 16))]
    bias = torch.from_numpy(rng.standard_normal(hc).astype(np.float16)).cuda()
    eager = torch.empty((n, hc, hs, ws), device="cuda", dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    depth_to_space_add_cuda(eager, terms, bias)
    out = torch.zeros_like(eager)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # as the device executor captures
        depth_to_space_add_cuda(out, terms, bias)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)
