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


# ---- pp_depth_to_space_add: the head's per-branch terms added in depth-to-space order -----------
def kernel_mirror(out: np.ndarray, terms, bias, lanes: int) -> np.ndarray:
    """numpy copy of pp_depth_to_space_add's index math and sum order (float32): ``out`` NHWC
    ``[N, Hs, Ws, H]``, each term ``(z, s)`` a flat array, values in vectors of ``lanes``."""
    _, hs, ws, hc = out.shape
    run, total = hc // lanes, out.size // lanes
    v = np.arange(total, dtype=np.int64)
    p = v // run
    c = v - p * run
    r = p // ws
    x_out = p - r * ws
    n = r // hs
    y_out = r - n * hs
    acc = (out.reshape(total, lanes) if bias is None else bias.reshape(run, lanes)[c]).astype(np.float32)
    for z, s in terms:
        y, i, x, j = y_out // s, y_out % s, x_out // s, x_out % s
        at = ((((n * (hs // s) + y) * (ws // s) + x) * s + i) * s + j) * run + c
        acc = acc + z.reshape(-1, lanes)[at].astype(np.float32)
    return acc.reshape(out.shape)


def _terms(rng, n, hc, hs, ws, strides):
    return [(rng.standard_normal(n * hs * ws * hc).astype(np.float32), s) for s in strides]


@pytest.mark.parametrize("lanes", [4, 8])  # float32 and float16 vectors
@pytest.mark.parametrize("with_bias", [True, False])
def test_kernel_index_math_matches_the_torch_adds(lanes, with_bias):
    import torch

    from pointpillars_trt.model.inference_rpn import add_depth_to_space_into

    rng = np.random.default_rng(lanes)
    n, hc, hs, ws = 2, 3 * lanes, 8, 12
    terms = _terms(rng, n, hc, hs, ws, (2, 4, 1))
    out = rng.standard_normal((n, hs, ws, hc)).astype(np.float32)
    bias = rng.standard_normal(hc).astype(np.float32) if with_bias else None
    want = kernel_mirror(out, terms, bias, lanes)
    got = torch.from_numpy(out.copy()).permute(0, 3, 1, 2)  # [N, H, Hs, Ws], channels_last
    add_depth_to_space_into(got, [(torch.from_numpy(z), s) for z, s in terms], None if bias is None else torch.from_numpy(bias))
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), want)  # same float32 sums in the same order
    # a term's row (n, y, x, i, j) lands on output pixel (y*s + i, x*s + j)
    z, s = terms[1]
    row = z.reshape(n, hs // s, ws // s, s, s, hc)[1, 1, 2, 3, 0]
    alone = kernel_mirror(np.zeros_like(out), [terms[1]], None, lanes)
    np.testing.assert_array_equal(alone[1, 1 * s + 3, 2 * s + 0], row)


@pytest.mark.gpu
@pytest.mark.parametrize("strides", [(2, 4), (1, 2, 4, 8)])  # one launch; four terms: two launches
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_add_kernel_matches_float32_sums_rounded_per_launch(torch_cuda, strides, with_bias, dtype):
    import torch

    from pointpillars_trt.model.inference_rpn import add_depth_to_space_into
    from pointpillars_trt.network.depth_to_space import MAX_TERMS, add_fits, depth_to_space_add_cuda

    dt = getattr(torch, dtype)
    rng = np.random.default_rng(len(strides))
    n, hc, hs, ws = 2, 72, 16, 24
    terms = [(torch.from_numpy(z).to("cuda", dt), s) for z, s in _terms(rng, n, hc, hs, ws, strides)]
    out = torch.from_numpy(rng.standard_normal((n, hs, ws, hc)).astype(np.float32)).to("cuda", dt).permute(0, 3, 1, 2)
    bias = torch.from_numpy(rng.standard_normal(hc).astype(np.float32)).to("cuda", dt) if with_bias else None
    want, first = out.float().cpu(), bias  # torch's adds on the CPU, in float32
    for k in range(0, len(terms), MAX_TERMS):  # the kernel rounds once per launch
        chunk = [(z.float().cpu(), s) for z, s in terms[k:k + MAX_TERMS]]
        add_depth_to_space_into(want, chunk, None if first is None else first.float().cpu())
        want, first = want.to(dt).float(), None
    got = out.clone()
    assert add_fits(got, terms, bias)
    depth_to_space_add_cuda(got, terms, bias)
    again = out.clone()
    depth_to_space_add_cuda(again, terms, bias)
    torch.cuda.synchronize()
    assert torch.equal(got.cpu(), want.to(dt)) and torch.equal(got, again)
    odd = torch.zeros((n, 70, hs, ws), device="cuda", dtype=dt).contiguous(memory_format=torch.channels_last)
    assert not add_fits(odd, [(z[: odd.numel()], s) for z, s in terms], None)  # rows of 70 values: torch's adds
