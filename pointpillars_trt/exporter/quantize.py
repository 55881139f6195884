"""INT8 graphs with explicit quantization (QuantizeLinear/DequantizeLinear), by ONNX Runtime's quantizer.

Scheme: int8 weights, symmetric, per output channel; biases stay float; activations per tensor, of
:class:`ActivationType`: ``int8`` symmetric (zero point 0: what TensorRT's explicit quantization
accepts; ONNX Runtime runs the same graphs) or ``uint8`` asymmetric (ONNX Runtime's CPU only: every
quantized activation follows a ReLU, so a never-negative tensor gets the range ``[0, max]`` and all
256 codes, twice int8's resolution, and ONNX Runtime's x86 u8 x s8 kernels). Q/DQ go on the inputs and weights of every Conv and
MatMul and, with :attr:`QuantizeOptions.layer_outputs` (the default), on the outputs of the Convs,
ReLUs and the Concat too: ONNX Runtime fuses ``DQ -> Conv -> Q`` into ``QLinearConv`` only with a Q
after the Conv. The float graphs quantized here are the exporter's own, with the upsampling
deconvolutions as Conv + DepthToSpace (:func:`~.graphs.build_graphs` ``deconv_as_conv``), which
ONNX Runtime has an int8 kernel for.

Calibration (:class:`CalibrationMethod`) runs once, on ``full.onnx`` (PFN, scatter and RPN in one
graph) fed by :class:`~.calibration.CalibrationReader` one frame at a time; its tensor ranges are
kept in ``calibration.json`` beside the graphs and reused for ``pfn.onnx`` and ``rpn.onnx``, whose
node and tensor names are the same as in ``full.onnx``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from ..artifacts import WEIGHTED_OPS, Quantization
from ..config import PointPillarsConfig
from ..errors import ConfigError, ExportError
from ..options import Choice
from .calibration import CalibrationFrames, CalibrationReader
from .entropy import use_vectorized_entropy
from .qdq_rewrites import readers, set_nodes, tidy_qdq

CALIBRATION_FILE = "calibration.json"


class CalibrationMethod(Choice):
    """How activation ranges are chosen: the largest value seen (``minmax``), a percentile of the
    values' magnitudes (``percentile``), or the range keeping the int8 histogram closest to the
    float one (``entropy``, KL divergence)."""

    MINMAX = "minmax"
    PERCENTILE = "percentile"
    ENTROPY = "entropy"


class ActivationType(Choice):
    """The activations' integer type: ``int8``, symmetric with zero point 0 (TensorRT's explicit
    quantization takes only this; ONNX Runtime runs it too), or ``uint8``, asymmetric, a tensor
    that is never negative in calibration (a ReLU output) quantized over ``[0, max]`` with all 256
    codes (ONNX Runtime's CPU graphs only: TensorRT has no uint8 Q/DQ and
    ``export/build_engines.py`` refuses them)."""

    INT8 = "int8"
    UINT8 = "uint8"


@dataclass(frozen=True)
class QuantizeOptions:
    """``method`` and ``percentile`` (``percentile`` only); ``keep_float``: node names (as in the
    graphs, e.g. ``rpn/Conv_5``; :func:`quantizable_nodes` lists them) left in float;
    ``quantize_pfn``: the PFN's linear layer in int8 too (off by default: its input holds absolute
    x, y, z of tens of metres beside centimetre offsets, one per-tensor scale for both, and it is a
    few percent of the frame's time; see docs/ACCURACY.md); ``layer_outputs``: Q/DQ on the Conv,
    ReLU and Concat outputs too (ONNX Runtime's int8 kernels need them); False leaves only the
    inputs and weights of each Conv/MatMul quantized. ``float_first_conv``: the RPN's first
    convolution (it reads the scattered pillar canvas) stays float; ``float_head``: the RPN's
    output convolutions (class, box, direction) stay float; both are found in the graph, whatever
    the config's layer counts (``tools/int8_sweep.py`` measures what they buy). ``float_first_block``:
    the RPN's first block and the two convolutions that read its output stay float too
    (:func:`first_block_nodes`: the finest feature map's, whose sparse activations per-tensor int8
    cannot hold; the first two alone cost the v5 demo model 18-20 Car AP points, docs/ACCURACY.md).
    ``activation_type``: :class:`ActivationType`. ``histogram_bins``: bins of the calibration
    histogram of ``entropy`` and ``percentile`` (at least 128; ONNX Runtime's entropy default, 128,
    leaves its KL search about one candidate range: the first frame's)."""

    method: CalibrationMethod = CalibrationMethod.ENTROPY  # the best of the three in docs/ACCURACY.md
    percentile: float = 99.99
    keep_float: tuple[str, ...] = ()
    quantize_pfn: bool = False
    layer_outputs: bool = True
    float_first_conv: bool = True  # within float_first_block when that is on; alone when it is off
    float_head: bool = True
    float_first_block: bool = True  # v5 demo model, 360 val frames: int8 -2.2 Car AP (was -22.0), uint8 +0.2 (was -2.1)
    # uint8 (ONNX Runtime's CPU): the v5 demo model, 360 val frames, within 0.2 AP of FP32 with the first block float; int8
    # (TensorRT's only form: export with activation_type int8) -2.2 Car, and -2.1 after QAT (docs/ACCURACY.md)
    activation_type: ActivationType = ActivationType.UINT8
    histogram_bins: int = 128  # ONNX Runtime's: 2048 (a real KL search) clips far more and lost 36 Car AP (docs/ACCURACY.md)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", CalibrationMethod.parse(self.method, "calibration method"))
        object.__setattr__(self, "activation_type", ActivationType.parse(self.activation_type, "activation type"))
        if not 0.0 < float(self.percentile) <= 100.0:
            raise ConfigError(f"the calibration percentile must be in (0, 100], got {self.percentile}")
        if int(self.histogram_bins) < 128:
            raise ConfigError(f"histogram_bins must be at least 128, got {self.histogram_bins}")

    @property
    def quantized_bins(self) -> int:
        """Bins of the entropy search's quantized histogram, which spans ``[-range, range]``: 256
        for int8 (its 255 codes), 512 for uint8 (256 codes over the positive half alone), at most
        ``histogram_bins`` (128 and 128: ONNX Runtime's defaults, the recipe before 2026-12-01)."""
        return min(256 if self.activation_type == ActivationType.INT8 else 512, int(self.histogram_bins))

    @property
    def op_types(self) -> list[str]:
        return [*WEIGHTED_OPS, "Relu", "Concat"] if self.layer_outputs else list(WEIGHTED_OPS)


def _ort_method(method: CalibrationMethod):
    from onnxruntime.quantization import CalibrationMethod as Ort

    return {CalibrationMethod.MINMAX: Ort.MinMax, CalibrationMethod.PERCENTILE: Ort.Percentile,
            CalibrationMethod.ENTROPY: Ort.Entropy}[method]


def quantizable_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that get int8 weights (Conv, ConvTranspose, MatMul), in graph order."""
    return [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS]


def check_keep_float(names: Sequence[str], graphs: Sequence[onnx.ModelProto]) -> None:
    """Raise :class:`ConfigError` naming the unknown ones unless every name is a quantizable node of ``graphs``."""
    known = {n for g in graphs for n in quantizable_nodes(g)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ConfigError(f"--keep-float: no quantizable node named {unknown}; the graphs have {sorted(known)}")


def plain_session(source: str | bytes, threads: int | None):
    """An ONNX Runtime CPU session of ``source`` (a path or a serialized model) with its graph
    optimizations off (the tensors keep their names and values) and ``threads`` intra-op threads
    (None: ONNX Runtime's default, every core, which starves parallel calibrations)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])


def calibrate(model: onnx.ModelProto, options: QuantizeOptions, reader: CalibrationReader, cache: Path,
              threads: int | None = None) -> None:
    """Activation ranges of float ``model`` (``options.method``) over ``reader``'s frames, one
    frame at a time, written to ``cache`` in ONNX Runtime's calibration-cache format (what
    ``quantize_static`` computes itself, with the session's threads under our control)."""
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="pointpillars_calib_") as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(model, str(src))
        try:
            calibrator = create_calibrator(src, options.op_types, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                           calibrate_method=_ort_method(options.method),
                                           extra_options={"percentile": float(options.percentile),
                                                          "num_bins": int(options.histogram_bins),
                                                          "num_quantized_bins": options.quantized_bins})
            calibrator.infer_session = plain_session(calibrator.augmented_model_path, threads)
            with contextlib.redirect_stdout(io.StringIO()):  # its calibrators print a line per frame
                for start in range(len(reader)):
                    reader.set_range(start, start + 1)
                    calibrator.collect_data(reader)
                if options.method == CalibrationMethod.ENTROPY:
                    use_vectorized_entropy(calibrator)  # ONNX Runtime's search, minutes faster at 2048 bins
                ranges = calibrator.compute_data()
                if options.activation_type == ActivationType.UINT8:  # minmax: no histograms, its lowest is the data's
                    histograms = getattr(getattr(calibrator, "collector", None), "histogram_dict", None) or {}
                    ranges = relu_through_depth_to_space(model, one_sided(ranges, histograms))
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ExportError(f"{cache}: ONNX Runtime's calibrator failed: {exc}") from exc
    cache.unlink(missing_ok=True)
    save_tensors_data(ranges, cache)


def one_sided(ranges, histograms):
    """ONNX Runtime's ``TensorsData`` ``ranges`` with ``lowest`` 0 for every tensor that was never
    negative in calibration (the histogram calibrators report ``[-range, range]`` even for a ReLU
    output); others as they are. ``histograms``: the calibrator's ``collector.histogram_dict``,
    ``name -> (hist, edges, min, max, threshold)``, whose ``min`` is the smallest value seen. The
    ranges' own ``hist``/``bins`` are not used: ONNX Runtime's percentile calibrator stores the
    first two counts there, not the histogram (a 0-d array; an all-zero tensor's too)."""
    from onnxruntime.quantization.calibrate import TensorData

    for name in list(ranges.keys()):
        td, seen = ranges[name], histograms.get(name)
        if seen is None or float(td.lowest) >= 0.0 or float(np.min(seen[2])) < 0.0:
            continue
        ranges[name] = TensorData(lowest=np.zeros((), dtype=td.highest.dtype), highest=td.highest, hist=td.hist, bins=td.bins)
    return ranges


def relu_through_depth_to_space(model: onnx.ModelProto, ranges):
    """``ranges`` with the Relu output's range given to the Conv and DepthToSpace before it, for
    each Conv -> DepthToSpace -> Relu chain (the upsampling layers as exported) with no other
    consumers: ONNX Runtime's quantizer does that itself only for a Conv feeding a Relu directly
    (``adjust_tensor_ranges``); DepthToSpace only moves values, so clamping before it is clamping
    after it. Otherwise the Conv's output keeps its two-sided (pre-ReLU) range: half the codes."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    for relu in (n for n in model.graph.node if n.op_type == "Relu" and n.output[0] in ranges):
        d2s = producer.get(relu.input[0])
        if d2s is None or d2s.op_type != "DepthToSpace" or consumers[d2s.output[0]] != 1 or consumers[d2s.input[0]] != 1:
            continue
        conv = producer.get(d2s.input[0])
        if conv is not None and conv.op_type in WEIGHTED_OPS:
            for tensor in (d2s.input[0], d2s.output[0]):
                if tensor in ranges:
                    ranges[tensor] = ranges[relu.output[0]]
    return ranges


def quantize_graph(model: onnx.ModelProto, out_path: Path, options: QuantizeOptions, cache: Path) -> onnx.ModelProto:
    """The Q/DQ form of float ``model`` (written to ``out_path`` by ONNX Runtime, then returned),
    from the activation ranges in ``cache`` (:func:`calibrate`)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    symmetric = options.activation_type == ActivationType.INT8
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True, "QuantizeBias": False, "DedicatedQDQPair": True,
             "CalibPercentile": float(options.percentile)}
    activations = QuantType.QInt8 if symmetric else QuantType.QUInt8
    present = set(quantizable_nodes(model))
    with tempfile.TemporaryDirectory(prefix="pointpillars_int8_") as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(model, str(src))
        try:
            quantize_static(
                str(src), str(out_path), None, quant_format=QuantFormat.QDQ, op_types_to_quantize=options.op_types,
                per_channel=True, activation_type=activations, weight_type=QuantType.QInt8,
                nodes_to_exclude=[n for n in options.keep_float if n in present], calibrate_method=_ort_method(options.method),
                extra_options=extra, calibration_cache_path=str(cache),
            )
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ExportError(f"{out_path}: ONNX Runtime's quantizer failed: {exc}") from exc
    quantized = onnx.load(str(out_path))
    del quantized.metadata_props[:]
    return tidy_qdq(float_outputs(quantized), set(options.keep_float))


def float_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the Q -> DQ pair ONNX Runtime's quantizer puts on each graph output (the heads), so the
    class logits and box regressions leave their convolution in float, not rounded to one int8
    scale per tensor (about 0.14 logit and 4 cm of box delta per step, measured on the demo model)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers = readers(model)
    drop = []
    for out in model.graph.output:
        dq = producer.get(out.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear" or len(consumers.get(q.output[0], [])) != 1 or len(consumers.get(q.input[0], [])) != 1:
            continue
        source = producer[q.input[0]]
        source.output[list(source.output).index(q.input[0])] = out.name
        drop += [id(q), id(dq)]
    return set_nodes(model, [n for n in model.graph.node if id(n) not in drop])


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """The quantizable nodes whose output is a graph output (the RPN's class/box/direction convolutions)."""
    outputs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS and set(n.output) & outputs]


def first_block_nodes(model: onnx.ModelProto, cfg: PointPillarsConfig) -> list[str]:
    """The RPN's first block (``layer_nums[0] + 1`` convolutions: the strided one and the others) and
    the two that read its output, its upsampling and the second block's first convolution: the first
    ``layer_nums[0] + 3`` weighted nodes of the RPN graph ``model`` (``+ 2`` with one block), which
    runs each block, then its upsampling (``model/rpn.py``'s forward). With all its readers float,
    the first block's output carries no Q/DQ (ONNX Runtime would not fuse an int8 convolution
    reading a DequantizeLinear that a float one shares: it ran the second block's first in float)."""
    bb = cfg.network.backbone
    return quantizable_nodes(model)[: bb.layer_nums[0] + 2 + (len(bb.layer_nums) > 1)]


def float_nodes(options: QuantizeOptions, graphs: dict[str, onnx.ModelProto], cfg: PointPillarsConfig) -> tuple[str, ...]:
    """The nodes left in float: ``options.keep_float``; unless ``quantize_pfn``, the PFN's; with
    ``float_first_conv`` / ``float_head`` / ``float_first_block``, the RPN's first / output
    convolutions / :func:`first_block_nodes` (of ``graphs["rpn"]``)."""
    pfn = [] if options.quantize_pfn or "pfn" not in graphs else quantizable_nodes(graphs["pfn"])
    rpn = graphs.get("rpn")
    if (options.float_first_conv or options.float_head or options.float_first_block) and rpn is None:
        raise ExportError("float_first_conv / float_head / float_first_block need the RPN graph")
    first = quantizable_nodes(rpn)[:1] if options.float_first_conv else []
    block = first_block_nodes(rpn, cfg) if options.float_first_block else []
    head = head_nodes(rpn) if options.float_head else []
    return tuple(sorted({*options.keep_float, *pfn, *first, *block, *head}))


def quantization_record(options: QuantizeOptions, frames: CalibrationFrames, keep_float: Sequence[str]) -> Quantization:
    """What goes into each INT8 graph's metadata (:class:`~pointpillars_trt.artifacts.Quantization`)."""
    import onnxruntime

    return Quantization(
        method=str(options.method), percentile=float(options.percentile) if options.method == CalibrationMethod.PERCENTILE else None,
        calibration=frames.source, frames=tuple(frames.names), keep_float=tuple(sorted(keep_float)),
        tool=f"onnxruntime.quantization {onnxruntime.__version__}", activation_type=str(options.activation_type),
        histogram_bins=None if options.method == CalibrationMethod.MINMAX else int(options.histogram_bins),
    )


def quantize_graphs(graphs: dict[str, onnx.ModelProto], cfg: PointPillarsConfig, frames: CalibrationFrames,
                    options: QuantizeOptions, out_dir: Path, recalibrate: bool = True,
                    threads: int | None = None) -> tuple[dict[str, onnx.ModelProto], Quantization]:
    """``(graphs, record)``: Q/DQ forms of the float ``graphs`` (``pfn``, ``mfn``, ``rpn``, ``full``;
    ``full`` is required: the calibration runs on it, with ``threads`` ONNX Runtime threads) and
    their metadata record. The MFN (a scatter, no weights) is returned as it is. Ranges go to
    ``out_dir / calibration.json``; ``recalibrate=False`` reuses the ranges there (another
    ``keep_float``, the same frames and method)."""
    if "full" not in graphs:
        raise ExportError("quantize_graphs needs the fused full graph to calibrate on")
    check_keep_float(options.keep_float, list(graphs.values()))
    keep = float_nodes(options, graphs, cfg)
    options = dataclasses.replace(options, keep_float=keep)
    cache = Path(out_dir) / CALIBRATION_FILE
    if recalibrate:
        full_inputs = [i.name for i in graphs["full"].graph.input]
        calibrate(graphs["full"], options, CalibrationReader(cfg, frames, full_inputs), cache, threads)
    elif not cache.is_file():
        raise ExportError(f"{cache}: no calibration ranges to reuse; calibrate first")
    out: dict[str, onnx.ModelProto] = {}
    for part, graph in graphs.items():
        if part == "mfn":
            out[part] = graph
            continue
        tmp = Path(out_dir) / f".{part}.int8.tmp.onnx"
        out[part] = quantize_graph(graph, tmp, options, cache)
        tmp.unlink(missing_ok=True)
    return out, quantization_record(options, frames, keep)
