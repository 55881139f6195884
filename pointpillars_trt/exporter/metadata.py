"""The weights hash of a state dict, and the checks made when a set of exported graphs is loaded.

The metadata each graph carries is :class:`pointpillars_trt.artifacts.ArtifactMetadata` (one schema
for ONNX graphs and TensorRT plan sidecars); :func:`read_graph_metadata` is its one reader,
:func:`pointpillars_trt.artifacts.read_onnx_metadata`.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

import numpy as np

from ..artifacts import (  # noqa: F401  (re-exported: the exporter's public names)
    METADATA_FORMAT, PREFIX, ArtifactMetadata, check_artifact_config, check_same_artifacts, file_sha256, graph_sha256,
)
from ..artifacts import read_onnx_metadata as read_graph_metadata
from ..config import PointPillarsConfig
from ..errors import EngineError


def state_dict_sha256(state_dict: Mapping[str, object]) -> str:
    """Hex SHA-256 of a state dict's floating-point tensors, independent of the file they came from.

    Keys are taken in sorted order; each contributes its name, its shape and its values as
    little-endian float32. Integer entries (BatchNorm's ``num_batches_tracked``) are skipped, as
    they do not change the outputs and not every checkpoint format has them.
    """
    h = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key]
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if not np.issubdtype(arr.dtype, np.floating):
            continue
        arr = np.ascontiguousarray(arr, dtype="<f4")
        h.update(key.encode())
        h.update(repr(tuple(arr.shape)).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def check_graph_config(meta: ArtifactMetadata, cfg: PointPillarsConfig) -> None:
    """Raise :class:`ConfigError` naming the differing fields if ``meta``'s graph was exported
    from another config than ``cfg``."""
    check_artifact_config(meta, cfg)


def check_graph_set(metas: Iterable[ArtifactMetadata]) -> None:
    """Raise :class:`EngineError` unless the graphs were exported together: the same config,
    weights and precision."""
    check_same_artifacts(metas, ("config_hash", "weights_sha256", "precision"), "ONNX graphs")


def check_graph_weights(meta: ArtifactMetadata, weights_sha256: str) -> None:
    """Raise :class:`EngineError` if the graph holds other weights than those hashed to ``weights_sha256``."""
    if meta.weights_sha256 != weights_sha256:
        raise EngineError(
            f"{meta.where} was exported from other weights (weights_sha256 {meta.weights_sha256[:16]}..., "
            f"given {weights_sha256[:16]}...); re-export it from this checkpoint or load the graphs without one"
        )
