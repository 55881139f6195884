"""Our engine container: a TensorRT plan wrapped with the metadata needed to refuse a wrong one.

Layout (all integers little-endian)::

    b"PPTRTENG"            8 bytes magic
    uint32 header_length   bytes of the JSON header that follows
    header                 UTF-8 JSON (:class:`EngineHeader`)
    engine                 the serialized TensorRT engine (IHostMemory bytes), to the end of file

A plan from ``trtexec`` or another tool has no such header and is refused with a clear message:
TensorRT engines are specific to the TensorRT version and GPU that built them, and ours are
specific to a config, so these are checked before TensorRT ever sees the bytes.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import PointPillarsConfig, check_same_config
from ..errors import ConfigError, EngineError

MAGIC = b"PPTRTENG"
FORMAT_VERSION = 1
_LEN = struct.Struct("<I")
MAX_HEADER_BYTES = 16 << 20
MISMATCH_POLICIES = ("error", "warn")
REBUILD_HINT = "rebuild with export/build_engines.py"


@dataclass(frozen=True)
class EngineHeader:
    """Metadata of one engine. ``profile`` is ``{"min": P, "opt": P, "max": P}`` pillars (empty
    for an engine without dynamic inputs); ``io`` maps tensor name -> ``{"mode", "dtype", "shape"}``."""

    part: str
    precision: str
    config: str  # canonical config JSON
    config_hash: str
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    profile: dict[str, int] = field(default_factory=dict)
    io: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint_sha256: str = ""
    tf32: bool = True
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        d = asdict(self)
        d["compute_capability"] = list(self.compute_capability)
        return json.dumps(d, sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "<header>") -> "EngineHeader":
        known = set(cls.__dataclass_fields__)
        required = {"part", "precision", "config", "config_hash", "onnx_sha256", "tensorrt_version", "gpu_name", "compute_capability"}
        missing = sorted(required - set(d))
        if missing:
            raise EngineError(f"{where}: engine header lacks {missing}; {REBUILD_HINT}")
        try:
            kw = {k: v for k, v in d.items() if k in known}
            cc = d["compute_capability"]
            kw["compute_capability"] = (int(cc[0]), int(cc[1]))
            return cls(**kw)
        except (TypeError, ValueError, IndexError) as exc:
            raise EngineError(f"{where}: malformed engine header ({exc}); {REBUILD_HINT}") from exc

    @property
    def max_pillars(self) -> int | None:
        return self.profile.get("max")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def encode_engine_file(header: EngineHeader, engine: bytes) -> bytes:
    h = header.to_json().encode()
    return MAGIC + _LEN.pack(len(h)) + h + bytes(engine)


def write_engine_file(path: Path | str, header: EngineHeader, engine: bytes) -> Path:
    """Write atomically (temp file + rename) so a crashed build never leaves half an engine."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(encode_engine_file(header, engine))
    os.replace(tmp, path)
    return path


def _parse_prefix(prefix: bytes, where: str) -> int:
    if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
        raise EngineError(
            f"{where}: not a pointpillars_trt engine file (bad magic bytes); a raw TensorRT plan or another file "
            f"cannot be checked against the config: {REBUILD_HINT}"
        )
    if len(prefix) < len(MAGIC) + _LEN.size:
        raise EngineError(f"{where}: truncated engine file; {REBUILD_HINT}")
    (n,) = _LEN.unpack_from(prefix, len(MAGIC))
    if n > MAX_HEADER_BYTES:
        raise EngineError(f"{where}: engine header length {n} is implausible (corrupt file); {REBUILD_HINT}")
    return n


def decode_engine_file(data: bytes, where: str = "<bytes>") -> tuple[EngineHeader, bytes]:
    n = _parse_prefix(data[: len(MAGIC) + _LEN.size], where)
    start = len(MAGIC) + _LEN.size
    raw = data[start : start + n]
    if len(raw) != n:
        raise EngineError(f"{where}: truncated engine header; {REBUILD_HINT}")
    header = _parse_header(raw, where)
    engine = data[start + n :]
    if not engine:
        raise EngineError(f"{where}: the file holds a header but no engine; {REBUILD_HINT}")
    return header, engine


def _parse_header(raw: bytes, where: str) -> EngineHeader:
    try:
        d = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"{where}: engine header is not valid JSON ({exc}); {REBUILD_HINT}") from exc
    if not isinstance(d, dict):
        raise EngineError(f"{where}: engine header is not a JSON object; {REBUILD_HINT}")
    version = d.get("format_version")
    if version != FORMAT_VERSION:
        raise EngineError(f"{where}: engine file format {version}, this package reads format {FORMAT_VERSION}; {REBUILD_HINT}")
    return EngineHeader.from_dict(d, where)


def read_engine_file(path: Path | str) -> tuple[EngineHeader, bytes]:
    """``(header, serialized engine)`` of one of our engine files."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: engine file not found; build it with export/build_engines.py")
    return decode_engine_file(path.read_bytes(), str(path))


def read_engine_header(path: Path | str) -> EngineHeader:
    """Only the header (does not read the engine bytes)."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: engine file not found; build it with export/build_engines.py")
    with open(path, "rb") as f:
        n = _parse_prefix(f.read(len(MAGIC) + _LEN.size), str(path))
        raw = f.read(n)
    if len(raw) != n:
        raise EngineError(f"{path}: truncated engine header; {REBUILD_HINT}")
    return _parse_header(raw, str(path))


def same_tensorrt_version(a: str, b: str) -> bool:
    """Engines are tied to the TensorRT release: compare major.minor.patch, and the build number
    too when both strings carry one (``10.16.1.11`` vs ``10.16.1`` compare equal)."""
    pa, pb = a.strip().split("."), b.strip().split(".")
    n = min(len(pa), len(pb))
    if n < 3:
        return pa == pb
    return pa[:n] == pb[:n]


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
    """Check an engine's header against the running config, TensorRT and GPU.

    A different config (or part) always raises :class:`EngineError`, naming the differing
    fields. A different TensorRT version, compute capability or GPU name raises too with
    ``on_mismatch="error"``; with ``"warn"`` they are returned as messages (TensorRT then has the
    last word when it deserializes). Returns the list of warnings.
    """
    if on_mismatch not in MISMATCH_POLICIES:
        raise ConfigError(f"on_mismatch must be one of {MISMATCH_POLICIES}, got {on_mismatch!r}")
    if part is not None and header.part != part:
        raise EngineError(f"{where}: holds the {header.part} engine, expected {part}")
    try:
        check_same_config(cfg, header.config, f"{where} ({header.part} engine)")
    except ConfigError as exc:
        raise EngineError(f"{exc}; {REBUILD_HINT} from ONNX graphs exported with this config") from exc
    except ValueError as exc:  # JSON errors
        raise EngineError(f"{where}: the config in the engine header is unreadable ({exc}); {REBUILD_HINT}") from exc
    problems = []
    if not same_tensorrt_version(header.tensorrt_version, trt_version):
        problems.append(f"built with TensorRT {header.tensorrt_version}, this is {trt_version}: {REBUILD_HINT}")
    if tuple(header.compute_capability) != tuple(compute_capability):
        hc, cc = header.compute_capability, compute_capability
        problems.append(
            f"built for compute capability {hc[0]}.{hc[1]} ({header.gpu_name}), this GPU is {cc[0]}.{cc[1]} ({gpu_name}): {REBUILD_HINT} on this GPU"
        )
    elif header.gpu_name != gpu_name:
        problems.append(f"built on {header.gpu_name}, this GPU is {gpu_name}: {REBUILD_HINT} on this GPU")
    if problems and on_mismatch == "error":
        raise EngineError(f"{where} ({header.part} engine): " + "; ".join(problems))
    return [f"{where} ({header.part} engine): {p}" for p in problems]
