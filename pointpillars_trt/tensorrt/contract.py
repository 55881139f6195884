"""The I/O contract between the ONNX graphs, the TensorRT engines and the backends.

Three parts, each one ONNX graph and one engine, with tensors bound BY NAME:

====  ===============================================  ============================
part  inputs                                           outputs
====  ===============================================  ============================
pfn   ``features`` [P, M, 10], ``num_points`` [P] i32  ``pillar_features`` [P, C]
mfn   ``pillar_features`` [P, C], ``coords`` [P, 2]    ``canvas`` [1, C, ny, nx]
rpn   ``canvas`` [1, C, ny, nx]                        ``cls``, ``box``, ``dir``
====  ===============================================  ============================

``P`` is the dynamic axis ``num_pillars``. Float tensors are float32, or float16 in the FP16
graphs. Each graph's ``metadata_props`` carry the keys in :data:`META_KEYS`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import PointPillarsConfig
from ..errors import BackendUnavailableError, EngineError

PARTS = ("pfn", "mfn", "rpn")
PART_INPUTS: dict[str, tuple[str, ...]] = {
    "pfn": ("features", "num_points"),
    "mfn": ("pillar_features", "coords"),
    "rpn": ("canvas",),
}
PART_OUTPUTS: dict[str, tuple[str, ...]] = {
    "pfn": ("pillar_features",),
    "mfn": ("canvas",),
    "rpn": ("cls", "box", "dir"),
}
DYNAMIC_AXIS = "num_pillars"
PRECISIONS = ("fp32", "fp16")

META_PREFIX = "pointpillars_trt."
META_CONFIG = META_PREFIX + "config"
META_CONFIG_HASH = META_PREFIX + "config_hash"
META_CHECKPOINT = META_PREFIX + "checkpoint_sha256"
META_PART = META_PREFIX + "part"
META_PRECISION = META_PREFIX + "precision"
META_KEYS = (META_CONFIG, META_CONFIG_HASH, META_CHECKPOINT, META_PART, META_PRECISION)


def check_io_names(part: str, inputs: list[str] | tuple[str, ...], outputs: list[str] | tuple[str, ...], where: str) -> None:
    """Raise :class:`EngineError` unless ``inputs``/``outputs`` are exactly the contract's names
    for ``part`` (order ignored: tensors are bound by name)."""
    want_in, want_out = set(PART_INPUTS[part]), set(PART_OUTPUTS[part])
    problems = []
    if set(inputs) != want_in:
        problems.append(f"inputs {sorted(inputs)} (expected {sorted(want_in)})")
    if set(outputs) != want_out:
        problems.append(f"outputs {sorted(outputs)} (expected {sorted(want_out)})")
    if problems:
        raise EngineError(f"{where}: the {part} part has {' and '.join(problems)}; re-export the ONNX graphs with export/export_onnx.py")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class OnnxGraphInfo:
    """What a build needs to know about one exported graph (read without its weights)."""

    path: Path
    part: str
    precision: str
    config: PointPillarsConfig
    config_json: str
    config_hash: str
    checkpoint_sha256: str
    sha256: str
    inputs: dict[str, tuple] = field(default_factory=dict)  # name -> shape, None for a named/dynamic dim
    outputs: dict[str, tuple] = field(default_factory=dict)


def read_onnx_info(path: Path | str, expected_part: str | None = None) -> OnnxGraphInfo:
    """Metadata and I/O names of an exported graph; :class:`EngineError` for a graph that is not
    ours (missing ``pointpillars_trt.*`` metadata) or names another part."""
    path = Path(path)
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailableError("reading ONNX graphs needs the onnx package: pip install onnx") from exc
    if not path.is_file():
        raise EngineError(f"{path}: ONNX graph not found; export it with export/export_onnx.py")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others
        raise EngineError(f"{path}: not a readable ONNX model ({exc})") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise EngineError(f"{path}: ONNX metadata lacks {missing}; it was not written by export/export_onnx.py")
    part, precision = meta[META_PART], meta[META_PRECISION]
    if part not in PARTS:
        raise EngineError(f"{path}: metadata names part {part!r}, not one of {PARTS}")
    if expected_part is not None and part != expected_part:
        raise EngineError(f"{path}: holds the {part} part, expected {expected_part}")
    if precision not in PRECISIONS:
        raise EngineError(f"{path}: metadata names precision {precision!r}, not one of {PRECISIONS}")
    try:
        cfg = PointPillarsConfig.from_json(meta[META_CONFIG])
    except Exception as exc:
        raise EngineError(f"{path}: the config in its metadata is invalid: {exc}") from exc
    initializers = {t.name for t in model.graph.initializer}

    def shapes(values) -> dict[str, tuple]:
        out = {}
        for v in values:
            if v.name in initializers:
                continue
            dims = v.type.tensor_type.shape.dim
            out[v.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        return out

    info = OnnxGraphInfo(
        path=path, part=part, precision=precision, config=cfg, config_json=meta[META_CONFIG],
        config_hash=meta[META_CONFIG_HASH], checkpoint_sha256=meta[META_CHECKPOINT], sha256=sha256_file(path),
        inputs=shapes(model.graph.input), outputs=shapes(model.graph.output),
    )
    check_io_names(part, list(info.inputs), list(info.outputs), str(path))
    return info
