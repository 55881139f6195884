"""The upsampling convolutions + head in one Triton kernel (model/triton_head.py) against the RPN's
own head: a torch reference of the kernel's arithmetic (the packed weights, the sub-pixel indexing)
checked on the CPU, and the kernel against it and against the per-branch head on CUDA."""

from __future__ import annotations

import pytest
import torch

from pointpillars_trt.model.inference_rpn import InferenceRPN
from pointpillars_trt.model.triton_head import DEFAULT_TILES, HeadTiles, PackedNeckHead, next_pow2, unfit
from tests.cuda_helpers import cuda_device, torch_cuda  # noqa: F401  (fixtures)
from tests.model.test_inference_rpn import (CONFIGS, _canvas, _demo_canvas, _model, _on_cuda, assert_graph_replay_is_eager,
                                            float16_spacing, no_tf32)


def neck_head_reference(xs: list[torch.Tensor], packed: PackedNeckHead) -> torch.Tensor:
    """What the kernel computes, in torch, from the packed weights: for each branch (stride ``s``) and
    sub-pixel ``(i, j)``, the 1x1 convolution with that sub-pixel's ``Cout`` packed rows, bias and
    ReLU, rounded to the inputs' dtype, lands on the full-resolution pixels ``(y*s + i, x*s + j)``
    times the branch's padded head columns; summed in float32 (float64 for float64 inputs), plus the
    bias, rounded once. Returns ``[B, H, Hf, Wf]`` in the inputs' dtype."""
    acc = torch.float64 if xs[0].dtype == torch.float64 else torch.float32
    n, _, h0, w0 = xs[0].shape
    s0 = packed.strides[0]
    out = torch.zeros((n, h0 * s0, w0 * s0, packed.width), dtype=acc, device=xs[0].device)
    for x, s, up, ub, hd, cout in zip(xs, packed.strides, packed.up, packed.up_bias, packed.head, packed.couts):
        rows = x.permute(0, 2, 3, 1).to(acc)  # [B, h, w, Cin]
        for i in range(s):
            for j in range(s):
                sub = i * s + j
                y = torch.relu(rows @ up[sub].to(acc) + ub[sub * cout:(sub + 1) * cout].to(acc)).to(x.dtype).to(acc)
                out[:, i::s, j::s, :] += y @ hd[:, :packed.width].to(acc)
    return (out + packed.bias.to(acc)).to(xs[0].dtype).permute(0, 3, 1, 2)


# ---- CPU: the packing, the indexing, the fit rules (no Triton needed) ------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_the_reference_is_the_rpn_head(name):
    """In float64 the reference (the kernel's arithmetic on the packed weights) is the RPN's head."""
    cfg, model = _model(name)
    rpn = InferenceRPN(model.rpn).double()
    x = _canvas(cfg, batch=2)
    with torch.inference_mode():
        xs = rpn.blocks(x)
        got, want = neck_head_reference(xs, rpn.pack_neck()), rpn.head_output(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_packing_layout():
    """``up[sub]`` is the 1x1 weight's sub-pixel rows transposed; the head columns are zero-padded to a
    power of two of at least 16."""
    cfg, model = _model("kitti_pointpillars_3class")
    rpn = InferenceRPN(model.rpn).double()
    packed = rpn.pack_neck()
    hc = rpn.head.out_channels
    assert packed.width == hc and all(h.shape[1] == next_pow2(max(16, hc)) for h in packed.head)
    for up, p, s, cout in zip(rpn.ups, packed.up, packed.strides, packed.couts):
        w = up.weight[:, :, 0, 0]
        assert p.shape == (s * s, w.shape[1], cout)
        for sub in range(s * s):
            assert torch.equal(p[sub], w[sub * cout:(sub + 1) * cout].t())
    assert all((h[:, hc:] == 0).all() for h in packed.head)
    assert next_pow2(72) == 128 and next_pow2(64) == 64 and next_pow2(1) == 1


def test_unfit_names_what_does_not_fit():
    cfg, model = _model("kitti_pointpillars_3class")
    rpn = InferenceRPN(model.rpn).double()
    packed = rpn.pack_neck()
    with torch.inference_mode():
        xs = [x.contiguous(memory_format=torch.channels_last) for x in rpn.blocks(_canvas(cfg))]
        assert unfit(xs, packed, DEFAULT_TILES) is None
        assert "2 branches for 3 packed" in unfit(xs[:2], packed, DEFAULT_TILES)
        odd = [x.contiguous(memory_format=torch.channels_last) for x in rpn.blocks(_canvas(cfg)[:, :, :52])]
        assert "not a whole number of 4 x 4 cells" in unfit(odd, packed, DEFAULT_TILES)
        assert "needs channels_last" in unfit([xs[0].contiguous(), *xs[1:]], packed, DEFAULT_TILES)
        assert "is not a power of two" in unfit(xs, packed, HeadTiles(block_k=48))


def test_the_fused_neck_is_the_default_and_runs_only_on_cuda_float16():
    cfg, model = _model("kitti_pointpillars_3class")
    rpn = InferenceRPN(model.rpn).double()
    assert rpn.fused_neck and not InferenceRPN(model.rpn, fused_neck=False).fused_neck
    with torch.inference_mode():
        assert not rpn.fuses_neck_on(rpn.blocks(_canvas(cfg)))  # on the CPU: the head over the concatenated map
        assert rpn.head_form(_canvas(cfg)) == "concat" and not rpn.may_fuse_neck(_canvas(cfg))


def test_a_kernel_that_fails_falls_back_to_the_per_branch_head_with_a_warning(monkeypatch):
    """Where the fused kernel would run but fails (a GPU or Triton it does not compile for), the first
    call warns with the reason and the module keeps the unfused head from then on."""
    import pointpillars_trt.model.triton_head as th

    cfg, model = _model("kitti_pointpillars_3class")
    rpn = InferenceRPN(model.rpn).double()
    x = _canvas(cfg)
    monkeypatch.setattr(InferenceRPN, "packed_neck", lambda self, xs: self.pack_neck() if self.fused_neck else None)

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(th, "neck_head", broken)
    with torch.inference_mode():
        want = InferenceRPN(model.rpn, fused_neck=False).double().head_output(x)
        with pytest.warns(RuntimeWarning, match="fused upsampling \\+ head kernel failed .*no kernel image"):
            got = rpn.head_output(x)
        assert not rpn.fused_neck
        again = rpn.head_output(x)  # no second warning: the module stays on the unfused head
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(again, want, rtol=0, atol=0)


# ---- CUDA: the kernel -----------------------------------------------------------------------------
def _cuda_canvas(cfg, batch=2, seed=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(batch, cfg.network.pfn_channels, 128, 96, generator=g))
    return x.to("cuda", torch.float16).contiguous(memory_format=torch.channels_last)


@pytest.mark.gpu
@pytest.mark.parametrize("name", CONFIGS)
def test_neck_head_on_cuda_is_the_reference(torch_cuda, name):
    """The default RPN on CUDA in float16 runs the kernel; it is the reference within float16 rounding
    (sums in another order can round a branch value or the output the other way) for the default
    tiles and two others; shape, dtype and strides are the per-branch head's; deterministic."""
    pytest.importorskip("triton")
    from pointpillars_trt.model.triton_head import neck_head

    cfg, model = _model(name)
    fused, split = _on_cuda(model.rpn, torch.float16, fused_neck=True), _on_cuda(model.rpn, torch.float16)
    x = _cuda_canvas(cfg)
    with no_tf32(), torch.inference_mode():
        xs = fused.blocks(x)
        assert fused.fuses_neck_on(xs) and not split.fuses_neck_on(xs)
        got, again, theirs = fused.head_output(x), fused.head_output(x), split.head_output(x)
        packed = fused.packed_neck(xs)
        ref = neck_head_reference(xs, packed)
        others = [neck_head(xs, packed, t) for t in (HeadTiles(32, 32, 4, 3), HeadTiles(128, 64, 8, 2))]
        torch.cuda.synchronize()
    assert got.shape == theirs.shape and got.dtype == theirs.dtype == torch.float16 and got.stride() == theirs.stride()
    assert torch.equal(got, again)
    tol = 4 * float16_spacing(ref.float().abs().max()).item()
    for out in (got, *others):
        assert (out.float() - ref.float()).abs().max().item() <= tol
    assert (got.float() - theirs.float()).abs().max().item() <= 2 * tol


@pytest.mark.gpu
def test_fused_neck_on_a_real_frame_is_as_close_to_float32_as_the_split_head(torch_cuda):
    """The demo model on a real frame's canvas: against the float32 head over the concatenated map,
    the fused kernel's float16 head is as close as the per-branch head's."""
    pytest.importorskip("triton")
    cfg, model, canvas = _demo_canvas()
    with no_tf32():
        fused, split = _on_cuda(model.rpn, torch.float16, fused_neck=True), _on_cuda(model.rpn, torch.float16)
        fp32 = InferenceRPN(model.rpn, split_head=False, fused_neck=False).to("cuda")
        x16 = canvas.to("cuda", torch.float16).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            assert fused.fuses_neck_on(fused.blocks(x16))
            want = fp32.head_output(x16.float()).double()
            err = {k: (m.head_output(x16).double() - want).abs().mean().item() for k, m in (("fused", fused), ("split", split))}
        torch.cuda.synchronize()
    print("mean |error| against the float32 head over the concatenated map:", err)
    assert err["fused"] <= 1.05 * err["split"]


@pytest.mark.gpu
def test_fused_neck_in_a_cuda_graph_gives_the_eager_bits(torch_cuda):
    """Capturable once compiled (warm-up outside the capture, as the device executor does)."""
    pytest.importorskip("triton")
    cfg, model = _model("kitti_pointpillars_3class")
    rpn = _on_cuda(model.rpn, torch.float16, fused_neck=True)
    assert_graph_replay_is_eager(rpn, _cuda_canvas(cfg, batch=1, seed=4), "fused")
