"""What every exported ONNX graph carries about itself, and the checks made when one is loaded.

Each graph's ``metadata_props`` hold (keys prefixed ``pointpillars_trt.``):

* ``config``: the model config, :meth:`PointPillarsConfig.to_json` (canonical JSON);
* ``config_hash``: :meth:`PointPillarsConfig.hash` of it;
* ``checkpoint_sha256`` and ``checkpoint_sha256_of``: SHA-256 of the checkpoint file's bytes
  (``file``) or, when the weights came from memory (random weights, a state dict given directly),
  of the weight tensors (``state_dict``, see :func:`state_dict_sha256`);
* ``weights_sha256``: :func:`state_dict_sha256` of the weights, always; it identifies the weights
  whatever file format they came in, so a backend can tell whether a graph holds given weights;
* ``part`` (``pfn``, ``mfn``, ``rpn`` or ``full``), ``precision`` (``fp32`` or ``fp16``),
  ``version`` (the package version) and ``format`` (this metadata layout, currently ``1``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..config import PointPillarsConfig, check_same_config
from ..contract import META_PREFIX, PRECISIONS, file_sha256  # noqa: F401  (file_sha256 re-exported)
from ..contract import PARTS as SPLIT_PARTS
from ..errors import ConfigError, EngineError

PREFIX = META_PREFIX
PARTS = (*SPLIT_PARTS, "full")
METADATA_FORMAT = "1"
_REQUIRED = ("config", "config_hash", "checkpoint_sha256", "checkpoint_sha256_of", "weights_sha256", "part", "precision", "version")


@dataclass(frozen=True)
class GraphMetadata:
    """The ``pointpillars_trt.*`` metadata of one ONNX graph (see the module docstring)."""

    path: Path
    config_json: str
    config_hash: str
    checkpoint_sha256: str
    checkpoint_sha256_of: str
    weights_sha256: str
    part: str
    precision: str
    version: str
    format: str = METADATA_FORMAT

    @property
    def config(self) -> PointPillarsConfig:
        """The config the graph was exported from."""
        try:
            return PointPillarsConfig.from_json(self.config_json)
        except (ValueError, ConfigError) as exc:
            raise EngineError(f"{self.path}: the config in the graph's metadata is unreadable: {exc}") from exc

    def to_props(self) -> dict[str, str]:
        """``metadata_props`` entries (full keys -> values)."""
        return {
            PREFIX + "config": self.config_json,
            PREFIX + "config_hash": self.config_hash,
            PREFIX + "checkpoint_sha256": self.checkpoint_sha256,
            PREFIX + "checkpoint_sha256_of": self.checkpoint_sha256_of,
            PREFIX + "weights_sha256": self.weights_sha256,
            PREFIX + "part": self.part,
            PREFIX + "precision": self.precision,
            PREFIX + "version": self.version,
            PREFIX + "format": self.format,
        }


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


def read_graph_metadata(path: str | Path) -> GraphMetadata:
    """Read the metadata of an exported graph without loading its weights.

    Raises :class:`EngineError` if the file is missing, not ONNX, or lacks the package's metadata.
    """
    import onnx

    p = Path(path)
    if not p.is_file():
        raise EngineError(f"{p}: ONNX graph not found")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others
        raise EngineError(f"{p}: not a readable ONNX file: {exc}") from exc
    props = {e.key[len(PREFIX):]: e.value for e in model.metadata_props if e.key.startswith(PREFIX)}
    missing = [k for k in _REQUIRED if k not in props]
    if missing:
        raise EngineError(
            f"{p}: lacks the pointpillars_trt metadata {missing}; export it with export/export_onnx.py"
        )
    if props["part"] not in PARTS or props["precision"] not in PRECISIONS:
        raise EngineError(f"{p}: unknown part {props['part']!r} or precision {props['precision']!r} in its metadata")
    return GraphMetadata(path=p, format=props.get("format", METADATA_FORMAT), **{k: props[k] for k in _REQUIRED if k != "config"}, config_json=props["config"])


def check_graph_config(meta: GraphMetadata, cfg: PointPillarsConfig) -> None:
    """Raise :class:`ConfigError` naming the differing fields if ``meta``'s graph was exported
    from another config than ``cfg``."""
    if meta.config_hash == cfg.hash():
        return
    check_same_config(cfg, meta.config_json, f"ONNX graph {meta.path}")


def check_graph_set(metas: Iterable[GraphMetadata]) -> None:
    """Raise :class:`EngineError` unless the graphs were exported together: the same config,
    weights and precision."""
    metas = list(metas)
    for field in ("config_hash", "weights_sha256", "precision"):
        values = {m.path.name: getattr(m, field) for m in metas}
        if len(set(values.values())) > 1:
            listing = ", ".join(f"{name}: {v[:16]}" for name, v in values.items())
            raise EngineError(f"ONNX graphs in {metas[0].path.parent} were not exported together: {field} differs ({listing})")


def check_graph_weights(meta: GraphMetadata, weights_sha256: str) -> None:
    """Raise :class:`EngineError` if the graph holds other weights than those hashed to ``weights_sha256``."""
    if meta.weights_sha256 != weights_sha256:
        raise EngineError(
            f"{meta.path} was exported from other weights (weights_sha256 {meta.weights_sha256[:16]}..., "
            f"given {weights_sha256[:16]}...); re-export it from this checkpoint or load the graphs without one"
        )
