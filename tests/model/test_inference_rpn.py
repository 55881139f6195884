"""InferenceRPN (BatchNorm folded, conv + bias + ReLU fused, one head) against the trained RPN."""

from __future__ import annotations

import pytest
import torch

from pointpillars_trt.config import load_config
from pointpillars_trt.model import build_model
from pointpillars_trt.model.inference_rpn import InferenceRPN, conv_bias_relu, deconv_as_conv, depth_to_space_into, fold_batchnorm
from tests.cuda_helpers import cuda_device, torch_cuda  # noqa: F401  (fixtures)
from tests.helpers import lively_state_dict

CONFIGS = ["kitti_pointpillars_3class", "example_360_2class"]


def _model(name):
    cfg = load_config(name)
    model = build_model(cfg)
    model.load_state_dict(lively_state_dict(cfg, seed=3))
    return cfg, model.double().eval()


def _canvas(cfg, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)  # a small canvas (any multiple of the largest stride): same layers, less work
    return torch.relu(torch.randn(batch, cfg.network.pfn_channels, 64, 48, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("upsample", ["conv", "deconv"])
@pytest.mark.parametrize("name", CONFIGS)
def test_same_function_as_the_trained_rpn(name, upsample):
    cfg, model = _model(name)
    fused = InferenceRPN(model.rpn, upsample=upsample).double()
    x = _canvas(cfg, batch=2)
    with torch.inference_mode():
        want = model.rpn(x)
        got = fused(x)
        folded = fold_batchnorm(model.rpn)(x)
    for w, g, f, ch in zip(want, got, folded, ("cls", "box", "dir")):
        assert g.shape == w.shape and g.shape[1] == cfg.head_channels[ch]
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(f, w, rtol=1e-9, atol=1e-9)


def test_heads_are_slices_of_one_tensor_and_the_trained_rpn_is_untouched():
    cfg, model = _model("kitti_pointpillars_3class")
    before = {k: v.clone() for k, v in model.rpn.state_dict().items()}
    fused = InferenceRPN(model.rpn).double()
    assert all(torch.equal(v, model.rpn.state_dict()[k]) for k, v in before.items())
    with torch.inference_mode():
        x = _canvas(cfg)
        whole = fused.head_output(x)
        cls, box, dirs = fused(x)
    assert whole.shape[1] == sum(fused.splits) == cls.shape[1] + box.shape[1] + dirs.shape[1]
    assert cls.untyped_storage().data_ptr() == box.untyped_storage().data_ptr() == dirs.untyped_storage().data_ptr()
    torch.testing.assert_close(torch.cat([cls, box, dirs], dim=1), whole, rtol=0, atol=0)


def test_conv_bias_relu_cpu_reference():
    g = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(1, 8, 9, 7, generator=g), torch.randn(5, 8, 3, 3, generator=g), torch.randn(5, generator=g)
    got = conv_bias_relu(x, w, b, (2, 2), (1, 1))
    want = torch.relu(torch.nn.functional.conv2d(x, w, b, 2, 1))
    torch.testing.assert_close(got, want)
    assert got.min() >= 0


def test_built_in_the_source_dtype():
    cfg, model = _model("example_360_2class")
    fused = InferenceRPN(model.rpn)  # float64 source: float64 everywhere, no .double() needed
    assert {p.dtype for p in fused.parameters()} == {torch.float64}


@pytest.mark.parametrize("s", [1, 2, 4])
def test_deconv_as_conv_then_depth_to_space(s):
    from torch import nn

    g = torch.Generator().manual_seed(s)
    deconv = nn.ConvTranspose2d(6, 5, s, stride=s).double()
    with torch.no_grad():
        deconv.weight.copy_(torch.randn(deconv.weight.shape, generator=g))
        deconv.bias.copy_(torch.randn(5, generator=g))
    x = torch.randn(2, 6, 3, 4, generator=g, dtype=torch.float64)
    conv = deconv_as_conv(deconv)
    want = deconv(x)
    for fmt in (torch.contiguous_format, torch.channels_last):
        y = conv(x.contiguous(memory_format=fmt))
        out = torch.full((2, 9, 3 * s, 4 * s), float("nan"), dtype=torch.float64).contiguous(memory_format=fmt)
        depth_to_space_into(y, out[:, 2:7], s)  # a channel slice, as in the concatenated map
        torch.testing.assert_close(out[:, 2:7], want, rtol=1e-12, atol=1e-12)
        assert torch.isnan(out[:, :2]).all() and torch.isnan(out[:, 7:]).all()
    with pytest.raises(ValueError, match="kernel == stride"):
        deconv_as_conv(nn.ConvTranspose2d(6, 5, 3, stride=2))


def test_channels_last_input_gives_the_same_features():
    cfg, model = _model("kitti_pointpillars_3class")
    fused = InferenceRPN(model.rpn).double()
    x = _canvas(cfg)
    with torch.inference_mode():
        a = fused.features(x)
        b = fused.to(memory_format=torch.channels_last).features(x.contiguous(memory_format=torch.channels_last))
    assert b.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ---- the head without the concatenated map (head_without_concat) ---------------------------------
# (layer_strides, upsample_strides, num_upsample_filters): KITTI's neck, a unit branch and one
# other, no unit branch (the add starts from the bias), two unit branches (addmm_ accumulates),
# four terms for the add (more than one launch's worth on CUDA)
NECKS = {
    "kitti-1-2-4": ((2, 2, 2), (1, 2, 4), (24, 16, 8)),
    "1-2": ((2, 2), (1, 2), (16, 24)),
    "2-4": ((4, 2), (2, 4), (8, 16)),
    "1-1-2": ((2, 1, 2), (1, 1, 2), (8, 8, 16)),
    "1-2-4-8-16": ((2, 2, 2, 2, 2), (1, 2, 4, 8, 16), (8, 8, 8, 8, 8)),
}


def _neck_rpn(name, neck, seed=0):
    import dataclasses

    from pointpillars_trt.model.rpn import RPN

    cfg = load_config(name)
    strides, ups, filters = neck
    n = len(strides)
    bb = dataclasses.replace(cfg.network.backbone, layer_nums=(1,) * n, layer_strides=strides, num_filters=(16,) * n,
                             upsample_strides=ups, num_upsample_filters=filters)
    cfg = cfg.replace(network={"pfn_channels": 8, "backbone": bb})
    torch.manual_seed(seed)
    rpn = RPN(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # BatchNorm statistics and head biases that are not the defaults
        for m in rpn.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
        for head in (rpn.conv_cls, rpn.conv_box, rpn.conv_dir):
            head.bias.copy_(torch.randn(head.out_channels, generator=g))
    return cfg, rpn.eval()


@pytest.mark.parametrize("neck", sorted(NECKS))
@pytest.mark.parametrize("name", CONFIGS)
def test_head_without_concat_equals_the_head_over_the_concatenated_map(name, neck):
    from pointpillars_trt.model.inference_rpn import head_without_concat

    cfg, rpn = _neck_rpn(name, NECKS[neck])
    fused = InferenceRPN(rpn)
    g = torch.Generator().manual_seed(1)
    x = torch.relu(torch.randn(2, 8, 64, 96, generator=g))
    with torch.inference_mode():
        want = fused.head_output(x)  # on the CPU: the concatenated map and one head convolution
        assert not fused.splits_head_on(fused.branches(x))
        for fmt in (torch.contiguous_format, torch.channels_last):
            ys = fused.branches(x.contiguous(memory_format=fmt))
            got = head_without_concat(ys, fused.up_strides, fused.head.weight[:, :, 0, 0], fused.head.bias)
            assert got.shape == want.shape and got.dtype == want.dtype == torch.float32
            assert got.is_contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert want.shape[1] == sum(cfg.head_channels.values())


def test_head_without_concat_in_float64_and_the_deconv_form_is_untouched():
    from pointpillars_trt.model.inference_rpn import head_without_concat

    _, rpn = _neck_rpn("kitti_pointpillars_3class", NECKS["kitti-1-2-4"])
    fused = InferenceRPN(rpn.double())
    x = _canvas(load_config("kitti_pointpillars_3class")).narrow(1, 0, 8).contiguous()
    with torch.inference_mode():
        ys = fused.branches(x)
        got = head_without_concat(ys, fused.up_strides, fused.head.weight[:, :, 0, 0], fused.head.bias)
        torch.testing.assert_close(got, fused.head(fused.concat(ys)), rtol=1e-12, atol=1e-12)
        deconv = InferenceRPN(rpn, upsample="deconv")
        assert not deconv.splits_head_on(deconv.branches(x))
        torch.testing.assert_close(deconv.head_output(x), got, rtol=1e-9, atol=1e-9)


@pytest.mark.gpu
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_split_head_on_cuda_matches_the_concatenated_head(torch_cuda, name, dtype):
    """The default on CUDA (channels_last): same shape, dtype, strides and channel order as the
    concatenated map + head convolution; the float sums run in another order (three products
    rounded, then added), so close to the float64 head of the same branch outputs, not equal; the
    same input twice gives the same bits."""
    from pointpillars_trt.model.inference_rpn import head_without_concat

    cfg, model = _model(name)
    dt = getattr(torch, dtype)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        split = InferenceRPN(model.rpn, split_head=True).to("cuda", dt).to(memory_format=torch.channels_last)
        concat = InferenceRPN(model.rpn, split_head=False).to("cuda", dt).to(memory_format=torch.channels_last)
        g = torch.Generator().manual_seed(2)
        x = torch.relu(torch.randn(2, cfg.network.pfn_channels, 128, 96, generator=g))
        x = x.to("cuda", dt).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            ys = split.branches(x)
            assert split.splits_head_on(ys) and not concat.splits_head_on(ys)
            got, again, want = split.head_output(x), split.head_output(x), concat.head_output(x)
            w, b = split.head.weight[:, :, 0, 0], split.head.bias
            mine, theirs = head_without_concat(ys, split.up_strides, w, b), split.head(split.concat(ys))
            ref = head_without_concat([y.double() for y in ys], split.up_strides, w.double(), b.double())
            bound = b.double().abs().max() + sum(  # the largest term: what the roundings are relative to
                head_without_concat([y.double()], [s], w.double()[:, o:o + y.shape[1] // (s * s)], 0 * b.double()).abs().max()
                for y, s, o in zip(ys, split.up_strides, _offsets(split)))
        torch.cuda.synchronize()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert got.shape == want.shape and got.dtype == want.dtype == dt and got.stride() == want.stride()
    assert torch.equal(got, again)
    tol = (4 * 2.0 ** -11 if dtype == "float16" else 1e-5) * bound.item()
    assert (mine.double() - ref).abs().max().item() <= tol
    assert (theirs.double() - ref).abs().max().item() <= tol


def _offsets(fused):
    """Each branch's first channel in the concatenated map."""
    out, o = [], 0
    for up, s in zip(fused.ups, fused.up_strides):
        out.append(o)
        o += up.out_channels // (s * s)
    return out
