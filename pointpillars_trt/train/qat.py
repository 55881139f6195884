"""Quantization-aware fine-tuning (QAT): the float model trained with fake quantization exactly where
the INT8 export's Q/DQ graph quantizes, so that its PTQ export loses less.

What is quantized is read from a real Q/DQ graph (:func:`~pointpillars_trt.exporter.quantize.quantize_graphs`'
``full.onnx`` of the same float model and :class:`~pointpillars_trt.exporter.QuantizeOptions`), not
re-derived: :func:`read_qdq` lists every activation ``QuantizeLinear`` (tensor name, scale, zero point,
type) and the convolutions whose weights are int8; :func:`rpn_steps` maps the RPN's graph nodes, in
graph order, onto the torch modules (the exporter builds them in module order). :class:`QatRPN` then runs
the RPN with

* weights: the BN-folded weight (running statistics frozen, as the export folds them) fake-quantized
  int8 symmetric per output channel, scale ``max|w| / 127`` (ONNX Runtime's); a transposed convolution
  ``[Cin, Cout, s, s]`` per ``(Cout, i, j)``: the output channels of the 1x1 Conv + DepthToSpace it is
  exported as;
* activations: per tensor, at each tensor the graph quantizes (Conv, ReLU and Concat outputs), with the
  graph's scale and zero point (``int8`` symmetric or ``uint8``), ``QuantizeLinear``'s rounding (half to
  even) and saturation; fixed, or learned (LSQ, as ``log(scale)``) with ``learn_scales``.

Gradients pass the rounding straight through (STE) and are zero where the value saturates. The
fine-tuned model is a plain float checkpoint (same keys); :func:`write_ranges` writes the ranges it was
trained against as a ``calibration.json`` for the export's ``ranges`` (``export_onnx.py --calib-ranges``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, ExportError
from ..model import PointPillars
from ..model.inference_rpn import folded_conv

#: ``(qmin, qmax)`` of ``QuantizeLinear``'s saturation per ONNX element type
_QRANGE = {onnx.TensorProto.INT8: (-128, 127), onnx.TensorProto.UINT8: (0, 255)}
_STEP_OPS = ("Conv", "ConvTranspose", "Relu", "Concat")


def round_ste(v: torch.Tensor) -> torch.Tensor:
    """``round(v)`` (half to even, as ``QuantizeLinear``) forward, identity backward."""
    return v + (torch.round(v) - v).detach()


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: float, qmin: int, qmax: int) -> torch.Tensor:
    """``(clamp(round(x / scale) + zp, qmin, qmax) - zp) * scale``: ``QuantizeLinear`` then
    ``DequantizeLinear``. ``scale``: a scalar or a tensor broadcasting against ``x`` (per channel).
    Gradient: straight through the rounding, zero where it saturates; ``scale`` gets LSQ's gradient."""
    q = torch.clamp(round_ste(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def weight_scales(w: torch.Tensor, transposed: bool) -> torch.Tensor:
    """Per-channel symmetric int8 scales of a conv weight, ONNX Runtime's ``2 max|w| / 254`` (1 where a
    channel is all zero), shaped to broadcast against ``w``: ``[O, 1, 1, 1]`` for a Conv ``[O, I, kh, kw]``,
    ``[1, O, kh, kw]`` for a ConvTranspose ``[I, O, kh, kw]`` (the output channels of its 1x1-Conv form)."""
    dims = (0,) if transposed else tuple(range(1, w.ndim))
    absmax = w.detach().abs().amax(dim=dims, keepdim=True)
    return torch.where(absmax > 0, 2.0 * absmax / 254.0, torch.ones_like(absmax))


def fake_quant_weight(w: torch.Tensor, transposed: bool) -> torch.Tensor:
    """``w`` int8 symmetric per output channel (:func:`weight_scales`), clamped to [-127, 127], STE."""
    return fake_quant(w, weight_scales(w, transposed), 0.0, -127, 127)


@dataclass(frozen=True)
class QdqPoint:
    """One activation ``QuantizeLinear`` of the graph: ``scale``, ``zero_point``, saturation ``qmin..qmax``."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int


def read_qdq(model: onnx.ModelProto) -> tuple[dict[str, QdqPoint], set[str]]:
    """``(points, weighted)`` of a Q/DQ graph: ``{tensor: QdqPoint}`` for each quantized activation (a
    ``QuantizeLinear`` not fed by an initializer) and the names of the nodes whose weight (input 1) comes
    from a ``DequantizeLinear``. Raises :class:`ExportError` if one tensor has two different scales."""
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    points: dict[str, QdqPoint] = {}
    for n in model.graph.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in init:
            continue
        zp = init[n.input[2]]
        qmin, qmax = _QRANGE[onnx.helper.np_dtype_to_tensor_dtype(zp.dtype)]
        p = QdqPoint(float(init[n.input[1]]), int(zp), qmin, qmax)
        if points.setdefault(n.input[0], p) != p:
            raise ExportError(f"{model.graph.name}: tensor {n.input[0]!r} is quantized with two scales")
    weighted = {n.name for n in model.graph.node if len(n.input) > 1 and n.input[1] in producer
                and producer[n.input[1]].op_type == "DequantizeLinear"}
    return points, weighted


@dataclass(frozen=True)
class Step:
    """One RPN graph node the torch forward mirrors: ``op`` (Conv, ConvTranspose, Relu, Concat), the
    node's ``name`` and its ``input``/``output`` tensor names."""

    op: str
    name: str
    input: str
    output: str


def rpn_steps(model: onnx.ModelProto) -> list[Step]:
    """The Conv / ConvTranspose / Relu / Concat nodes of the graph's RPN (``rpn/`` names), in graph order."""
    return [Step(n.op_type, n.name, n.input[0], n.output[0]) for n in model.graph.node
            if n.name.startswith("rpn/") and n.op_type in _STEP_OPS]


def _torch_steps(rpn: nn.Module) -> list[tuple[str, tuple]]:
    """The RPN's modules in the exporter's order: ``("Conv", (conv, bn or None, transposed))``,
    ``("Relu", ())``, ``("Concat", ())``; blocks and deblocks interleaved, then the three heads."""
    out: list[tuple[str, tuple]] = []

    def seq(mods: nn.Sequential) -> None:
        mods = list(mods)
        for i, m in enumerate(mods):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d) else None
                out.append(("Conv", (m, bn, isinstance(m, nn.ConvTranspose2d))))
            elif isinstance(m, nn.ReLU):
                out.append(("Relu", ()))
    for block, deblock in zip(rpn.blocks, rpn.deblocks):
        seq(block)
        seq(deblock)
    out.append(("Concat", ()))
    out += [("Conv", (conv, None, False)) for conv in (rpn.conv_cls, rpn.conv_box, rpn.conv_dir)]
    return out


class ActivationQuant(nn.Module):
    """Fake quantization of one tensor, per tensor, in float32 (outside any autocast): the graph's
    :class:`QdqPoint`; ``learn``: ``log(scale)`` is a parameter (LSQ), else a buffer."""

    def __init__(self, point: QdqPoint, learn: bool) -> None:
        super().__init__()
        log_scale = torch.tensor(math.log(point.scale), dtype=torch.float32)
        if learn:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.zero_point, self.qmin, self.qmax = float(point.zero_point), point.qmin, point.qmax

    @property
    def scale(self) -> float:
        return float(torch.exp(self.log_scale.detach()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quant(x.float(), torch.exp(self.log_scale), self.zero_point, self.qmin, self.qmax)


class QatRPN(nn.Module):
    """The float ``rpn`` (its parameters shared, not copied) run as the Q/DQ graph computes it: BN
    folded with frozen statistics, int8 weights on the ``weighted`` convolutions, fake quantization on
    each tensor of ``points`` (:func:`read_qdq`), located through ``steps`` (:func:`rpn_steps` of the
    graph). Raises :class:`ExportError` when the graph's RPN does not match the module or a quantized
    tensor of the graph is not one it produces (e.g. the PFN's, ``quantize_pfn``)."""

    def __init__(self, rpn: nn.Module, steps: list[Step], points: dict[str, QdqPoint], weighted: set[str],
                 learn_scales: bool = False) -> None:
        super().__init__()
        self.rpn = rpn
        ops = _torch_steps(rpn)
        graph_ops = ["Conv" if s.op == "ConvTranspose" else s.op for s in steps]
        if [op for op, _ in ops] != graph_ops:
            raise ExportError(f"the graph's RPN nodes {graph_ops} do not match the model's layers {[op for op, _ in ops]}")
        self._ops = [(op, args, s.name in weighted, _key(s.output)) for (op, args), s in zip(ops, steps)]
        produced = {steps[0].input, *(s.output for s in steps)}
        stray = sorted(set(points) - produced)
        if stray:
            raise ExportError(f"QAT mirrors the RPN's quantized tensors only; the graph also quantizes {stray}")
        self.canvas_key = _key(steps[0].input)
        self.tied = relu_ties(steps, points)
        self._names = [k for k in points if k not in self.tied]
        self.quant = nn.ModuleDict({_key(k): ActivationQuant(points[k], learn_scales) for k in self._names})

    def _point(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return self.quant[key](x) if key in self.quant else x  # a tied Conv output: its ReLU's quantizes it

    def _conv(self, x: torch.Tensor, conv, bn, transposed: bool, int8: bool) -> torch.Tensor:
        w, b = folded_conv(conv, bn)
        if int8:
            w = fake_quant_weight(w.float(), transposed)
        if transposed:
            return F.conv_transpose2d(x, w, b, conv.stride, conv.padding, conv.output_padding, conv.groups, conv.dilation)
        return F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups)

    def _step(self, op: tuple, x: torch.Tensor) -> torch.Tensor:
        kind, args, int8, key = op
        y = self._conv(x, *args, int8) if kind == "Conv" else torch.relu(x)
        return self._point(key, y)

    def _seq(self, steps, n: int, x: torch.Tensor) -> torch.Tensor:
        for _ in range(n):
            x = self._step(next(steps), x)
        return x

    def forward(self, canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``canvas [B, C, ny, nx]`` -> ``cls, box, dir`` (:class:`~pointpillars_trt.model.rpn.RPN`'s shapes)."""
        steps = iter(self._ops)
        x, ups = self._point(self.canvas_key, canvas), []
        for block, deblock in zip(self.rpn.blocks, self.rpn.deblocks):
            x = self._seq(steps, _layer_count(block), x)
            ups.append(self._seq(steps, _layer_count(deblock), x))
        x = self._point(next(steps)[3], torch.cat(ups, dim=1))
        return tuple(self._step(next(steps), x) for _ in range(3))

    def scales(self) -> dict[str, float]:
        """``{graph tensor name: scale}`` of every quantized activation (learned or fixed), a tied Conv
        output (:func:`relu_ties`) with its ReLU's."""
        own = {k: q.scale for k, q in zip(self._names, self.quant.values())}
        return {**own, **{conv: own[relu] for conv, relu in self.tied.items()}}

    def points(self) -> dict[str, QdqPoint]:
        """:meth:`scales` as :class:`QdqPoint` (zero points and saturation as in the graph)."""
        quants = {**dict(zip(self._names, self.quant.values())),
                  **{c: self.quant[_key(r)] for c, r in self.tied.items()}}
        return {k: QdqPoint(q.scale, int(q.zero_point), q.qmin, q.qmax) for k, q in quants.items()}


def _key(tensor: str) -> str:
    """A graph tensor name as a module key (no dots or slashes)."""
    return tensor.replace("/", "_").replace(".", "_")


def relu_ties(steps: list[Step], points: dict[str, QdqPoint]) -> dict[str, str]:
    """``{conv output: relu output}`` for each Conv read only by a ReLU, both quantized alike with zero
    point 0: ONNX Runtime gives such a Conv output its ReLU's range (``adjust_tensor_ranges``), and then
    ``relu(fq(y)) == fq(relu(y))``, so one (learnable) scale serves both."""
    readers: dict[str, int] = {}
    for s in steps:
        readers[s.input] = readers.get(s.input, 0) + 1
    ties = {}
    for conv, relu in zip(steps, steps[1:]):
        if (conv.op == "Conv" and relu.op == "Relu" and relu.input == conv.output and readers[conv.output] == 1
                and conv.output in points and points.get(relu.output) == points[conv.output] and points[conv.output].zero_point == 0):
            ties[conv.output] = relu.output
    return ties


def _layer_count(seq: nn.Sequential) -> int:
    """Convolutions and ReLUs in ``seq`` (the graph nodes it becomes)."""
    return sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.ReLU)) for m in seq)


class QatPointPillars(nn.Module):
    """``model`` (its PFN, scatter and parameters shared) with the RPN as :class:`QatRPN` of the Q/DQ
    graph ``qdq`` (the INT8 export's ``full.onnx`` of ``model``): ``cfg``, ``pfn``, ``mfn``, ``rpn``
    as :class:`~pointpillars_trt.model.PointPillars` has them, so the training forward
    (:func:`~.batched.forward_batch`) runs it. Keep it in eval mode (BatchNorm statistics frozen)."""

    def __init__(self, model: PointPillars, qdq: onnx.ModelProto, learn_scales: bool = False) -> None:
        from ..exporter import build_graphs

        super().__init__()
        self.cfg, self.pfn, self.mfn = model.cfg, model.pfn, model.mfn
        float_full = build_graphs(model.eval(), model.cfg, "fp32", fused=True, deconv_as_conv=True)["full"]
        points, weighted = read_qdq(qdq)
        if not weighted:
            raise ConfigError(f"{qdq.graph.name}: the graph has no int8 convolution: not an INT8 export")
        self.rpn = QatRPN(model.rpn, rpn_steps(float_full), points, weighted, learn_scales)
        self.eval()

    def forward(self, features: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor):
        """``features [P, M, 10]``, ``num_points [P]``, ``coords [P, 2]`` -> head maps (batch 1)."""
        return self.rpn(self.mfn(self.pfn(features, num_points), coords))


def write_ranges(points: dict[str, QdqPoint], calibration: str | Path, out: str | Path) -> Path:
    """``calibration`` (a ``calibration.json`` of ONNX Runtime's calibrator) with each tensor of
    ``points`` given the range ONNX Runtime turns back into that scale and zero point (int8 symmetric:
    ``+-127 scale``; otherwise ``[(qmin - zp) scale, (qmax - zp) scale]``), written to ``out``."""
    try:
        data = json.loads(Path(calibration).read_text())
        tensors = data["data"]
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"{calibration}: not a calibration.json of ONNX Runtime's calibrator ({exc})") from exc
    for name, p in points.items():
        if name not in tensors:
            raise ExportError(f"{calibration}: no range for tensor {name!r} (calibrated on another graph?)")
        lo, hi = (-127.0, 127.0) if p.qmin == -128 and p.zero_point == 0 else (p.qmin - p.zero_point, p.qmax - p.zero_point)
        tensors[name]["lowest"], tensors[name]["highest"] = float(np.float32(lo * p.scale)), float(np.float32(hi * p.scale))
    Path(out).write_text(json.dumps(data))
    return Path(out)
