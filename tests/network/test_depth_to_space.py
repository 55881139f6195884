"""The depth-to-space kernel (kernels/depth_to_space.cu) against torch's reference copy."""

from __future__ import annotations

import re

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
