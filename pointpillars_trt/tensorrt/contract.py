"""Reading exported ONNX graphs for an engine build; the tensor names and metadata keys they must
carry are :mod:`pointpillars_trt.contract`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import PointPillarsConfig
from ..contract import (  # noqa: F401  (re-exported for the engine builder and the backend)
    DYNAMIC_AXIS, META_CHECKPOINT, META_CONFIG, META_CONFIG_HASH, META_KEYS, META_PART, META_PRECISION, META_PREFIX,
    PART_INPUTS, PART_OUTPUTS, PARTS, PRECISIONS, check_io_names, file_sha256,
)
from ..errors import BackendUnavailableError, EngineError


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
        config_hash=meta[META_CONFIG_HASH], checkpoint_sha256=meta[META_CHECKPOINT], sha256=file_sha256(path),
        inputs=shapes(model.graph.input), outputs=shapes(model.graph.output),
    )
    check_io_names(part, list(info.inputs), list(info.outputs), str(path))
    return info
