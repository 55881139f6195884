"""Reading exported ONNX graphs for an engine build: the metadata (:mod:`pointpillars_trt.artifacts`,
the one reader) plus the file's hash and the I/O shapes; the tensor names they must carry are
:mod:`pointpillars_trt.contract`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import ArtifactMetadata, load_onnx, onnx_metadata
from ..contract import (  # noqa: F401  (re-exported for the engine builder and the backends)
    DYNAMIC_AXIS, GRAPH_IO, PART_INPUTS, PART_OUTPUTS, PARTS, PRECISIONS, check_io_names, file_sha256,
)


@dataclass(frozen=True)
class OnnxGraphInfo:
    """What a build needs to know about one exported graph: its checked metadata, the file's
    SHA-256, and input/output shapes (``None`` for a named or dynamic dimension)."""

    path: Path
    meta: ArtifactMetadata
    sha256: str
    inputs: dict[str, tuple] = field(default_factory=dict)
    outputs: dict[str, tuple] = field(default_factory=dict)


def read_onnx_info(path: Path | str, expected_part: str | None = None, verify: bool = True) -> OnnxGraphInfo:
    """Metadata (checked as :func:`~pointpillars_trt.artifacts.onnx_metadata` does) and I/O of an
    exported graph; :class:`~pointpillars_trt.errors.EngineError` for a graph that is not ours,
    names another part, or whose I/O names are not the contract's."""
    path = Path(path)
    model = load_onnx(path)
    meta = onnx_metadata(model, path, expected_part, verify)
    initializers = {t.name for t in model.graph.initializer}

    def shapes(values) -> dict[str, tuple]:
        return {v.name: tuple(d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim)
                for v in values if v.name not in initializers}

    info = OnnxGraphInfo(path=path, meta=meta, sha256=file_sha256(path), inputs=shapes(model.graph.input),
                         outputs=shapes(model.graph.output))
    check_io_names(meta.part, list(info.inputs), list(info.outputs), str(path))
    return info
