"""The three ONNX graphs (PFN, MFN, RPN) and their fused chain, built node by node.

The graphs are written directly with ``onnx.helper`` from the BN-folded weights, not traced: every
constant is already folded, the node set is small and known (see :data:`OPS_USED`), names are
stable, and the FP16 variant is made by choosing each tensor's type rather than by a conversion
pass. ONNX contract (the TensorRT side relies on it; ``P`` is the dynamic axis ``num_pillars``):

* ``pfn``: ``features [P, M, 10]`` + ``num_points [P]`` int32 -> ``pillar_features [P, C]``
* ``mfn``: ``pillar_features [P, C]`` + ``coords [P, 2]`` int32 (ix, iy) -> ``canvas [1, C, ny, nx]``
  (zeros ``[ny*nx, C]`` + ScatterND of the rows ``iy * nx + ix``, then Transpose + Reshape)
* ``rpn``: ``canvas [1, C, ny, nx]`` (static) -> ``cls``, ``box``, ``dir`` ``[1, ch, H, W]``
* ``full``: ``features``, ``num_points``, ``coords`` -> ``cls``, ``box``, ``dir`` (the three chained)

Types: FP32 graphs are float32 throughout. FP16 graphs (see :class:`Fp16Policy`) take
``features`` as float16, pass ``pillar_features`` and ``canvas`` as float16, and return ``cls``,
``box``, ``dir`` as float32 (a Cast at the end), so post-processing stays in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from ..config import PointPillarsConfig
from ..contract import DYNAMIC_AXIS, PART_INPUTS, PART_OUTPUTS
from ..errors import ExportError
from ..model import PointPillars
from .fold import fold_pfn, fold_rpn

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17; older ONNX parsers reject newer IR versions
NUM_PILLARS = DYNAMIC_AXIS
PFN_INPUTS = PART_INPUTS["pfn"]
(PFN_OUTPUT,) = PART_OUTPUTS["pfn"]
MFN_INPUTS = PART_INPUTS["mfn"]
(MFN_OUTPUT,) = PART_OUTPUTS["mfn"]
(RPN_INPUT,) = PART_INPUTS["rpn"]
RPN_OUTPUTS = PART_OUTPUTS["rpn"]

#: every op type these builders can emit (all supported by onnx-tensorrt for TensorRT 10)
OPS_USED = frozenset(
    {"Unsqueeze", "Less", "Cast", "Mul", "MatMul", "Add", "Relu", "ReduceMax", "Gather", "ConstantOfShape",
     "ScatterND", "Transpose", "Reshape", "Conv", "ConvTranspose", "Concat", "DepthToSpace"}
)

_ONNX_TYPE = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16}
_NP_TYPE = {"fp32": np.float32, "fp16": np.float16}


@dataclass(frozen=True)
class Fp16Policy:
    """Which parts of an FP16 export stay in float32 (measured in docs/ACCURACY.md).

    ``pfn_fp32``: the PFN computes in float32 (its float16 ``features`` input is cast up): the
    linear layer sees absolute x, y, z of up to the range's extent, where float16 products lose
    the most. ``head_fp32``: the three 1x1 head convolutions compute in float32 (box regression
    and class logits straight from float32 accumulators). The backbone is float16 either way.
    """

    pfn_fp32: bool = False
    head_fp32: bool = False


#: what ``export_onnx(..., fp16=True)`` uses (chosen from the measurements in docs/ACCURACY.md)
DEFAULT_FP16_POLICY = Fp16Policy()


class _Builder:
    """Collects nodes and initializers; names get the builder's prefix to stay unique when fused."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, base: str) -> str:
        self._count += 1
        return f"{self.prefix}/{base}_{self._count}"

    def const(self, base: str, array: np.ndarray) -> str:
        name = self._name(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        out = output or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self._name(op_type), **attrs))
        return out

    def cast(self, x: str, precision: str, output: str | None = None) -> str:
        return self.op("Cast", [x], output, to=_ONNX_TYPE[precision])


# ---- parts ---------------------------------------------------------------------------------
def _pfn_nodes(b: _Builder, weight: np.ndarray, bias: np.ndarray, max_points: int, precision: str, compute: str,
               features: str, num_points: str, output: str) -> None:
    """Mask slots >= num_points, ``x @ weight + bias``, ReLU, max over the points."""
    slots = b.const("slots", np.arange(max_points, dtype=np.int32)[None, :])  # [1, M]
    n = b.op("Unsqueeze", [num_points, b.const("axes", np.array([1], np.int64))])  # [P, 1]
    mask = b.op("Less", [slots, n])  # [P, M] bool
    mask = b.op("Unsqueeze", [b.cast(mask, compute), b.const("axes", np.array([2], np.int64))])  # [P, M, 1]
    x = b.cast(features, compute) if compute != precision else features
    x = b.op("Mul", [x, mask])
    x = b.op("MatMul", [x, b.const("pfn_weight", weight.astype(_NP_TYPE[compute]))])  # [P, M, C]
    x = b.op("Add", [x, b.const("pfn_bias", bias.astype(_NP_TYPE[compute]))])
    x = b.op("Relu", [x])
    if compute != precision:
        x = b.op("ReduceMax", [x], axes=[1], keepdims=0)
        b.cast(x, precision, output)
    else:
        b.op("ReduceMax", [x], output, axes=[1], keepdims=0)


def _mfn_nodes(b: _Builder, nx: int, ny: int, channels: int, precision: str,
               pillar_features: str, coords: str, output: str) -> None:
    """Zero canvas ``[ny*nx, C]``, ScatterND of row ``iy * nx + ix``, then ``[1, C, ny, nx]``."""
    ix = b.op("Gather", [coords, b.const("col", np.array([0], np.int64))], axis=1)  # [P, 1]
    iy = b.op("Gather", [coords, b.const("col", np.array([1], np.int64))], axis=1)
    flat = b.op("Add", [b.op("Mul", [iy, b.const("nx", np.array(nx, np.int32))]), ix])  # [P, 1] int32
    flat = b.op("Cast", [flat], to=TensorProto.INT64)
    zero = helper.make_tensor("value", _ONNX_TYPE[precision], [1], [0.0])
    canvas = b.op("ConstantOfShape", [b.const("canvas_shape", np.array([ny * nx, channels], np.int64))], value=zero)
    canvas = b.op("ScatterND", [canvas, flat, pillar_features])  # [ny*nx, C]
    canvas = b.op("Transpose", [canvas], perm=[1, 0])  # [C, ny*nx]
    b.op("Reshape", [canvas, b.const("bev_shape", np.array([1, channels, ny, nx], np.int64))], output)


def _conv_node(b: _Builder, x: str, m: nn.Module, precision: str, output: str | None = None) -> str:
    w = b.const("weight", m.weight.detach().cpu().numpy().astype(_NP_TYPE[precision]))
    inputs = [x, w] if m.bias is None else [x, w, b.const("bias", m.bias.detach().cpu().numpy().astype(_NP_TYPE[precision]))]
    if isinstance(m.padding, str):
        raise ExportError(f"cannot export {m!r}: string padding")
    pads = list(m.padding) * 2
    attrs = dict(kernel_shape=list(m.kernel_size), strides=list(m.stride), pads=pads, dilations=list(m.dilation), group=m.groups)
    if isinstance(m, nn.ConvTranspose2d):
        if any(m.output_padding):
            attrs["output_padding"] = list(m.output_padding)
        return b.op("ConvTranspose", inputs, output, **attrs)
    return b.op("Conv", inputs, output, **attrs)


def _upsample_nodes(b: _Builder, x: str, m: nn.ConvTranspose2d, precision: str) -> str:
    """A transposed convolution with kernel = stride ``s`` as a 1x1 Conv to ``s*s*Cout`` channels and
    ``DepthToSpace`` (DCR, the channel order of :func:`~pointpillars_trt.model.inference_rpn.deconv_as_conv`):
    the same function, but a plain Conv, which ONNX Runtime runs as an int8 ``QLinearConv`` (it has
    no int8 ConvTranspose kernel on the CPU; a Reshape/Transpose/Reshape form measured slower)."""
    from ..model.inference_rpn import deconv_as_conv

    try:
        conv = deconv_as_conv(m)
    except ValueError as exc:
        raise ExportError(f"cannot export {m!r} as Conv + DepthToSpace: {exc}") from exc
    s = int(m.stride[0])
    x = _conv_node(b, x, conv, precision)
    return x if s == 1 else b.op("DepthToSpace", [x], blocksize=s, mode="DCR")


def _sequential_nodes(b: _Builder, x: str, seq: nn.Sequential, precision: str, deconv_as_conv: bool = False) -> str:
    for m in seq:
        if isinstance(m, nn.ConvTranspose2d) and deconv_as_conv:
            x = _upsample_nodes(b, x, m, precision)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            x = _conv_node(b, x, m, precision)
        elif isinstance(m, nn.ReLU):
            x = b.op("Relu", [x])
        elif isinstance(m, nn.Identity):
            continue
        else:
            raise ExportError(f"cannot export RPN layer {type(m).__name__} (BatchNorm must be folded first)")
    return x


def _rpn_nodes(b: _Builder, rpn: nn.Module, precision: str, head_precision: str, canvas: str, outputs: tuple[str, ...],
               deconv_as_conv: bool = False) -> None:
    """Backbone blocks, upsampling deblocks (``deconv_as_conv``: as Conv + DepthToSpace), Concat, and
    the three 1x1 heads (BN already folded)."""
    x, ups = canvas, []
    for block, deblock in zip(rpn.blocks, rpn.deblocks):
        x = _sequential_nodes(b, x, block, precision)
        ups.append(_sequential_nodes(b, x, deblock, precision, deconv_as_conv))
    x = b.op("Concat", ups, axis=1)
    if head_precision != precision:
        x = b.cast(x, head_precision)
    for name, conv in zip(outputs, (rpn.conv_cls, rpn.conv_box, rpn.conv_dir)):
        if head_precision == "fp32":
            _conv_node(b, x, conv, head_precision, name)
        else:
            b.cast(_conv_node(b, x, conv, head_precision), "fp32", name)


# ---- whole graphs ---------------------------------------------------------------------------
def _info(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _model(b: _Builder, name: str, inputs: list, outputs: list) -> onnx.ModelProto:
    graph = helper.make_graph(b.nodes, name, inputs, outputs, b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pointpillars_trt")
    model.ir_version = IR_VERSION
    return model


def build_graphs(model: PointPillars, cfg: PointPillarsConfig, precision: str = "fp32",
                 policy: Fp16Policy | None = None, fused: bool = False, deconv_as_conv: bool = False) -> dict[str, onnx.ModelProto]:
    """``{"pfn", "mfn", "rpn"}`` (and ``"full"`` when ``fused``) ONNX models of ``model`` (eval mode,
    BatchNorm folded). ``precision`` is ``fp32`` or ``fp16``; ``policy`` applies to ``fp16`` only.
    ``deconv_as_conv``: upsampling layers as Conv + DepthToSpace (the INT8 export's float graphs).
    ``full`` holds the three parts' own nodes, so a node or tensor has the same name in ``full.onnx``
    as in its part's graph (``rpn/Conv_5``): calibration ranges and ``--keep-float`` names apply to both."""
    if precision not in _ONNX_TYPE:
        raise ExportError(f"precision must be fp32 or fp16, got {precision!r}")
    policy = policy or Fp16Policy()
    pfn_compute = "fp32" if precision == "fp32" or policy.pfn_fp32 else "fp16"
    head_precision = "fp32" if precision == "fp32" or policy.head_fp32 else "fp16"
    weight, bias = fold_pfn(model.pfn)
    rpn = fold_rpn(model.rpn)
    nx, ny, _ = cfg.grid_size
    c = cfg.network.pfn_channels
    m = cfg.voxel.max_points_per_pillar
    f = cfg.voxel.num_decorated_features
    fx, fy = cfg.feature_map_size
    ft = _ONNX_TYPE[precision]
    P = NUM_PILLARS
    i_features = _info("features", ft, [P, m, f])
    i_num_points = _info("num_points", TensorProto.INT32, [P])
    i_coords = _info("coords", TensorProto.INT32, [P, 2])
    pf = _info(PFN_OUTPUT, ft, [P, c])
    canvas = _info(MFN_OUTPUT, ft, [1, c, ny, nx])
    heads = [_info(n, TensorProto.FLOAT, [1, cfg.head_channels[n], fy, fx]) for n in RPN_OUTPUTS]

    builders = {part: _Builder(part) for part in ("pfn", "mfn", "rpn")}
    _pfn_nodes(builders["pfn"], weight, bias, m, precision, pfn_compute, "features", "num_points", PFN_OUTPUT)
    _mfn_nodes(builders["mfn"], nx, ny, c, precision, PFN_OUTPUT, "coords", MFN_OUTPUT)
    _rpn_nodes(builders["rpn"], rpn, precision, head_precision, MFN_OUTPUT, RPN_OUTPUTS, deconv_as_conv)
    out = {
        "pfn": _model(builders["pfn"], "pointpillars_pfn", [i_features, i_num_points], [pf]),
        "mfn": _model(builders["mfn"], "pointpillars_mfn", [pf, i_coords], [canvas]),
        "rpn": _model(builders["rpn"], "pointpillars_rpn", [canvas], heads),
    }
    if fused:
        chain = _Builder("full")
        for b in builders.values():
            chain.nodes += b.nodes
            chain.initializers += b.initializers
        out["full"] = _model(chain, "pointpillars_full", [i_features, i_num_points, i_coords], heads)
    return out
