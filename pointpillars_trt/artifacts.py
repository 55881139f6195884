"""What every artifact (exported ONNX graph, TensorRT plan) says about itself: one schema, one reader.

:class:`ArtifactMetadata` is written into each ONNX graph's ``metadata_props`` (keys prefixed
``pointpillars_trt.``, every value a string) and, copied from the graph, into each TensorRT
plan's ``<name>.plan.json`` sidecar (the same names, the config as a JSON object):

* ``config``: the model config, :meth:`PointPillarsConfig.to_json` (canonical JSON);
* ``config_hash``: :meth:`PointPillarsConfig.hash` of it (checked against the config at load);
* ``checkpoint_sha256`` / ``checkpoint_sha256_of``: SHA-256 of the checkpoint file (``file``) or,
  for weights that came from memory, of the weight tensors (``state_dict``);
* ``weights_sha256``: ``state_dict_sha256`` of the weights, whatever format they came in;
* ``graph_sha256``: SHA-256 of the exported graph (nodes and weights) without its metadata,
  checked at load, so an edited weight is found (:func:`graph_sha256`);
* ``part`` (:data:`~pointpillars_trt.contract.GRAPH_PARTS`), ``precision`` (``fp32``/``fp16``/``int8``),
  ``version`` (the package version), and in ONNX ``format`` (:data:`METADATA_FORMAT`);
* ``quantization`` (INT8 graphs only, and required there): :class:`Quantization`, how the Q/DQ
  graph was calibrated (method, frames, layers kept in float), as a JSON object.

:func:`read_onnx_metadata` is the one reader of ONNX graphs; ``verify=False`` skips the two hash
checks (the config and the graph), nothing else. :func:`artifact_config_json` says which config
the artifacts in a folder carry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .config import PointPillarsConfig, check_same_config, load_config
from .contract import GRAPH_PARTS, PRECISIONS, file_sha256
from .errors import BackendUnavailableError, ConfigError, EngineError

if TYPE_CHECKING:
    import onnx

PREFIX = "pointpillars_trt."
METADATA_FORMAT = "2"
EXPORT_HINT = "re-export it with export/export_onnx.py"
#: the string fields of the schema, in the order they are written
STRING_FIELDS = ("part", "precision", "config_hash", "checkpoint_sha256", "checkpoint_sha256_of", "weights_sha256",
                 "graph_sha256", "version")


def check_format(found: Any, expected: str | int, where: str, what: str, hint: str) -> None:
    """Raise :class:`EngineError` unless ``found`` is format ``expected`` (``"2"`` and ``2`` are the
    same format); both are shown with their types so that the message is never "1 vs 1"."""
    if str(found) != str(expected):
        raise EngineError(f"{where}: {what} format {found!r}, this package reads format {expected!r}; {hint}")


@dataclass(frozen=True)
class Quantization:
    """How an INT8 (explicit Q/DQ) graph was made: int8 symmetric weights per output channel and
    activations per tensor of ``activation_type`` (``int8``: symmetric, zero points 0, as TensorRT
    requires; ``uint8``: asymmetric, ONNX Runtime only), calibrated by ``method`` (``minmax``,
    ``percentile`` at ``percentile``, ``entropy``; ``histogram_bins`` of their histogram, None for
    minmax) on ``frames`` (names of the calibration frames) from ``calibration`` (where they came
    from); ``keep_float``: the nodes left in float; ``tool``: the quantizer and its version.
    Graphs written before ``activation_type`` / ``histogram_bins`` existed read as int8 / None."""

    method: str
    percentile: float | None
    calibration: str
    frames: tuple[str, ...]
    keep_float: tuple[str, ...]
    tool: str
    activation_type: str = "int8"
    histogram_bins: int | None = None

    def to_json(self) -> str:
        d = {**dataclasses.asdict(self), "frames": list(self.frames), "keep_float": list(self.keep_float)}
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_value(cls, value: Any, where: str) -> "Quantization":
        """From the JSON object (or its text); :class:`EngineError` naming ``where`` and the field."""
        try:
            d = json.loads(value) if isinstance(value, str) else value
            names = {f.name for f in dataclasses.fields(cls)}
            if not isinstance(d, dict) or not names - {"activation_type", "histogram_bins"} <= set(d) <= names:
                raise ValueError(f"expected the fields {sorted(names)}")
            bins = d.get("histogram_bins")
            q = cls(method=str(d["method"]), percentile=None if d["percentile"] is None else float(d["percentile"]),
                    calibration=str(d["calibration"]), frames=tuple(map(str, d["frames"])),
                    keep_float=tuple(map(str, d["keep_float"])), tool=str(d["tool"]),
                    activation_type=str(d.get("activation_type", "int8")), histogram_bins=None if bins is None else int(bins))
            if q.activation_type not in ("int8", "uint8"):
                raise ValueError(f"activation_type must be int8 or uint8, got {q.activation_type!r}")
        except (ValueError, TypeError, RecursionError) as exc:
            raise EngineError(f"{where}: pointpillars_trt.quantization in its metadata is invalid ({exc}); {EXPORT_HINT}") from exc
        if not q.frames:
            raise EngineError(f"{where}: its quantization metadata names no calibration frames; {EXPORT_HINT}")
        return q


@dataclass(frozen=True)
class ArtifactMetadata:
    """The ``pointpillars_trt.*`` metadata of one graph or plan (see the module docstring).
    ``path`` is where it was read from (not part of the schema, not compared)."""

    part: str
    precision: str
    config_json: str
    config_hash: str
    checkpoint_sha256: str
    checkpoint_sha256_of: str
    weights_sha256: str
    graph_sha256: str
    version: str
    quantization: Quantization | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else "<metadata>"

    @cached_property
    def config(self) -> PointPillarsConfig:
        """The config the artifact was made from; :class:`EngineError` naming the file if invalid."""
        try:
            return PointPillarsConfig.from_json(self.config_json)
        except (ValueError, TypeError, ConfigError, RecursionError) as exc:
            raise EngineError(f"{self.where}: the config in its metadata is invalid: {exc}") from exc

    def verify(self) -> None:
        """Raise :class:`EngineError` if the embedded config does not hash to ``config_hash``
        (the config was edited after export)."""
        found = self.config.hash()
        if found != self.config_hash:
            raise EngineError(
                f"{self.where}: the embedded config hashes to {found}, not to the recorded config_hash {self.config_hash}: "
                f"the config in its metadata was edited after export; {EXPORT_HINT} (or load it with verify=False)"
            )

    def to_props(self) -> dict[str, str]:
        """``metadata_props`` entries (full keys -> string values), ``format`` included."""
        props = {PREFIX + "config": self.config_json, **{PREFIX + k: getattr(self, k) for k in STRING_FIELDS}}
        if self.quantization is not None:
            props[PREFIX + "quantization"] = self.quantization.to_json()
        return {**props, PREFIX + "format": METADATA_FORMAT}

    def to_dict(self) -> dict[str, Any]:
        """The sidecar form: the string fields, ``config`` (and ``quantization``) as JSON objects."""
        d = {"config": json.loads(self.config_json), **{k: getattr(self, k) for k in STRING_FIELDS}}
        if self.quantization is not None:
            d["quantization"] = json.loads(self.quantization.to_json())
        return d

    @classmethod
    def from_props(cls, props: Mapping[str, str], path: Path | None = None) -> "ArtifactMetadata":
        """From ONNX ``metadata_props`` (full keys); :class:`EngineError` naming the file for a
        graph that is not ours, of another metadata format, or whose config is not JSON."""
        where = str(path) if path is not None else "<metadata>"
        own = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if not own:
            raise EngineError(f"{where}: lacks the pointpillars_trt metadata; it was not written by export/export_onnx.py")
        check_format(own.get("format"), METADATA_FORMAT, where, "pointpillars_trt metadata", EXPORT_HINT)
        if "config" not in own:
            raise EngineError(f"{where}: its metadata lacks pointpillars_trt.config; {EXPORT_HINT}")
        try:
            config = json.loads(own["config"])
        except (ValueError, RecursionError) as exc:
            raise EngineError(f"{where}: pointpillars_trt.config in its metadata is not JSON ({exc}); {EXPORT_HINT}") from exc
        return cls._build({**own, "config": config}, where, path, PREFIX)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str, path: Path | None = None) -> "ArtifactMetadata":
        """From the sidecar form (:meth:`to_dict`); :class:`EngineError` naming ``where`` and the field."""
        return cls._build(d, where, path, "")

    @classmethod
    def _build(cls, values: Mapping[str, Any], where: str, path: Path | None, prefix: str) -> "ArtifactMetadata":
        missing = [prefix + k for k in ("config", *STRING_FIELDS) if k not in values]
        if missing:
            raise EngineError(f"{where}: its metadata lacks {missing}; {EXPORT_HINT}")
        for k in STRING_FIELDS:
            if not isinstance(values[k], str):
                raise EngineError(f"{where}: {prefix}{k} is {values[k]!r}, expected a string")
        if not isinstance(values["config"], dict):
            raise EngineError(f"{where}: {prefix}config is {values['config']!r}, expected the config as a JSON object")
        if values["part"] not in GRAPH_PARTS or values["precision"] not in PRECISIONS:
            raise EngineError(f"{where}: unknown part {values['part']!r} or precision {values['precision']!r} in its metadata")
        config_json = json.dumps(values["config"], sort_keys=True, separators=(",", ":"))
        quantization = _quantization(values, where, prefix)
        meta = cls(config_json=config_json, quantization=quantization, path=path, **{k: values[k] for k in STRING_FIELDS})
        meta.config  # noqa: B018  (parse now: an invalid config is reported at read time, naming the file)
        return meta


def _quantization(values: Mapping[str, Any], where: str, prefix: str) -> Quantization | None:
    """The ``quantization`` field: required for ``int8`` artifacts, refused for float ones."""
    int8 = values["precision"] == "int8"
    if "quantization" not in values:
        if int8:
            raise EngineError(f"{where}: says precision int8 but its metadata lacks {prefix}quantization; {EXPORT_HINT} --int8")
        return None
    if not int8:
        raise EngineError(f"{where}: a {values['precision']} artifact with {prefix}quantization in its metadata; {EXPORT_HINT}")
    return Quantization.from_value(values["quantization"], where)


#: op types of an explicitly quantized graph; an ``int8`` graph of a part with weights must hold both
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
#: the layers that get Q/DQ on their inputs and weights
WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul")


def check_qdq_nodes(model: "onnx.ModelProto", meta: ArtifactMetadata) -> None:
    """Raise :class:`EngineError` if ``meta`` says int8 but the graph holds no Q/DQ nodes while it
    has Conv/MatMul layers not kept in float (the MFN has none), or says float but holds Q/DQ nodes."""
    ops = {n.op_type for n in model.graph.node}
    weighted = {n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS}
    has_qdq = QDQ_OPS <= ops
    if meta.precision == "int8" and not has_qdq and not weighted <= set(meta.quantization.keep_float):
        raise EngineError(f"{meta.where}: its metadata says int8 but the graph holds no QuantizeLinear/DequantizeLinear nodes; {EXPORT_HINT} --int8")
    if meta.precision != "int8" and ops & QDQ_OPS:
        raise EngineError(f"{meta.where}: holds QuantizeLinear/DequantizeLinear nodes but its metadata says {meta.precision}; {EXPORT_HINT}")


# ---- ONNX graphs ----------------------------------------------------------------------------------
def load_onnx(path: str | Path) -> "onnx.ModelProto":
    """An ONNX model (weights included); :class:`EngineError` if missing or unreadable."""
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailableError("reading ONNX graphs needs the onnx package: pip install onnx") from exc
    p = Path(path)
    if not p.is_file():
        raise EngineError(f"{p}: ONNX graph not found; export it with export/export_onnx.py")
    try:
        return onnx.load(str(p))
    except Exception as exc:  # onnx raises DecodeError and others
        raise EngineError(f"{p}: not a readable ONNX model ({exc})") from exc


def graph_sha256(model: "onnx.ModelProto") -> str:
    """Hex SHA-256 of ``model`` serialized without its ``metadata_props`` (nodes, weights, I/O)."""
    bare = type(model)()
    bare.CopyFrom(model)
    del bare.metadata_props[:]
    return hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()


def onnx_metadata(model: "onnx.ModelProto", path: Path, expected_part: str | None = None, verify: bool = True) -> ArtifactMetadata:
    """The metadata of a loaded graph, checked: the part (``expected_part``), and with ``verify``
    the config against ``config_hash`` and the graph against ``graph_sha256``."""
    meta = ArtifactMetadata.from_props({p.key: p.value for p in model.metadata_props}, path)
    if expected_part is not None and meta.part != expected_part:
        raise EngineError(f"{path}: holds the {meta.part} part, expected {expected_part}")
    check_qdq_nodes(model, meta)
    if verify:
        meta.verify()
        found = graph_sha256(model)
        if found != meta.graph_sha256:
            raise EngineError(
                f"{path}: the graph hashes to {found[:16]}..., not to the recorded graph_sha256 {meta.graph_sha256[:16]}...: "
                f"its weights or nodes were edited after export; {EXPORT_HINT} (or load it with verify=False)"
            )
    return meta


def read_onnx_metadata(path: str | Path, expected_part: str | None = None, verify: bool = True) -> ArtifactMetadata:
    """The checked metadata of the exported graph at ``path`` (see :func:`onnx_metadata`)."""
    p = Path(path)
    return onnx_metadata(load_onnx(p), p, expected_part, verify)


# ---- sets of artifacts ----------------------------------------------------------------------------
def check_same_artifacts(metas: Iterable[ArtifactMetadata], fields: Sequence[str] = ("config_hash", "weights_sha256", "precision"),
                         what: str = "artifacts") -> None:
    """Raise :class:`EngineError` unless every artifact has the same value of each of ``fields``
    (made together: one config, one set of weights, one precision), naming the field and files."""
    metas = list(metas)
    for name in fields:
        values = {m.where: getattr(m, name) for m in metas}
        if len(set(values.values())) > 1:
            listing = ", ".join(f"{Path(w).name}: {v[:16]}" for w, v in values.items())
            folder = Path(metas[0].where).parent
            raise EngineError(f"{what} in {folder} were not exported together: {name} differs ({listing}); re-export (and rebuild) them together")


def check_artifact_config(meta: ArtifactMetadata, cfg: PointPillarsConfig) -> None:
    """Raise :class:`ConfigError` naming the differing fields if ``meta`` is of another config."""
    if meta.config_hash == cfg.hash():
        return
    check_same_config(cfg, meta.config_json, meta.where)


def onnx_config_json(engine_dir: Path, verify: bool = True) -> str:
    """The config JSON of the ONNX graphs in ``engine_dir`` (``pfn.onnx``, else ``full.onnx``)."""
    for name in ("pfn.onnx", "full.onnx"):
        if (engine_dir / name).is_file():
            return read_onnx_metadata(engine_dir / name, verify=verify).config_json
    raise EngineError(f"{engine_dir}: no pfn.onnx or full.onnx; export them with export/export_onnx.py")


def artifact_config_json(engine_dir: str | Path, verify: bool = True) -> str:
    """The config JSON the artifacts in ``engine_dir`` carry: the TensorRT plans' sidecars when
    there are plans (or old ``*.engine`` containers, which are then reported as such), else the
    ONNX graphs. :class:`EngineError` naming the file otherwise (a plan without its sidecar: pass
    the config, see :func:`artifact_config`)."""
    from .tensorrt.engine_file import has_plans, plan_config_json

    d = Path(engine_dir)
    if has_plans(d):
        return plan_config_json(d)
    if any((d / f"{p}.onnx").is_file() for p in GRAPH_PARTS):
        return onnx_config_json(d, verify)
    raise EngineError(f"{d}: no pfn.plan, pfn.onnx or full.onnx (make them with export/export_onnx.py and export/build_engines.py)")


def artifact_config(engine_dir: str | Path, config: PointPillarsConfig | str | Path | None = None,
                    verify: bool = True) -> PointPillarsConfig:
    """The config of the artifacts in ``engine_dir``; a ``config`` given as well must be the same
    (:class:`ConfigError` naming the fields). Raw plans without a sidecar need ``config`` (they
    then load with a warning, from :class:`~pointpillars_trt.tensorrt.runner.EngineRunner`)."""
    from .tensorrt.engine_file import plans_without_sidecar

    given = load_config(config) if isinstance(config, (str, Path)) else config
    if given is not None and plans_without_sidecar(Path(engine_dir)):
        return given
    carried = artifact_config_json(engine_dir, verify)
    if given is not None:
        check_same_config(given, carried, str(engine_dir))
        return given
    return PointPillarsConfig.from_json(carried)


__all__ = [
    "ArtifactMetadata", "METADATA_FORMAT", "PREFIX", "QDQ_OPS", "Quantization", "WEIGHTED_OPS", "artifact_config", "artifact_config_json",
    "check_artifact_config", "check_format", "check_qdq_nodes", "check_same_artifacts", "file_sha256", "graph_sha256", "load_onnx",
    "onnx_config_json", "onnx_metadata", "read_onnx_metadata",
]
