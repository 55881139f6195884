"""One engine of ours at run time: header checks, deserialization, tensors bound by name.

:class:`EngineRunner` is the piece both TensorRT paths share: the
:class:`~pointpillars_trt.network.tensorrt.TensorRTBackend` (CPU voxelization, engines, CPU
post-processing) and the whole-frame GPU pipeline with engines
(:class:`~pointpillars_trt.gpu_pipeline.GpuPipeline` with ``engine_dir``: our CUDA voxelization,
the PFN engine, our scatter, the RPN engine, our CUDA post-processing). Every TensorRT call goes
through :mod:`.api`. Lifecycle: construct (reads and checks the header, no TensorRT object yet)
-> :meth:`activate` (engine + context) -> :meth:`bind` / :meth:`set_shape` / :meth:`execute` ->
:meth:`deactivate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import PointPillarsConfig
from ..errors import EngineError

if TYPE_CHECKING:  # annotations only
    from ..cuda.device import CudaDevice
    from .api import EngineTensor


class EngineRunner:
    """The ``part`` engine (``"pfn"``, ``"mfn"`` or ``"rpn"``) in ``path`` for ``cfg`` on ``device``.

    Construction reads the header and checks it against the config, the TensorRT version and the
    GPU (:func:`~.engine_file.check_engine_header`; ``on_mismatch`` as there); the messages of a
    tolerated mismatch are in :attr:`warnings`.
    """

    def __init__(self, part: str, path: str | Path, cfg: PointPillarsConfig, device: "CudaDevice", tensorrt_version: str,
                 on_mismatch: str = "error") -> None:
        from .engine_file import check_engine_header, read_engine_header

        self.part, self.path, self.cfg, self.device = part, Path(path), cfg, device
        self.header = read_engine_header(self.path)
        info = device.info
        self.warnings = check_engine_header(self.header, cfg, tensorrt_version, info.name, info.compute_capability,
                                            part=part, where=str(self.path), on_mismatch=on_mismatch)
        self.engine: Any = None
        self.context: Any = None
        self.tensors: dict[str, "EngineTensor"] = {}

    @property
    def what(self) -> str:
        return str(self.path)

    def activate(self, runtime: Any) -> None:
        """Deserialize the plan with ``runtime`` (a ``trt.Runtime``), check the I/O names against the
        contract and create the execution context."""
        from . import api
        from .contract import check_io_names
        from .engine_file import read_engine_file

        self.device.make_current()
        _, data = read_engine_file(self.path)
        self.engine = api.deserialize_engine(runtime, data, self.what)
        tensors = api.engine_io(self.engine)
        self.tensors = {t.name: t for t in tensors}
        check_io_names(self.part, [t.name for t in tensors if t.is_input], [t.name for t in tensors if not t.is_input], self.what)
        self.context = api.create_context(self.engine, self.what)

    def bind(self, name: str, address: int) -> None:
        from . import api

        api.set_tensor_address(self.context, name, address, self.what)

    def set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        from . import api

        api.set_input_shape(self.context, name, shape, self.what)

    def execute(self, stream: int) -> None:
        from . import api

        api.execute_async(self.context, stream, self.what)

    def nbytes(self, name: str) -> int:
        """Bytes of a static-shaped tensor ``name``."""
        t = self.tensors[name]
        if -1 in t.shape:
            raise EngineError(f"{self.what}: tensor {name!r} has a dynamic shape {t.shape}")
        return int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize

    def deactivate(self) -> None:
        self.context = None
        self.engine = None


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
    prof = feats.profile
    if prof is None or prof[2][0] < max_pillars:
        raise EngineError(f"{where}: engine profile {prof} does not reach the header's max {max_pillars} pillars; rebuild it")
    return {
        "M": m, "F": f, "C": c, "nx": nx, "ny": ny,
        "feat_dtype": np.dtype(feats.dtype), "feat_size": np.dtype(feats.dtype).itemsize,
        "pf_dtype": np.dtype(pf.dtype), "pf_size": np.dtype(pf.dtype).itemsize,
    }


def profile_max_pillars(runners: list[EngineRunner]) -> int:
    """The largest pillar count every engine accepts (from the headers)."""
    maxima = [r.header.profile["max"] for r in runners if r.header.profile]
    if not maxima:
        raise EngineError(f"{runners[0].what}: header has no pillar profile; rebuild with export/build_engines.py")
    return min(maxima)


def common_precision(runners: list[EngineRunner], where: str) -> str:
    precisions = {r.header.precision for r in runners}
    if len(precisions) != 1:
        raise EngineError(f"{where}: engines of mixed precisions {sorted(precisions)}; rebuild them together")
    return precisions.pop()


__all__ = ["EngineRunner", "check_geometry", "common_precision", "profile_max_pillars"]
