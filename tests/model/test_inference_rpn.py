"""InferenceRPN (BatchNorm folded, conv + bias + ReLU fused, one head) against the trained RPN."""

from __future__ import annotations

import pytest
import torch

from pointpillars_trt.config import load_config
from pointpillars_trt.model import build_model
from pointpillars_trt.model.inference_rpn import InferenceRPN, conv_bias_relu, deconv_as_conv, depth_to_space_into, fold_batchnorm
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
