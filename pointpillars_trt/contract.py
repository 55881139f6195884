"""The I/O contract between the ONNX graphs, the TensorRT engines and the backends (the one place it is written).

Three parts, each one ONNX graph and one engine, with tensors bound BY NAME:

====  ===============================================  ============================
part  inputs                                           outputs
====  ===============================================  ============================
pfn   ``features`` [P, M, 10], ``num_points`` [P] i32  ``pillar_features`` [P, C]
mfn   ``pillar_features`` [P, C], ``coords`` [P, 2]    ``canvas`` [1, C, ny, nx]
rpn   ``canvas`` [1, C, ny, nx]                        ``cls``, ``box``, ``dir``
====  ===============================================  ============================

``P`` is the dynamic axis ``num_pillars``. Float tensors are float32, or float16 in the FP16
graphs. A fourth graph, ``full``, chains the three: ``features``, ``num_points``, ``coords`` ->
``cls``, ``box``, ``dir`` (:data:`GRAPH_IO`). What each graph and engine says about itself (config,
weights, part, precision) is :class:`pointpillars_trt.artifacts.ArtifactMetadata`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import EngineError

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
#: every exported graph: the three parts and their fused chain ``full``
GRAPH_PARTS = (*PARTS, "full")
#: part -> (input names, output names), ``full`` included
GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **{p: (PART_INPUTS[p], PART_OUTPUTS[p]) for p in PARTS},
    "full": ((*PART_INPUTS["pfn"], "coords"), PART_OUTPUTS["rpn"]),
}
DYNAMIC_AXIS = "num_pillars"
#: precisions of exported graphs and engines (``int8``: explicit Q/DQ graphs, ``export_onnx.py --int8``)
PRECISIONS = ("fp32", "fp16", "int8")


def check_io_names(part: str, inputs: list[str] | tuple[str, ...], outputs: list[str] | tuple[str, ...], where: str) -> None:
    """Raise :class:`EngineError` unless ``inputs``/``outputs`` are exactly the contract's names
    for ``part`` (one of :data:`GRAPH_PARTS`; order ignored: tensors are bound by name)."""
    want_in, want_out = set(GRAPH_IO[part][0]), set(GRAPH_IO[part][1])
    problems = []
    if set(inputs) != want_in:
        problems.append(f"inputs {sorted(inputs)} (expected {sorted(want_in)})")
    if set(outputs) != want_out:
        problems.append(f"outputs {sorted(outputs)} (expected {sorted(want_out)})")
    if problems:
        raise EngineError(f"{where}: the {part} part has {' and '.join(problems)}; re-export the ONNX graphs with export/export_onnx.py")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (the identity of a checkpoint, graph or engine)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
