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


def test_the_split_head_is_the_default_and_runs_only_on_cuda():
    cfg, model = _model("kitti_pointpillars_3class")
    fused = InferenceRPN(model.rpn)
    assert fused.split_head and not InferenceRPN(model.rpn, split_head=False).split_head
    with torch.inference_mode():
        assert not fused.splits_head_on(fused.branches(_canvas(cfg)))  # on the CPU: the head over the concatenated map


# ---- float16: the per-branch head rounds once, as the head over the concatenated map does ------------
def _demo_canvas(frame: int = 0):
    """The demo model (the shipped weights; seeded random ones where the package has none) and the
    float32 canvas ``[1, C, ny, nx]`` of one real KITTI frame."""
    from pointpillars_trt.io.pointcloud import load_points
    from pointpillars_trt.sources import resolve_weights
    from pointpillars_trt.voxelize import make_voxelizer
    from tests.helpers import kitti_frame_paths

    cfg, state, _ = resolve_weights()
    model = build_model(cfg)
    model.load_state_dict(dict(state))
    p = make_voxelizer(cfg.voxel)(load_points(kitti_frame_paths()[frame]))
    with torch.inference_mode():
        canvas = model.mfn(model.pfn(torch.from_numpy(p.features), torch.from_numpy(p.num_points)), torch.from_numpy(p.coords))
    return cfg, model.eval(), canvas


def rounded_products_head(ys, strides, weight, bias):
    """The earlier per-branch head, for comparison: each branch's product rounded to the branches'
    dtype (the first unit-stride branch with the bias, as ``addmm`` wrote it into the output), then
    the products summed in float32 and rounded once."""
    from pointpillars_trt.model.inference_rpn import add_depth_to_space_into

    n, _, h, w = ys[0].shape
    out = torch.empty((n, weight.shape[0], h * strides[0], w * strides[0]), dtype=ys[0].dtype, device=ys[0].device,
                      memory_format=torch.channels_last)
    terms, offset, with_bias = [], 0, False
    for y, s in zip(ys, strides):
        cout = y.shape[1] // (s * s)
        rows, wt = y.permute(0, 2, 3, 1).reshape(-1, cout), weight[:, offset:offset + cout].t()
        offset += cout
        product = torch.addmm(bias, rows, wt) if s == 1 and not with_bias else torch.mm(rows, wt)
        with_bias = with_bias or s == 1
        terms.append((product.float(), s))
    add_depth_to_space_into(out, terms, None if with_bias else bias)
    return out


def head_errors(ys, strides, weight, bias):
    """``(float64 head of these branch outputs, |error| of the per-branch head, |error| of the
    rounded-products head, bound)`` with ``bound`` the largest bias or branch term (what float32
    sums are relative to)."""
    from pointpillars_trt.model.inference_rpn import head_without_concat

    with torch.inference_mode():
        ref = head_without_concat([y.double() for y in ys], strides, weight.double(), bias.double())
        new = head_without_concat(ys, strides, weight, bias)
        old = rounded_products_head(ys, strides, weight, bias)
        terms, o = [], 0
        for y, s in zip(ys, strides):
            c = y.shape[1] // (s * s)
            terms.append(head_without_concat([y.double()], [s], weight.double()[:, o:o + c], None).abs().max())
            o += c
    assert new.dtype == ys[0].dtype and new.is_contiguous(memory_format=torch.channels_last)
    bound = max([bias.double().abs().max(), *terms]).item()
    return ref, (new.double() - ref).abs(), (old.double() - ref).abs(), bound


def float16_spacing(x: torch.Tensor) -> torch.Tensor:
    """The distance between the two float16 values around each ``x`` (2^-24 below the normal range)."""
    return torch.exp2(torch.floor(torch.log2(x.abs().clamp_min(2.0 ** -14))) - 10)


def assert_rounded_once(ref, err_new, err_old, bound):
    """float16: the per-branch head is the exact head rounded once (within half a float16 spacing,
    plus float32 sums) everywhere; the head whose products were rounded first is not, and is further
    off on average."""
    once = float16_spacing(ref) / 2 + bound * 2.0 ** -18
    frac_old = (err_old > once).double().mean().item()
    print(f"|error| max {err_new.max():.3g} mean {err_new.mean():.3g}; products rounded first: max {err_old.max():.3g} "
          f"mean {err_old.mean():.3g}, {100 * frac_old:.2f} % of the values more than half a float16 spacing off")
    assert (err_new <= once).all()
    assert frac_old > 1e-3 and err_new.mean() < err_old.mean()


def test_float16_split_head_rounds_once_on_a_real_frame():
    """On the CPU (the same decomposition, float32 products by upcast): the demo model's branch
    outputs of a crop of a real frame's canvas, in float16."""
    cfg, model, canvas = _demo_canvas()
    fused = InferenceRPN(model.rpn)
    rows = canvas.abs().sum(dim=(0, 1, 3)).nonzero()
    y0 = max(0, min(int(rows.median()) - 32, canvas.shape[2] - 64)) // 8 * 8
    with torch.inference_mode():
        ys = fused.branches(canvas[:, :, y0:y0 + 64, :96].contiguous())
    half = [y.half() for y in ys]
    w, b = fused.head.weight[:, :, 0, 0].half(), fused.head.bias.half()
    assert_rounded_once(*head_errors(half, fused.up_strides, w, b))


class no_tf32:
    """Float32 GEMMs and convolutions in full float32 inside the block (cuDNN allows TF32 by default)."""

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def _on_cuda(rpn, dtype, split_head=True, fused_neck=False):
    """The per-branch (or concatenated-map) head on CUDA; ``fused_neck`` (the default of InferenceRPN) is
    tested in test_triton_head.py."""
    return InferenceRPN(rpn, split_head=split_head, fused_neck=fused_neck).to("cuda", dtype).to(memory_format=torch.channels_last)


@pytest.mark.gpu
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_split_head_on_cuda_matches_the_concatenated_head(torch_cuda, name, dtype):
    """The default on CUDA (channels_last): same shape, dtype, strides and channel order as the
    concatenated map + head convolution; float16: the float64 head of the same branch outputs
    rounded once (float32 products and sums); the same input twice gives the same bits."""
    cfg, model = _model(name)
    dt = getattr(torch, dtype)
    with no_tf32():
        split, concat = _on_cuda(model.rpn, dt), _on_cuda(model.rpn, dt, split_head=False)
        g = torch.Generator().manual_seed(2)
        x = torch.relu(torch.randn(2, cfg.network.pfn_channels, 128, 96, generator=g))
        x = x.to("cuda", dt).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            ys = split.branches(x)
            assert split.splits_head_on(ys) and not concat.splits_head_on(ys)
            got, again, want = split.head_output(x), split.head_output(x), concat.head_output(x)
            theirs = split.head(split.concat(ys))
        w, b = split.head.weight[:, :, 0, 0], split.head.bias
        ref, err, _, bound = head_errors(ys, split.up_strides, w, b)
        torch.cuda.synchronize()
    assert got.shape == want.shape and got.dtype == want.dtype == dt and got.stride() == want.stride()
    assert torch.equal(got, again)
    if dtype == "float16":
        assert (err <= float16_spacing(ref) / 2 + bound * 2.0 ** -18).all()
    else:
        assert err.max().item() <= 1e-5 * bound
    assert (theirs.double() - ref).abs().max().item() <= (4 * 2.0 ** -11 if dtype == "float16" else 1e-5) * bound


@pytest.mark.gpu
def test_float16_split_head_on_a_real_frame_is_as_close_to_float32_as_the_concatenated_head(torch_cuda):
    """The demo model on a real frame's canvas, the whole grid: the float16 per-branch head rounds
    once (cuBLAS float32 products, our kernel's float32 sums), and against the float32 head over the
    concatenated map it is closer than the head whose products were rounded to float16 first, and as
    close as the float16 head over the concatenated map."""
    cfg, model, canvas = _demo_canvas()
    with no_tf32():
        split16, concat16 = _on_cuda(model.rpn, torch.float16), _on_cuda(model.rpn, torch.float16, split_head=False)
        concat32 = InferenceRPN(model.rpn, split_head=False).to("cuda")  # NCHW, as the float32 device network runs it
        x16 = canvas.to("cuda", torch.float16).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            ys = split16.branches(x16)
            assert split16.splits_head_on(ys)
            w, b = split16.head.weight[:, :, 0, 0], split16.head.bias
            fp32 = concat32.head_output(x16.float()).double()
            forms = {"split": split16.head_output(x16), "concat": concat16.head_output(x16),
                     "rounded products": rounded_products_head(ys, split16.up_strides, w, b)}
        assert_rounded_once(*head_errors(ys, split16.up_strides, w, b))
        torch.cuda.synchronize()
    err = {k: (v.double() - fp32).abs().mean().item() for k, v in forms.items()}
    print("mean |error| against the float32 head over the concatenated map:", err)
    assert err["split"] < err["rounded products"] and err["split"] <= 1.02 * err["concat"]


@pytest.mark.gpu
def test_split_head_in_a_cuda_graph_gives_the_eager_bits(torch_cuda):
    """Capturable: cuBLAS GEMMs with float32 outputs and the add kernel, replayed from a graph, give
    the eager result bit for bit (deterministic: no atomics)."""
    cfg, model = _model("kitti_pointpillars_3class")
    rpn = _on_cuda(model.rpn, torch.float16)
    g = torch.Generator().manual_seed(4)
    x = torch.relu(torch.randn(1, cfg.network.pfn_channels, 128, 96, generator=g)).to("cuda", torch.float16)
    x = x.contiguous(memory_format=torch.channels_last)
    assert_graph_replay_is_eager(rpn, x, "split")


def assert_graph_replay_is_eager(rpn, x, form: str) -> None:
    """``rpn.head_output(x)`` captured in a CUDA graph and replayed equals the eager result bit for bit;
    ``rpn`` runs head ``form`` (:meth:`InferenceRPN.head_form`). Warm-up outside the capture (cuBLAS
    handles, cuDNN plans, Triton's compile), as the device executor does."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode():
        with torch.cuda.stream(side):
            for _ in range(2):
                eager = rpn.head_output(x)
        torch.cuda.current_stream().wait_stream(side)
        assert rpn.head_form(x) == form
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # as the device executor captures
            captured = rpn.head_output(x)
        graph.replay()
        torch.cuda.synchronize()
    assert torch.equal(captured, eager)
