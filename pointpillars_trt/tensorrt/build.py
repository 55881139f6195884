"""Build TensorRT engines (raw plans with sidecars) from the exported ONNX graphs.

The pure parts (profile ranges and shapes, which parts to build, sidecar assembly, the timing cache
fallback) are plain functions tested on the CPU; :func:`build_engine` chains the thin TensorRT
steps of :mod:`.api`: ``create_network -> parse_onnx -> configure -> attach_timing_cache ->
add_pillar_profile -> build_serialized``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..artifacts import check_same_artifacts
from ..config import PointPillarsConfig
from ..errors import ConfigError, EngineError
from ..io.atomic import atomic_write_bytes
from .contract import PART_INPUTS, PARTS, OnnxGraphInfo, check_io_names, read_onnx_info
from .engine_file import PLAN_SUFFIX, EngineHeader, now_iso, write_plan

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MIB = 2048


class TimingCacheWarning(UserWarning):
    """TensorRT refused the timing cache file (another GPU or TensorRT version); the build started an empty one."""


@dataclass(frozen=True)
class PillarProfile:
    min: int
    opt: int
    max: int

    def as_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}


def pillar_profile(cfg: PointPillarsConfig, min_pillars: int | None = None, opt_pillars: int | None = None, max_pillars: int | None = None) -> PillarProfile:
    """The ``num_pillars`` profile: ``min`` 1, ``max`` the config's ``voxel.max_pillars``, ``opt``
    ``max`` unless given: the GPU pipeline always runs the PFN on ``max_pillars`` rows, so TensorRT
    tunes its kernels for that shape."""
    hi = int(max_pillars) if max_pillars is not None else cfg.voxel.max_pillars
    lo = int(min_pillars) if min_pillars is not None else 1
    opt = int(opt_pillars) if opt_pillars is not None else hi
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"pillar profile needs 1 <= min <= opt <= max, got min {lo}, opt {opt}, max {hi}")
    return PillarProfile(lo, opt, hi)


def profile_shapes(shape: Sequence[int], profile: PillarProfile) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes of an input whose dynamic axes (-1) are the pillar count."""
    return tuple(tuple(p if d == -1 else int(d) for d in shape) for p in (profile.min, profile.opt, profile.max))  # type: ignore[return-value]


def parts_to_build(native_scatter: bool) -> tuple[str, ...]:
    """PFN and RPN always; the MFN (ONNX ScatterND) only for the native-scatter comparison."""
    return PARTS if native_scatter else tuple(p for p in PARTS if p != "mfn")


@dataclass(frozen=True)
class BuildOptions:
    precision: str | None = None  # None: whatever the graphs in the ONNX directory are
    min_pillars: int | None = None
    opt_pillars: int | None = None
    max_pillars: int | None = None
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    timing_cache: Path | None = None
    tf32: bool = True
    hardware_compat: bool = False  # AMPERE_PLUS: runs on every GPU from compute capability 8.0 on
    version_compatible: bool = False  # runs on later TensorRT runtimes of the same major version
    log_severity: str = "warning"


def onnx_file_for(onnx_dir: Path, part: str, precision: str | None) -> Path:
    """``<part>.onnx``; with ``precision="fp16"`` also accepts ``<part>_fp16.onnx`` or ``fp16/<part>.onnx``."""
    candidates = [onnx_dir / f"{part}.onnx"]
    if precision:
        candidates = [onnx_dir / f"{part}_{precision}.onnx", onnx_dir / precision / f"{part}.onnx"] + candidates
    for c in candidates:
        if c.is_file():
            return c
    raise EngineError(f"{onnx_dir}: no ONNX graph for the {part} part (looked for {[c.name for c in candidates]}); export it with export/export_onnx.py")


#: what the graphs of one build must share
SAME_FIELDS = ("config_hash", "checkpoint_sha256", "weights_sha256", "precision")


def check_graphs_consistent(infos: Sequence[OnnxGraphInfo], precision: str | None) -> None:
    """All graphs from one config and checkpoint, of one precision, the requested one if given.
    INT8 graphs (explicit Q/DQ, ``export_onnx.py --int8 --activation-type int8``) build like the others: the network is
    strongly typed, so the Q/DQ nodes set the int8 layers and no precision flag is set (TensorRT
    refuses ``BuilderFlag.INT8`` in strongly typed networks; TensorRT 11 has no implicit INT8)."""
    for info in infos:
        q = info.meta.quantization
        if q is not None and q.activation_type != "int8":
            raise EngineError(f"{info.path}: its activations are {q.activation_type} (asymmetric, for ONNX Runtime's CPU); "
                              "TensorRT's explicit quantization takes only symmetric int8: export with --activation-type int8")
        if precision is not None and info.meta.precision != precision:
            flag = {"fp16": " --fp16", "int8": " --int8 --activation-type int8 --calib DIR"}.get(precision, "")
            raise EngineError(
                f"{info.path} is a {info.meta.precision} graph but --precision {precision} was asked; export the {precision} graphs "
                f"(export/export_onnx.py{flag}) into their own directory"
            )
    check_same_artifacts([i.meta for i in infos], SAME_FIELDS, "the ONNX graphs")


def load_timing_cache(path: Path | None) -> bytes:
    if path is None or not path.is_file():
        return b""
    return path.read_bytes()


def save_timing_cache(path: Path | None, data: bytes) -> None:
    if path is None or not data:
        return
    atomic_write_bytes(path, data)


def attach_timing_cache(config: Any, options: BuildOptions, attach: Any) -> Any:
    """Attach the timing cache file of ``options`` with ``attach`` (:func:`.api.attach_timing_cache`);
    when TensorRT refuses it (another GPU or version), warn (:class:`TimingCacheWarning`) and start
    an empty cache. :class:`EngineError` if even an empty cache is refused."""
    data = load_timing_cache(options.timing_cache)
    cache = attach(config, data)
    if cache is None and data:
        warnings.warn(f"{options.timing_cache}: TensorRT refused this timing cache (made on another GPU or TensorRT version); "
                      "starting an empty one, which replaces the file after the build", TimingCacheWarning, stacklevel=2)
        cache = attach(config, b"")
    if cache is None:
        raise EngineError("TensorRT refused an empty timing cache (see the TensorRT log)")
    return cache


def engine_header(info: OnnxGraphInfo, options: BuildOptions, specs: Sequence[Any], profile: dict[str, int],
                  tensorrt_version: str, gpu_name: str, compute_capability: tuple[int, int]) -> EngineHeader:
    """The sidecar of the plan built from ``info`` (``plan_sha256`` is filled in by :func:`write_plan`)."""
    return EngineHeader(
        artifact=info.meta, onnx_sha256=info.sha256, plan_sha256="", tensorrt_version=tensorrt_version, gpu_name=gpu_name,
        compute_capability=(int(compute_capability[0]), int(compute_capability[1])), profile=profile,
        io={s.name: {"mode": "input" if s.is_input else "output", "dtype": s.dtype, "shape": list(s.shape)} for s in specs},
        tf32=options.tf32, hardware_compat=options.hardware_compat, version_compatible=options.version_compatible,
        created=now_iso(),
    )


def build_engine(info: OnnxGraphInfo, out_path: Path, options: BuildOptions, gpu_name: str, compute_capability: tuple[int, int]) -> EngineHeader:
    """Build one engine from ``info.path``; write the raw plan to ``out_path`` and its sidecar beside it."""
    from . import api

    what = f"{info.path.name} -> {out_path.name}"
    logger = api.process_logger(options.log_severity)
    builder = api.create_builder(logger)
    network = api.create_network(builder)
    parser = api.parse_onnx(network, logger, info.path)
    specs = api.network_io(network)
    check_io_names(info.meta.part, [s.name for s in specs if s.is_input], [s.name for s in specs if not s.is_input], str(info.path))
    profile = pillar_profile(info.meta.config, options.min_pillars, options.opt_pillars, options.max_pillars)
    shapes = {s.name: profile_shapes(s.shape, profile) for s in specs if s.is_input and -1 in s.shape}
    part = info.meta.part
    if part in ("pfn", "mfn") and set(shapes) != set(PART_INPUTS[part]):
        raise EngineError(f"{info.path}: inputs {sorted(PART_INPUTS[part])} should have the dynamic axis num_pillars; found it on {sorted(shapes)}")
    config = api.configure(builder, options.workspace_mib, options.tf32, options.hardware_compat, options.version_compatible)
    cache = attach_timing_cache(config, options, api.attach_timing_cache)
    api.add_pillar_profile(builder, config, shapes, what)
    log.info("building %s (%s, profile %s)", what, info.meta.precision, profile.as_dict() if shapes else "static")
    plan = api.build_serialized(builder, network, config, what)
    save_timing_cache(options.timing_cache, api.serialized_timing_cache(config))
    del parser, cache
    header = engine_header(info, options, specs, profile.as_dict() if shapes else {}, api.tensorrt_version(), gpu_name, compute_capability)
    return write_plan(out_path, header, plan)


def build_engines(onnx_dir: Path, out_dir: Path, options: BuildOptions, native_scatter: bool = False, device: int = 0) -> dict[str, Path]:
    """Build ``pfn.plan``, ``rpn.plan`` (and ``mfn.plan`` with ``native_scatter``), each with its
    ``.plan.json`` sidecar, from the graphs in ``onnx_dir``; returns part -> plan path."""
    from . import api
    from ..cuda.device import get_device

    api.load_tensorrt()  # fail early, before reading anything, when TensorRT is missing
    infos = [read_onnx_info(onnx_file_for(onnx_dir, part, options.precision), part) for part in parts_to_build(native_scatter)]
    check_graphs_consistent(infos, options.precision)
    dev = get_device(device).info
    out = {}
    for info in infos:
        path = out_dir / f"{info.meta.part}{PLAN_SUFFIX}"
        build_engine(info, path, options, dev.name, dev.compute_capability)
        out[info.meta.part] = path
    return out
