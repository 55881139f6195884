"""Quantization-aware fine-tuning (pointpillars_trt.train.qat): the fake quantization against a numpy
reference (per-channel weights, per-tensor activations, the straight-through and LSQ gradients), the
folded weights against the exporter's, and the QAT model against a real ONNX Runtime session of the
INT8 graph it mirrors; the learned ranges come back as the exported graph's scales."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from pointpillars_trt.exporter import CalibrationFrames, Int8Export, QuantizeOptions, export_onnx
from pointpillars_trt.exporter.calibration import frame_feeds
from pointpillars_trt.exporter.fold import fold_sequential
from pointpillars_trt.exporter.quantize import plain_session
from pointpillars_trt.model.inference_rpn import folded_conv
from pointpillars_trt.model import build_model
from pointpillars_trt.model.inference_rpn import deconv_as_conv
from pointpillars_trt.train.qat import (
    QatPointPillars, fake_quant, fake_quant_weight, read_qdq, weight_scales, write_ranges,
)

from tests.train.tiny_data import frame, scene_boxes, tiny_config

pytest.importorskip("onnxruntime")


def reference_quant(x: np.ndarray, scale, zp: float, qmin: int, qmax: int) -> np.ndarray:
    """QuantizeLinear (round half to even, saturate) then DequantizeLinear, in numpy float64."""
    return (np.clip(np.rint(x / scale) + zp, qmin, qmax) - zp) * scale


@pytest.mark.parametrize("zp, qmin, qmax", [(0.0, -128, 127), (0.0, 0, 255), (17.0, 0, 255)])
def test_activation_fake_quant_matches_quantize_linear(zp, qmin, qmax):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 8, 5000).astype(np.float32)
    x[:4] = [0.25, 0.75, -0.25, 2.5]  # ties: half to even
    got = fake_quant(torch.from_numpy(x), torch.tensor(0.5), zp, qmin, qmax).numpy()
    np.testing.assert_allclose(got, reference_quant(x.astype(np.float64), 0.5, zp, qmin, qmax), rtol=0, atol=1e-6)


def test_gradients_are_straight_through_and_lsq():
    x = torch.tensor([-300.0, -1.3, 0.2, 0.74, 2.0, 63.4, 500.0], requires_grad=True)
    s = torch.tensor(0.5, requires_grad=True)
    fake_quant(x, s, 0.0, -128, 127).sum().backward()
    inside = (x.detach() / 0.5 >= -128) & (x.detach() / 0.5 <= 127)
    assert torch.equal(x.grad, inside.float())  # 1 inside the range, 0 where it saturates
    v = x.detach() / 0.5
    lsq = torch.where(inside, torch.round(v) - v, torch.clamp(torch.round(v), -128, 127))  # LSQ's d/ds
    assert float(s.grad) == pytest.approx(float(lsq.sum()), rel=1e-5)


def test_weights_are_int8_per_output_channel():
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.1, (6, 4, 3, 3)).astype(np.float32)
    w[2] = 0.0  # an all-zero channel: scale 1 (ONNX Runtime's), values stay 0
    absmax = np.abs(w).reshape(6, -1).max(axis=1)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0)[:, None, None, None]
    got = fake_quant_weight(torch.from_numpy(w), transposed=False).numpy()
    np.testing.assert_allclose(got, reference_quant(w.astype(np.float64), scale, 0, -127, 127), rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(np.rint(got / scale)) <= 127) and np.all(got[2] == 0)


def test_a_transposed_conv_is_quantized_per_channel_of_its_1x1_conv_form():
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(8, 4, 2, stride=2, bias=False)
    quantized = nn.ConvTranspose2d(8, 4, 2, stride=2, bias=False)
    with torch.no_grad():
        quantized.weight.copy_(fake_quant_weight(deconv.weight, transposed=True))
    conv = deconv_as_conv(deconv).weight.detach().numpy()  # [s*s*Cout, Cin, 1, 1]
    absmax = np.abs(conv).reshape(conv.shape[0], -1).max(axis=1)[:, None, None, None]
    expected = reference_quant(conv.astype(np.float64), absmax / 127.0, 0, -127, 127)
    np.testing.assert_allclose(deconv_as_conv(quantized).weight.detach().numpy(), expected, rtol=1e-6, atol=1e-9)
    assert weight_scales(deconv.weight, True).shape == (1, 4, 2, 2)


def _tiny_model(seed: int = 0):
    """The tiny config's model with random BatchNorm statistics and affine parameters (eval mode)."""
    torch.manual_seed(seed)
    cfg = tiny_config()
    model = build_model(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return cfg, model.eval()


def test_folded_weights_equal_the_exporters():
    _, model = _tiny_model()
    for seq in [*model.rpn.blocks, *model.rpn.deblocks]:
        folded = [m for m in fold_sequential(seq) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        mods = list(seq)
        pairs = [(m, mods[i + 1]) for i, m in enumerate(mods) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        for ref, (conv, bn) in zip(folded, pairs, strict=True):
            w, b = folded_conv(conv, bn)
            np.testing.assert_allclose(w.detach().numpy(), ref.weight.detach().numpy(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(b.detach().numpy(), ref.bias.detach().numpy(), rtol=1e-6, atol=1e-7)


def _frames() -> CalibrationFrames:
    scenes = scene_boxes()
    return CalibrationFrames("tiny scenes", tuple(f"s{i}" for i in range(len(scenes))),
                             lambda i: frame(scenes[i][0], seed=i).astype(np.float32))


@pytest.fixture(scope="module", params=["int8", "uint8"])
def exported(request, tmp_path_factory):
    """``(cfg, model, out_dir, activation_type)``: the tiny model's INT8 export (fused) in ``out_dir``."""
    cfg, model = _tiny_model()
    out = tmp_path_factory.mktemp(f"qat_{request.param}")
    options = QuantizeOptions(method="minmax", activation_type=request.param)
    export_onnx(model, cfg, out, fused=True, int8=Int8Export(_frames(), options, threads=1))
    return cfg, model, out, request.param


def _torch_feeds(feeds: dict) -> list[torch.Tensor]:
    return [torch.from_numpy(feeds[k]) for k in ("features", "num_points", "coords")]


def _sqnr(ref: np.ndarray, x: np.ndarray) -> float:
    return float(10 * np.log10((ref.astype(np.float64) ** 2).sum() / max(((ref - x).astype(np.float64) ** 2).sum(), 1e-30)))


def test_the_qat_model_computes_what_the_int8_graph_computes(exported):
    cfg, model, out, _ = exported
    qdq = onnx.load(str(out / "full.onnx"))
    points, weighted = read_qdq(qdq)
    assert weighted and points and all(n.startswith("rpn/") for n in weighted)
    qat = QatPointPillars(model, qdq)
    feeds = frame_feeds(cfg, _frames().load(0))
    int8 = plain_session(str(out / "full.onnx"), 1).run(None, feeds)
    with torch.no_grad():
        fake = [t.numpy() for t in qat(*_torch_feeds(feeds))]
        ref = [t.numpy() for t in model(*_torch_feeds(feeds))]
    for name, g, f, r in zip(("cls", "box", "dir"), int8, fake, ref):
        # the fake quantization reproduces the graph far beyond its own quantization noise
        assert _sqnr(g, f) > 30.0 and _sqnr(g, f) > _sqnr(r, g) + 15.0, (name, _sqnr(g, f), _sqnr(r, g))


def test_learned_scales_become_the_exported_graphs_scales(exported, tmp_path):
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.checkpoint import save_native

    cfg, model, out, act = exported
    qat = QatPointPillars(model, onnx.load(str(out / "full.onnx")), learn_scales=True)
    with torch.no_grad():
        for i, q in enumerate(qat.rpn.quant.values()):
            q.log_scale += 0.05 * (i % 3 - 1)  # as if learned
    ckpt = save_native(tmp_path / "qat.safetensors", model.state_dict(), cfg)
    ranges = write_ranges(qat.rpn.points(), out / "calibration.json", tmp_path / "qat.calibration.json")
    options = QuantizeOptions(method="minmax", activation_type=act)
    export_onnx(model, cfg, tmp_path / "int8", fused=True, checkpoint_path=ckpt,
                int8=Int8Export(_frames(), options, ranges=ranges))
    points, _ = read_qdq(onnx.load(str(tmp_path / "int8" / "full.onnx")))
    learned = qat.rpn.scales()
    assert set(points) == set(learned)
    for name, p in points.items():
        assert p.scale == pytest.approx(learned[name], rel=1e-5), name
    det = Detector.from_engine_dir(tmp_path / "int8", backend="onnxruntime", device="cpu", threads=1)
    try:
        d = det.detect(_frames().load(1), source="tiny scene 1")
        assert d.boxes.shape[1] == 7
    finally:
        det.close()
    Detector.from_checkpoint(ckpt, backend="torch", device="cpu").close()  # the QAT checkpoint is a plain float one
