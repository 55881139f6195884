"""One engine of ours at run time: sidecar checks, deserialization, tensors bound by name.

:class:`EngineRunner` is the piece both TensorRT paths share: the
:class:`~pointpillars_trt.network.tensorrt.TensorRTBackend` (CPU voxelization, engines, CPU
post-processing) and the whole-frame GPU pipeline with engines
(:class:`~pointpillars_trt.gpu_pipeline.GpuPipeline` with ``engine_dir``: our CUDA voxelization,
the PFN engine, our scatter, the RPN engine, our CUDA post-processing). Every TensorRT call goes
through :mod:`.api`. Lifecycle: construct (reads the sidecar and checks it and the plan's hash, no TensorRT object
yet) -> :meth:`activate` (engine + context, I/O names and layouts checked) -> :meth:`bind` /
:meth:`set_shape` / :meth:`execute` -> :meth:`deactivate`. :func:`check_geometry`,
:func:`check_same_checkpoint`, :func:`common_precision` and :func:`profile_max_pillars` check the
engines of one folder against the config and each other; :func:`default_max_batch` sizes batches.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import check_same_artifacts
from ..config import PointPillarsConfig
from ..contract import GRAPH_IO
from ..errors import EngineError
from .engine_file import check_engine_header, check_plan_hash, plan_path, read_plan, read_sidecar, unverified_header

if TYPE_CHECKING:  # annotations only
    from ..cuda.device import CudaDevice
    from .api import EngineTensor


class ExecutionContext:
    """One execution context of an activated engine: tensors bound by name, input shapes, enqueue.
    A runner has one; the device executor makes one per batch lane (bound once, never rebound
    inside a capture)."""

    def __init__(self, engine: Any, what: str) -> None:
        from . import api

        self.what = what
        self.context = api.create_context(engine, what)

    def bind(self, name: str, address: int) -> None:
        from . import api

        api.set_tensor_address(self.context, name, address, self.what)

    def set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        from . import api

        api.set_input_shape(self.context, name, shape, self.what)

    def execute(self, stream: int) -> None:
        from . import api

        api.execute_async(self.context, stream, self.what)


class EngineRunner:
    """The ``part`` engine (``"pfn"``, ``"mfn"`` or ``"rpn"``) in ``path`` for ``cfg`` on ``device``.

    ``path`` is the raw plan (``<part>.plan``) or the engine folder holding it. Construction reads
    the plan's sidecar and checks it against the plan's bytes (SHA-256), the config, the TensorRT
    version and the GPU (:func:`~.engine_file.check_engine_header`; ``on_mismatch`` as there); the
    messages of a tolerated mismatch, and of a plan without a sidecar (loaded unchecked with
    ``cfg``), are in :attr:`warnings`. An old ``*.engine`` container raises
    :class:`EngineError` saying how to rebuild it.
    """

    def __init__(self, part: str, path: str | Path, cfg: PointPillarsConfig, device: "CudaDevice", tensorrt_version: str,
                 on_mismatch: str = "error") -> None:
        self.part, self.path, self.cfg, self.device = part, resolve_plan(Path(path), part), cfg, device
        header = read_sidecar(self.path)
        if header is not None:
            check_plan_hash(self.path, header)
        self.header = header if header is not None else unverified_header(self.path, part, cfg)
        info = device.info
        self.warnings = check_engine_header(self.header, cfg, tensorrt_version, info.name, info.compute_capability,
                                            part=part, where=str(self.path), on_mismatch=on_mismatch)
        self.engine: Any = None
        self.execution: ExecutionContext | None = None
        self.tensors: dict[str, "EngineTensor"] = {}

    @property
    def what(self) -> str:
        return str(self.path)

    def activate(self, runtime: Any) -> None:
        """Deserialize the plan with ``runtime`` (a ``trt.Runtime``; allowed host code for a
        version-compatible engine), check the I/O names against the contract and every I/O
        tensor's layout (LINEAR: our kernels read and write row-major tensors), and create the
        execution context. A plan without a sidecar gets its precision and profile from the engine."""
        from . import api
        from .contract import check_io_names

        self.device.make_current()
        if self.header.version_compatible:
            api.allow_host_code(runtime)
        self.engine = api.deserialize_engine(runtime, read_plan(self.path, self.header), self.what)
        tensors = api.engine_io(self.engine)
        self.tensors = {t.name: t for t in tensors}
        check_io_names(self.part, [t.name for t in tensors if t.is_input], [t.name for t in tensors if not t.is_input], self.what)
        check_layouts(self.tensors, self.what)
        if not self.header.has_sidecar:
            self.header = header_from_engine(self.header, self.part, self.tensors)
        self.execution = ExecutionContext(self.engine, self.what)

    def bind(self, name: str, address: int) -> None:
        self.execution.bind(name, address)

    def set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        self.execution.set_shape(name, shape)

    def execute(self, stream: int) -> None:
        self.execution.execute(stream)

    def nbytes(self, name: str) -> int:
        """Bytes of a static-shaped tensor ``name``."""
        t = self.tensors[name]
        if -1 in t.shape:
            raise EngineError(f"{self.what}: tensor {name!r} has a dynamic shape {t.shape}")
        return int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize

    def deactivate(self) -> None:
        self.execution = None
        self.engine = None


def resolve_plan(path: Path, part: str) -> Path:
    """The plan file ``path`` means: ``path`` itself, ``<part>.plan`` in a folder, or, for a
    ``<part>.engine`` path that does not exist (callers written for the old container), the plan
    beside it. An existing ``*.engine`` file is refused later, saying how to rebuild it."""
    if path.is_dir():
        return plan_path(path, part)
    if path.suffix == ".engine" and not path.exists():
        return plan_path(path.parent, part)
    return path


def check_layouts(tensors: dict[str, "EngineTensor"], where: str) -> None:
    """Raise :class:`EngineError` naming the tensor unless every I/O tensor is LINEAR (row-major)."""
    for t in tensors.values():
        if t.format != "linear":
            raise EngineError(f"{where}: tensor {t.name!r} has layout {t.format}, expected LINEAR (row-major): the scatter "
                              "kernel and the head reader address it row-major; rebuild without format constraints on I/O tensors")


def header_from_engine(header: Any, part: str, tensors: dict[str, "EngineTensor"]) -> Any:
    """A sidecar-less plan's stand-in header completed from the engine: the precision (float type
    of the part's first input, ``canvas`` for the RPN) and the pillar profile of a dynamic input."""
    first = tensors[GRAPH_IO[part][0][0]]
    precision = {"float16": "fp16", "float32": "fp32"}.get(first.dtype, first.dtype)
    dynamic = [t.profile for t in tensors.values() if t.profile is not None]
    profile = {"min": dynamic[0][0][0], "opt": dynamic[0][1][0], "max": dynamic[0][2][0]} if dynamic else {}
    artifact = dataclasses.replace(header.artifact, precision=precision)
    return dataclasses.replace(header, artifact=artifact, profile=profile)


def check_geometry(cfg: PointPillarsConfig, pfn: EngineRunner, rpn: EngineRunner, max_pillars: int) -> dict[str, Any]:
    """The PFN and RPN engines' shapes and dtypes against the config and each other.

    Returns ``M``, ``F`` (points per pillar, decorated features), ``C`` (PFN channels), ``nx``,
    ``ny`` and the numpy dtypes / item sizes of ``features`` and ``pillar_features``.
    """
    where = pfn.what
    feats, npts, pf = pfn.tensors["features"], pfn.tensors["num_points"], pfn.tensors["pillar_features"]
    if len(feats.shape) != 3 or feats.shape[0] != -1:
        raise EngineError(f"{where}: features shape {feats.shape}, expected [num_pillars, M, F]")
    m, f = feats.shape[1], feats.shape[2]
    if (m, f) != (cfg.voxel.max_points_per_pillar, cfg.voxel.num_decorated_features):
        raise EngineError(f"{where}: features [P, {m}, {f}] but the config has [P, {cfg.voxel.max_points_per_pillar}, {cfg.voxel.num_decorated_features}]")
    if feats.dtype not in ("float32", "float16") or npts.dtype != "int32" or pf.dtype not in ("float32", "float16"):
        raise EngineError(f"{where}: dtypes features {feats.dtype}, num_points {npts.dtype}, pillar_features {pf.dtype}; expected float, int32, float")
    c = pf.shape[-1]
    nx, ny, _ = cfg.grid_size
    canvas = rpn.tensors["canvas"]
    if tuple(canvas.shape) != (1, c, ny, nx):
        raise EngineError(f"{rpn.what}: canvas {canvas.shape}, expected (1, {c}, {ny}, {nx}) from the PFN engine and the config")
    if canvas.dtype != pf.dtype:
        raise EngineError(f"{rpn.what}: canvas is {canvas.dtype} but the PFN engine outputs {pf.dtype}; rebuild both from one export")
    heads = {n: rpn.tensors[n] for n in GRAPH_IO["rpn"][1]}
    wrong = {n: t.dtype for n, t in heads.items() if t.dtype != "float32" or -1 in t.shape}
    if wrong:
        raise EngineError(f"{rpn.what}: heads {wrong} (dtype, or a dynamic shape); post-processing reads static float32 heads "
                          f"(the FP16 export casts them back to float32): re-export and rebuild")
    prof = feats.profile
    if prof is None or prof[2][0] < max_pillars:
        raise EngineError(f"{where}: engine profile {prof} does not reach the header's max {max_pillars} pillars; rebuild it")
    return {
        "M": m, "F": f, "C": c, "nx": nx, "ny": ny,
        "feat_dtype": np.dtype(feats.dtype), "feat_size": np.dtype(feats.dtype).itemsize,
        "pf_dtype": np.dtype(pf.dtype), "pf_size": np.dtype(pf.dtype).itemsize,
    }


def profile_max_pillars(runners: list[EngineRunner]) -> int:
    """The largest pillar count every engine accepts (from the sidecars). Without a sidecar
    (before activation) the config's ``voxel.max_pillars``; :func:`check_geometry` then checks it
    against the engine's real profile."""
    maxima = [r.header.profile["max"] for r in runners if r.header.profile]
    if not maxima and all(r.header.has_sidecar for r in runners):
        raise EngineError(f"{runners[0].what}: sidecar has no pillar profile; rebuild with export/build_engines.py")
    return min(maxima) if maxima else runners[0].cfg.voxel.max_pillars


def common_precision(runners: list[EngineRunner], where: str) -> str:
    """The one precision of the engines (``"unknown"`` for plans without sidecars before activation)."""
    precisions = {r.header.precision for r in runners if r.header.precision}
    if len(precisions) > 1:
        raise EngineError(f"{where}: engines of mixed precisions {sorted(precisions)}; rebuild them together")
    return precisions.pop() if precisions else "unknown"


#: what the engines of one folder must share (a partial rebuild would pair a new PFN with an old RPN)
SAME_CHECKPOINT_FIELDS = ("config_hash", "checkpoint_sha256", "weights_sha256")


def check_same_checkpoint(runners: list[EngineRunner]) -> None:
    """Raise :class:`EngineError` naming the field and the files unless the engines (those with a
    sidecar) were built from one export: the same config, checkpoint and weights."""
    check_same_artifacts([r.header.artifact for r in runners if r.header.has_sidecar], SAME_CHECKPOINT_FIELDS, "engines")


#: compute capabilities of NVIDIA's integrated GPUs (Tegra: Nano, TX2, Xavier, Orin, Thor)
INTEGRATED_CC = frozenset({(5, 3), (6, 2), (7, 2), (8, 7), (10, 1), (11, 0)})
DEFAULT_MAX_BATCH = 8
INTEGRATED_MAX_BATCH = 2


def default_max_batch(device_info: Any) -> int:
    """Frames per batch by default: :data:`DEFAULT_MAX_BATCH` on a discrete GPU,
    :data:`INTEGRATED_MAX_BATCH` on an integrated one (Jetson: the GPU shares the system memory,
    and 8 lanes of features, fp16 copies and canvases are ~1 GB). ``device_info`` has
    ``compute_capability`` and, if known, ``integrated`` (bool)."""
    integrated = getattr(device_info, "integrated", None)
    if integrated is None:
        integrated = tuple(device_info.compute_capability) in INTEGRATED_CC
    return INTEGRATED_MAX_BATCH if integrated else DEFAULT_MAX_BATCH


__all__ = ["EngineRunner", "ExecutionContext", "check_geometry", "check_layouts", "check_same_checkpoint", "common_precision", "default_max_batch",
           "profile_max_pillars"]
