"""``export_onnx``: a model or state dict -> checked ONNX graphs with metadata, written to a folder."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import onnx
import torch

from .. import __version__
from ..config import PointPillarsConfig
from ..errors import CheckpointError, EngineError, ExportError
from ..io.atomic import atomic_write_bytes, check_writable
from ..model import PointPillars, build_model
from .graphs import DEFAULT_FP16_POLICY, Fp16Policy, build_graphs
from ..artifacts import ArtifactMetadata, Quantization, graph_sha256, read_onnx_metadata
from .calibration import CalibrationFrames
from .metadata import file_sha256, state_dict_sha256
from .quantize import CALIBRATION_FILE, QuantizeOptions, quantize_graphs

PART_FILES = {"pfn": "pfn.onnx", "mfn": "mfn.onnx", "rpn": "rpn.onnx", "full": "full.onnx"}


def as_model(model_or_state_dict: PointPillars | Mapping[str, torch.Tensor], cfg: PointPillarsConfig) -> PointPillars:
    """An eval-mode :class:`PointPillars` for ``cfg`` from a model or a native state dict."""
    if isinstance(model_or_state_dict, PointPillars):
        return model_or_state_dict.eval()
    model = build_model(cfg)
    try:
        model.load_state_dict(dict(model_or_state_dict), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"the state dict does not fit config {cfg.name!r}: {exc}") from exc
    return model.eval()


def check_graph(model: onnx.ModelProto, where: str) -> None:
    """``onnx.checker`` (full check) and strict shape inference; the declared output shapes must
    agree with the inferred ones. Raises :class:`ExportError`."""
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{where}: the exported graph fails the ONNX checks: {exc}") from exc
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for out in model.graph.output:
        got = _shape(known[out.name]) if out.name in known else None
        if got is not None and got != _shape(out):
            raise ExportError(f"{where}: output {out.name!r} is declared {_shape(out)} but inferred {got}")


def _shape(info: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]


def graph_op_types(model: onnx.ModelProto | str | Path) -> set[str]:
    """Every ``op_type`` in a graph (a model or a path)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    return {n.op_type for n in model.graph.node}


def parse_supported_operators(markdown: str | Path) -> frozenset[str]:
    """Operators marked supported (``Y``) in onnx-tensorrt's ``operators.md`` support matrix."""
    text = Path(markdown).read_text() if isinstance(markdown, Path) or "\n" not in str(markdown) else str(markdown)
    rows = re.findall(r"^\|\s*([A-Za-z0-9_]+)\s*\|\s*(Y|N)\s*\|", text, flags=re.MULTILINE)
    return frozenset(name for name, ok in rows if ok == "Y")


@dataclass(frozen=True)
class Int8Export:
    """An INT8 export: calibrated on ``frames`` with ``options`` (:mod:`.quantize`). ``ranges``: the
    ``calibration.json`` of an earlier export from the same frames and method, reused instead of
    calibrating again (another ``keep_float``; ``tools/int8_sensitivity.py``). ``threads``: ONNX
    Runtime threads of the calibration run (default: ONNX Runtime's, all cores)."""

    frames: CalibrationFrames
    options: QuantizeOptions = QuantizeOptions()
    ranges: Path | None = None
    threads: int | None = None


def check_ranges_activation_type(int8: Int8Export, checkpoint_path: str | Path | None) -> None:
    """ExportError when ``int8`` reuses ``ranges`` made for another activation type than its own:
    the graphs beside the ranges say theirs (an earlier export's ``calibration.json``), and a
    checkpoint of ``tools/qat.py`` says the type it was fine-tuned for (``qat_activation_type``,
    with the ranges it trained against). Symmetric int8 ranges in uint8 graphs gave 0 AP (2026-12-02)."""
    if int8.ranges is None:
        return
    wanted = str(int8.options.activation_type)
    made = None
    beside = Path(int8.ranges).parent / PART_FILES["rpn"]
    if beside.is_file():
        try:
            q = read_onnx_metadata(beside, verify=False).quantization
        except EngineError:  # a graph that is not one of ours: it says nothing about the ranges
            q = None
        made = None if q is None else (q.activation_type, f"the ranges of {beside}'s export")
    if made is None and checkpoint_path is not None and str(checkpoint_path).endswith(".safetensors"):
        from ..checkpoint import safetensors_metadata

        try:
            trained = safetensors_metadata(checkpoint_path).get("qat_activation_type")
        except CheckpointError as exc:
            raise ExportError(f"{checkpoint_path}: cannot read its metadata ({exc})") from exc
        made = None if trained is None else (trained, f"the ranges {checkpoint_path} was fine-tuned against")
    if made is not None and made[0] != wanted:
        raise ExportError(f"{int8.ranges}: {made[1]} are {made[0]}, but the export asks for {wanted} activations; "
                          f"export with activation type {made[0]} (export_onnx.py --activation-type {made[0]}), "
                          "or calibrate afresh (no ranges)")


def _int8_graphs(model: PointPillars, cfg: PointPillarsConfig, int8: Int8Export, out: Path, fused: bool):
    """``(graphs, quantization record)``: the Q/DQ graphs (``full`` only when ``fused``)."""
    graphs = build_graphs(model, cfg, "fp32", fused=True, deconv_as_conv=True)
    if int8.ranges is not None:
        if not Path(int8.ranges).is_file():
            raise ExportError(f"{int8.ranges}: calibration ranges not found")
        if Path(int8.ranges).resolve() != (out / CALIBRATION_FILE).resolve():
            shutil.copyfile(int8.ranges, out / CALIBRATION_FILE)
    graphs, record = quantize_graphs(graphs, cfg, int8.frames, int8.options, out, recalibrate=int8.ranges is None,
                                     threads=int8.threads)
    if not fused:
        del graphs["full"]
    return graphs, record


def export_onnx(
    model_or_state_dict: PointPillars | Mapping[str, torch.Tensor],
    cfg: PointPillarsConfig,
    out_dir: str | Path,
    *,
    fp16: bool = False,
    checkpoint_path: str | Path | None = None,
    fused: bool = False,
    fp16_policy: Fp16Policy | None = None,
    int8: Int8Export | None = None,
) -> dict[str, Path]:
    """Write ``pfn.onnx``, ``mfn.onnx``, ``rpn.onnx`` (and ``full.onnx`` when ``fused``) to ``out_dir``.

    ``model_or_state_dict``: a :class:`PointPillars` or a native state dict for ``cfg``.
    ``checkpoint_path``: the file the weights were read from; its SHA-256 goes into the metadata
    (otherwise the SHA-256 of the weight tensors, marked ``checkpoint_sha256_of = state_dict``).
    ``fp16``: float16 graphs for strongly typed TensorRT builds, with ``fp16_policy`` (default
    :data:`DEFAULT_FP16_POLICY`) saying which parts stay float32. Every graph is checked
    (:func:`check_graph`) before it is written; files are replaced atomically and get the
    umask's mode (:func:`~pointpillars_trt.io.atomic.atomic_write_bytes`: :class:`OutputError`
    naming the file when one cannot be written). The metadata (:class:`~pointpillars_trt.artifacts.ArtifactMetadata`) records the
    graph's own hash (``graph_sha256``), checked when it is loaded.
    ``int8``: explicitly quantized graphs (:mod:`.quantize`), calibrated on the given frames; the
    ranges stay in ``out_dir/calibration.json``, the frames and method in each graph's metadata.
    Returns ``{part: path}``.
    """
    if fp16 and int8 is not None:
        raise ExportError("choose fp16 or int8 graphs, not both")
    model = as_model(model_or_state_dict, cfg)
    precision = "int8" if int8 is not None else "fp16" if fp16 else "fp32"
    weights_hash = state_dict_sha256(model.state_dict())
    if checkpoint_path is not None:
        ckpt_hash, ckpt_of = file_sha256(checkpoint_path), "file"
    else:
        ckpt_hash, ckpt_of = weights_hash, "state_dict"
    if int8 is not None:
        check_ranges_activation_type(int8, checkpoint_path)
    out = check_writable(out_dir, directory=True)  # made; OutputError naming it when it cannot be (a file, read-only)
    quantization: Quantization | None = None
    if int8 is not None:
        graphs, quantization = _int8_graphs(model, cfg, int8, out, fused)
    else:
        graphs = build_graphs(model, cfg, precision, fp16_policy or DEFAULT_FP16_POLICY, fused=fused)
    paths: dict[str, Path] = {}
    for part, graph in graphs.items():
        path = out / PART_FILES[part]
        graph.producer_version = __version__
        check_graph(graph, str(path))
        meta = ArtifactMetadata(
            part=part, precision=precision, config_json=cfg.to_json(), config_hash=cfg.hash(), checkpoint_sha256=ckpt_hash,
            checkpoint_sha256_of=ckpt_of, weights_sha256=weights_hash, graph_sha256=graph_sha256(graph), version=__version__,
            quantization=quantization,
        )
        onnx.helper.set_model_props(graph, meta.to_props())
        atomic_write_bytes(path, graph.SerializeToString())
        paths[part] = path
    return paths
