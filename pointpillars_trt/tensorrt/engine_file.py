"""TensorRT engine files: raw plans with a JSON sidecar, and the checks made before TensorRT sees one.

An engine is two files in the engine folder:

* ``<part>.plan``: exactly the bytes TensorRT serialized (``build_serialized_network``), from byte 0,
  so ``trtexec --loadEngine``, Polygraphy, Triton (``model.plan``) and DeepStream load it as is;
* ``<part>.plan.json``: its sidecar, :class:`EngineHeader` as JSON: the ONNX graph's
  :class:`~pointpillars_trt.artifacts.ArtifactMetadata` (config, checkpoint and weights hashes, part,
  precision), the ONNX file's and the plan's SHA-256, the TensorRT version, GPU name and compute
  capability, the pillar profile, the I/O tensors, the build flags and ``format``
  (:data:`SIDECAR_FORMAT`).

At load (:class:`~.runner.EngineRunner`): the plan's SHA-256 must be the sidecar's, the config the
running one, the TensorRT version and compute capability this machine's (:func:`check_engine_header`).
A plan without a sidecar (from ``trtexec --saveEngine``) loads with a warning when the user gives the
config. The container files of earlier versions (``*.engine``: magic ``PPTRTENG``, a JSON header,
then the plan) are refused with the command that rebuilds them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import ArtifactMetadata, check_format, file_sha256
from ..config import PointPillarsConfig, check_same_config
from ..errors import ConfigError, EngineError
from ..io.atomic import atomic_write_bytes

PLAN_SUFFIX = ".plan"
SIDECAR_SUFFIX = ".plan.json"
SIDECAR_FORMAT = 2
LEGACY_MAGIC = b"PPTRTENG"
MAX_SIDECAR_BYTES = 16 << 20
MISMATCH_POLICIES = ("error", "warn")
REBUILD_HINT = "rebuild with export/build_engines.py"
#: sidecar fields beyond the artifact metadata -> their JSON type
ENGINE_FIELDS: dict[str, type] = {
    "onnx_sha256": str, "plan_sha256": str, "tensorrt_version": str, "gpu_name": str, "compute_capability": list,
    "profile": dict, "io": dict, "tf32": bool, "hardware_compat": bool, "version_compatible": bool, "created": str,
}
#: hardware-compatible engines (``AMPERE_PLUS``) run on every GPU from this compute capability on
HARDWARE_COMPAT_MIN_CC = (8, 0)


@dataclass(frozen=True)
class EngineHeader:
    """The sidecar of one plan. ``profile`` is ``{"min": P, "opt": P, "max": P}`` pillars (empty for
    an engine without dynamic inputs); ``io`` maps tensor name -> ``{"mode", "dtype", "shape"}``.
    ``has_sidecar`` is False for a plan loaded without one (its fields then come from the config
    given, or are empty); it is not written."""

    artifact: ArtifactMetadata
    onnx_sha256: str
    plan_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    profile: dict[str, int] = field(default_factory=dict)
    io: dict[str, dict[str, Any]] = field(default_factory=dict)
    tf32: bool = True
    hardware_compat: bool = False
    version_compatible: bool = False
    created: str = ""
    has_sidecar: bool = True

    part = property(lambda self: self.artifact.part)
    precision = property(lambda self: self.artifact.precision)
    config = property(lambda self: self.artifact.config_json, doc="the canonical config JSON")
    config_hash = property(lambda self: self.artifact.config_hash)
    checkpoint_sha256 = property(lambda self: self.artifact.checkpoint_sha256)
    weights_sha256 = property(lambda self: self.artifact.weights_sha256)

    @property
    def max_pillars(self) -> int | None:
        return self.profile.get("max")

    def to_json(self) -> str:
        d = {**self.artifact.to_dict(), **{k: getattr(self, k) for k in ENGINE_FIELDS}, "format": SIDECAR_FORMAT}
        d["compute_capability"] = list(self.compute_capability)
        return json.dumps(d, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, where: str, path: Path | None = None) -> "EngineHeader":
        """Parse a sidecar; :class:`EngineError` naming ``where`` and the bad field."""
        try:
            d = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise EngineError(f"{where}: not valid JSON ({exc}); {REBUILD_HINT}") from exc
        if not isinstance(d, dict):
            raise EngineError(f"{where}: not a JSON object; {REBUILD_HINT}")
        check_format(d.get("format"), SIDECAR_FORMAT, where, "engine sidecar", REBUILD_HINT)
        artifact = ArtifactMetadata.from_dict(d, where, path)
        missing = sorted(set(ENGINE_FIELDS) - set(d))
        if missing:
            raise EngineError(f"{where}: lacks {missing}; {REBUILD_HINT}")
        for k, kind in ENGINE_FIELDS.items():
            if not isinstance(d[k], kind) or (kind is not bool and isinstance(d[k], bool)):
                raise EngineError(f"{where}: {k} is {d[k]!r}, expected a {kind.__name__}; {REBUILD_HINT}")
        cc = d["compute_capability"]
        if len(cc) != 2 or not all(isinstance(c, int) and not isinstance(c, bool) for c in cc):
            raise EngineError(f"{where}: compute_capability is {cc!r}, expected [major, minor]; {REBUILD_HINT}")
        prof = d["profile"]
        if prof and (set(prof) != {"min", "opt", "max"} or not all(isinstance(v, int) and v > 0 for v in prof.values())):
            raise EngineError(f"{where}: profile is {prof!r}, expected {{min, opt, max}} pillar counts; {REBUILD_HINT}")
        fields = {k: d[k] for k in ENGINE_FIELDS}
        return cls(artifact=artifact, **{**fields, "compute_capability": (cc[0], cc[1])})


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def sidecar_path(plan: Path) -> Path:
    """``pfn.plan`` -> ``pfn.plan.json``."""
    return plan.with_name(plan.name + ".json")


def legacy_error(path: Path) -> EngineError:
    return EngineError(
        f"{path}: an engine container of an earlier pointpillars_trt version (magic PPTRTENG, header, plan), which "
        f"TensorRT's own tools cannot load; this version reads raw plans with a sidecar (<part>.plan + <part>.plan.json). "
        f"Rebuild them: python export/build_engines.py --onnx-dir <the ONNX folder> --out-dir {path.parent}"
    )


def plan_path(engine_dir: Path, part: str) -> Path:
    """``engine_dir/<part>.plan``; :class:`EngineError` naming ``<part>.engine`` when only an old
    container is there, or saying how to build the plan."""
    plan = engine_dir / f"{part}{PLAN_SUFFIX}"
    if plan.is_file():
        return plan
    legacy = engine_dir / f"{part}.engine"
    if legacy.is_file():
        raise legacy_error(legacy)
    raise EngineError(f"{plan}: engine plan not found; build it with export/build_engines.py")


def has_plans(engine_dir: Path) -> bool:
    """Whether ``engine_dir`` holds a PFN plan (or an old ``pfn.engine`` container)."""
    return (engine_dir / f"pfn{PLAN_SUFFIX}").is_file() or (engine_dir / "pfn.engine").is_file()


def plans_without_sidecar(engine_dir: Path) -> bool:
    plan = engine_dir / f"pfn{PLAN_SUFFIX}"
    return plan.is_file() and not sidecar_path(plan).is_file()


def _check_not_legacy(path: Path, head: bytes) -> None:
    if path.suffix == ".engine" or head.startswith(LEGACY_MAGIC):
        raise legacy_error(path)


def read_sidecar(plan: Path) -> EngineHeader | None:
    """The checked sidecar of ``plan``, or None when it has none. :class:`EngineError` for a
    missing plan, an old container, or a malformed sidecar."""
    plan = Path(plan)
    if not plan.is_file():
        raise EngineError(f"{plan}: engine plan not found; build it with export/build_engines.py")
    with open(plan, "rb") as f:
        _check_not_legacy(plan, f.read(len(LEGACY_MAGIC)))
    side = sidecar_path(plan)
    if not side.is_file():
        return None
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise EngineError(f"{side}: {side.stat().st_size} bytes is implausible for a sidecar (corrupt file); {REBUILD_HINT}")
    return EngineHeader.from_json(side.read_bytes(), str(side), plan)


def plan_config_json(engine_dir: Path) -> str:
    """The config JSON of the PFN plan's sidecar; :class:`EngineError` when it has none."""
    plan = plan_path(engine_dir, "pfn")
    header = read_sidecar(plan)
    if header is None:
        raise EngineError(f"{plan} has no sidecar {sidecar_path(plan).name}, so the config it was built for is unknown: "
                          f"pass the config (config=...) to load it unchecked, or {REBUILD_HINT}")
    return header.config


def unverified_header(plan: Path, part: str, cfg: PointPillarsConfig) -> EngineHeader:
    """The stand-in header of a plan without a sidecar: the config given, nothing else known."""
    artifact = ArtifactMetadata(part=part, precision="", config_json=cfg.to_json(), config_hash=cfg.hash(),
                                checkpoint_sha256="", checkpoint_sha256_of="", weights_sha256="", graph_sha256="",
                                version="", path=plan)
    return EngineHeader(artifact=artifact, onnx_sha256="", plan_sha256="", tensorrt_version="", gpu_name="",
                        compute_capability=(0, 0), has_sidecar=False)


def write_plan(path: Path | str, header: EngineHeader, plan: bytes) -> EngineHeader:
    """Write ``plan`` (raw bytes) to ``path`` and its sidecar beside it, each atomically; the
    sidecar records the plan's SHA-256. Returns the header as written; :class:`OutputError`
    naming the file when one cannot be written."""
    path = Path(path)
    header = dataclasses.replace(header, plan_sha256=hashlib.sha256(plan).hexdigest())
    atomic_write_bytes(path, bytes(plan))
    atomic_write_bytes(sidecar_path(path), header.to_json().encode())
    return header


def read_plan(path: Path, header: EngineHeader) -> bytes:
    """The plan's bytes, checked against the sidecar's ``plan_sha256`` (when it has one)."""
    data = Path(path).read_bytes()
    _check_not_legacy(Path(path), data[: len(LEGACY_MAGIC)])
    if header.has_sidecar:
        check_plan_hash(path, header, hashlib.sha256(data).hexdigest())
    return data


def check_plan_hash(path: Path, header: EngineHeader, found: str | None = None) -> None:
    """Raise :class:`EngineError` if the plan is not the one its sidecar describes."""
    found = found or file_sha256(path)
    if found != header.plan_sha256:
        raise EngineError(f"{path}: SHA-256 {found[:16]}... is not the plan_sha256 {header.plan_sha256[:16]}... of its sidecar "
                          f"{sidecar_path(Path(path)).name}: the plan was replaced without its sidecar; {REBUILD_HINT}")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.strip().split(".") if p.isdigit())


def same_tensorrt_version(a: str, b: str) -> bool:
    """Engines are tied to the TensorRT release: compare major.minor.patch, and the build number
    too when both strings carry one (``10.16.1.11`` vs ``10.16.1`` compare equal)."""
    pa, pb = a.strip().split("."), b.strip().split(".")
    n = min(len(pa), len(pb))
    if n < 3:
        return pa == pb
    return pa[:n] == pb[:n]


def _version_problem(header: EngineHeader, trt_version: str) -> tuple[str | None, str | None]:
    """``(refusal, warning)`` for the TensorRT version: a version-compatible engine runs on a newer
    runtime of the same major version (with a warning)."""
    if same_tensorrt_version(header.tensorrt_version, trt_version):
        return None, None
    built, running = _version(header.tensorrt_version), _version(trt_version)
    if header.version_compatible and built[:1] == running[:1] and running >= built:
        return None, f"version-compatible engine built with TensorRT {header.tensorrt_version}, running on {trt_version}"
    return f"built with TensorRT {header.tensorrt_version}, this is {trt_version}: {REBUILD_HINT}", None


def _gpu_problem(header: EngineHeader, gpu_name: str, cc: tuple[int, int]) -> tuple[str | None, str | None]:
    """``(refusal, warning)`` for the GPU: another compute capability is refused (unless the engine
    is hardware-compatible and both are Ampere or newer); another name with the same compute
    capability is only a warning (TensorRT itself only warns there, and fleets mix SKUs)."""
    hc = tuple(header.compute_capability)
    if hc != tuple(cc):
        if header.hardware_compat and min(hc, tuple(cc)) >= HARDWARE_COMPAT_MIN_CC:
            return None, f"hardware-compatible engine built for compute capability {hc[0]}.{hc[1]}, running on {cc[0]}.{cc[1]} ({gpu_name})"
        return (f"built for compute capability {hc[0]}.{hc[1]} ({header.gpu_name}), this GPU is {cc[0]}.{cc[1]} ({gpu_name}): "
                f"{REBUILD_HINT} on this GPU"), None
    if header.gpu_name != gpu_name:
        return None, f"built on {header.gpu_name}, this GPU is {gpu_name} (same compute capability {cc[0]}.{cc[1]}); TensorRT may pick slower kernels"
    return None, None


def check_engine_header(
    header: EngineHeader,
    cfg: PointPillarsConfig,
    trt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
    *,
    part: str | None = None,
    where: str = "<engine>",
    on_mismatch: str = "error",
) -> list[str]:
    """Check a plan's sidecar against the running config, TensorRT and GPU; returns warnings.

    A different config (or part) always raises :class:`EngineError`, naming the differing fields.
    A different TensorRT version or compute capability raises too with ``on_mismatch="error"``;
    with ``"warn"`` it is returned as a warning (TensorRT then has the last word when it
    deserializes). Always only warnings: another GPU name with the same compute capability, a
    version-compatible or hardware-compatible engine within its range, and a plan without a sidecar.
    """
    if on_mismatch not in MISMATCH_POLICIES:
        raise ConfigError(f"on_mismatch must be one of {MISMATCH_POLICIES}, got {on_mismatch!r}")
    if not header.has_sidecar:
        return [f"{where}: no sidecar {sidecar_path(Path(where)).name}; loaded unchecked with the config given "
                f"({cfg.name}, {cfg.hash()}): the config, checkpoint, TensorRT version and GPU it was built for are unknown"]
    if part is not None and header.part != part:
        raise EngineError(f"{where}: holds the {header.part} engine, expected {part}")
    try:
        check_same_config(cfg, header.config, f"{where} ({header.part} engine)")
    except ConfigError as exc:
        raise EngineError(f"{exc}; {REBUILD_HINT} from ONNX graphs exported with this config") from exc
    problems = (_version_problem(header, trt_version), _gpu_problem(header, gpu_name, compute_capability))
    refusals, warnings = [r for r, _ in problems if r], [w for _, w in problems if w]
    if refusals and on_mismatch == "error":
        raise EngineError(f"{where} ({header.part} engine): " + "; ".join(refusals))
    return [f"{where} ({header.part} engine): {m}" for m in refusals + warnings]
