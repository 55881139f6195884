"""Build TensorRT engines from the exported ONNX graphs.

The pure parts (profile ranges and shapes, which parts to build, header assembly) are plain
functions tested on the CPU; :func:`build_engine` chains the thin TensorRT steps of :mod:`.api`:
``create_network -> parse_onnx -> configure -> add_pillar_profile -> build_serialized``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config import PointPillarsConfig
from ..errors import ConfigError, EngineError
from .contract import PART_INPUTS, PARTS, OnnxGraphInfo, check_io_names, read_onnx_info
from .engine_file import EngineHeader, now_iso, write_engine_file

log = logging.getLogger(__name__)

#: Default optimum of the pillar profile: a typical pillar count of a 64-beam frame (clamped to
#: the config's maximum). TensorRT tunes its kernels for this count.
DEFAULT_OPT_PILLARS = 12000
DEFAULT_WORKSPACE_MIB = 2048


@dataclass(frozen=True)
class PillarProfile:
    min: int
    opt: int
    max: int

    def as_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}


def pillar_profile(cfg: PointPillarsConfig, min_pillars: int | None = None, opt_pillars: int | None = None, max_pillars: int | None = None) -> PillarProfile:
    """The ``num_pillars`` profile: ``min`` 1, ``max`` the config's ``voxel.max_pillars``, ``opt``
    :data:`DEFAULT_OPT_PILLARS` clamped into ``[min, max]`` unless given."""
    hi = int(max_pillars) if max_pillars is not None else cfg.voxel.max_pillars
    lo = int(min_pillars) if min_pillars is not None else 1
    if opt_pillars is not None:
        opt = int(opt_pillars)
    else:
        opt = min(max(DEFAULT_OPT_PILLARS, lo), hi)
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


def check_graphs_consistent(infos: Sequence[OnnxGraphInfo], precision: str | None) -> None:
    """All graphs from one config and checkpoint, and of the requested precision."""
    first = infos[0]
    for info in infos[1:]:
        if info.config_hash != first.config_hash or info.checkpoint_sha256 != first.checkpoint_sha256:
            raise EngineError(f"{info.path} and {first.path} were exported from different configs or checkpoints; re-export them together")
    for info in infos:
        if precision is not None and info.precision != precision:
            raise EngineError(
                f"{info.path} is a {info.precision} graph but --precision {precision} was asked; export the {precision} graphs "
                f"(export/export_onnx.py{' --fp16' if precision == 'fp16' else ''}) into their own directory"
            )
    if len({i.precision for i in infos}) != 1:
        raise EngineError(f"the graphs mix precisions {sorted({i.precision for i in infos})}; re-export them together")


def load_timing_cache(path: Path | None) -> bytes:
    if path is None or not path.is_file():
        return b""
    return path.read_bytes()


def save_timing_cache(path: Path | None, data: bytes) -> None:
    if path is None or not data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_engine(info: OnnxGraphInfo, out_path: Path, options: BuildOptions, gpu_name: str, compute_capability: tuple[int, int]) -> EngineHeader:
    """Build one engine from ``info.path`` and write our container to ``out_path``."""
    from . import api

    what = f"{info.path.name} -> {out_path.name}"
    logger = api.make_logger(options.log_severity)
    builder = api.create_builder(logger)
    network = api.create_network(builder)
    parser = api.parse_onnx(network, logger, info.path)
    specs = api.network_io(network)
    check_io_names(info.part, [s.name for s in specs if s.is_input], [s.name for s in specs if not s.is_input], str(info.path))
    profile = pillar_profile(info.config, options.min_pillars, options.opt_pillars, options.max_pillars)
    shapes = {s.name: profile_shapes(s.shape, profile) for s in specs if s.is_input and -1 in s.shape}
    if info.part in ("pfn", "mfn") and set(shapes) != set(PART_INPUTS[info.part]):
        raise EngineError(f"{info.path}: inputs {sorted(PART_INPUTS[info.part])} should have the dynamic axis num_pillars; found it on {sorted(shapes)}")
    config, cache = api.configure(builder, options.workspace_mib, load_timing_cache(options.timing_cache), options.tf32)
    api.add_pillar_profile(builder, config, shapes)
    log.info("building %s (%s, profile %s)", what, info.precision, profile.as_dict() if shapes else "static")
    engine = api.build_serialized(builder, network, config, what)
    save_timing_cache(options.timing_cache, api.serialized_timing_cache(config))
    del parser, cache
    header = EngineHeader(
        part=info.part, precision=info.precision, config=info.config.to_json(), config_hash=info.config_hash,
        onnx_sha256=info.sha256, tensorrt_version=api.tensorrt_version(), gpu_name=gpu_name,
        compute_capability=tuple(compute_capability), profile=profile.as_dict() if shapes else {},
        io={s.name: {"mode": "input" if s.is_input else "output", "dtype": s.dtype, "shape": list(s.shape)} for s in specs},
        checkpoint_sha256=info.checkpoint_sha256, tf32=options.tf32, created=now_iso(),
    )
    write_engine_file(out_path, header, engine)
    return header


def build_engines(onnx_dir: Path, out_dir: Path, options: BuildOptions, native_scatter: bool = False, device: int = 0) -> dict[str, Path]:
    """Build ``pfn.engine``, ``rpn.engine`` (and ``mfn.engine`` with ``native_scatter``) from the
    graphs in ``onnx_dir``; returns part -> engine path."""
    from . import api
    from ..cuda.device import get_device

    api.load_tensorrt()  # fail early, before reading anything, when TensorRT is missing
    infos = [read_onnx_info(onnx_file_for(onnx_dir, part, options.precision), part) for part in parts_to_build(native_scatter)]
    check_graphs_consistent(infos, options.precision)
    dev = get_device(device).info
    out = {}
    for info in infos:
        path = out_dir / f"{info.part}.engine"
        build_engine(info, path, options, dev.name, dev.compute_capability)
        out[info.part] = path
    return out
