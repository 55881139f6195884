"""TensorRT backend: PFN engine -> our CUDA scatter kernel -> RPN engine, on one CUDA stream.

Engines come from ``export/build_engines.py`` (our container, :mod:`pointpillars_trt.tensorrt.engine_file`);
their headers are checked against the config, the TensorRT version and the GPU before TensorRT
sees them. Every I/O tensor is bound by name and checked against the contract
(:mod:`pointpillars_trt.tensorrt.contract`). Device buffers are allocated once, at the engine
profile's maximum pillar count; host staging buffers are pinned. One frame is: H2D copies, PFN,
scatter (or the native ScatterND MFN engine with ``scatter="native"``), RPN, D2H copies, and a
single stream synchronization at the end; per-stage times come from CUDA events.

Memory, streams and events use NVIDIA's cuda-python (no PyTorch needed at deployment).
TensorRT and cuda-python are imported when the backend is built, so the package imports without them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..config import PointPillarsConfig
from ..errors import ConfigError, EngineError
from .base import Backend, register_backend

if TYPE_CHECKING:  # annotations only; TensorRT is imported lazily through pointpillars_trt.tensorrt.api
    import tensorrt as trt

SCATTER_MODES = ("cuda", "native")
STAGES = ("h2d", "pfn", "scatter", "rpn", "d2h")


class EngineMismatchWarning(UserWarning):
    """An engine was built with another TensorRT version or on another GPU (``on_mismatch="warn"``)."""


def parse_device(device: int | str | None) -> int:
    """``0``, ``"cuda"``, ``"cuda:1"`` -> a CUDA device index (``"cpu"`` and ``None`` mean 0: TensorRT
    always runs on a GPU)."""
    if device is None or isinstance(device, int):
        return int(device or 0)
    text = str(device).strip().lower()
    if text in ("cpu", "cuda", "gpu", ""):
        return 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    if text.isdigit():
        return int(text)
    raise ConfigError(f"tensorrt backend: device {device!r} is not a CUDA device (use 0, 'cuda' or 'cuda:N')")


@dataclass
class _Part:
    name: str
    path: Path
    engine: "trt.ICudaEngine | None" = None
    context: "trt.IExecutionContext | None" = None
    tensors: dict[str, Any] = field(default_factory=dict)


class TensorRTBackend(Backend):
    """Runs the engines in ``engine_dir`` (``pfn.engine``, ``rpn.engine``; ``mfn.engine`` when
    ``scatter="native"``) on CUDA device ``device``.

    ``on_mismatch``: ``"error"`` refuses engines built with another TensorRT version or on another
    GPU; ``"warn"`` emits :class:`EngineMismatchWarning` and lets TensorRT try (a different config
    is always refused). ``clear``: how the CUDA scatter zeroes the canvas (``"cells"`` or
    ``"memset"``, see :mod:`pointpillars_trt.cuda.scatter`).
    """

    name = "tensorrt"

    def __init__(
        self,
        cfg: PointPillarsConfig,
        engine_dir: str | Path,
        device: int | str = 0,
        on_mismatch: str = "error",
        scatter: str = "cuda",
        clear: str = "cells",
        log_severity: str = "warning",
    ) -> None:
        super().__init__(cfg)
        from ..cuda.device import get_device
        from ..tensorrt import api
        from ..tensorrt.engine_file import check_engine_header, read_engine_header

        if scatter not in SCATTER_MODES:
            raise ConfigError(f"tensorrt backend: scatter must be one of {SCATTER_MODES}, got {scatter!r}")
        self.engine_dir = Path(engine_dir)
        self.scatter_mode, self.clear, self.log_severity = scatter, clear, log_severity
        api.load_tensorrt()
        self.device = get_device(parse_device(device))
        self.tensorrt_version = api.tensorrt_version()
        names = ("pfn", "mfn", "rpn") if scatter == "native" else ("pfn", "rpn")
        self._parts = {n: _Part(n, self.engine_dir / f"{n}.engine") for n in names}
        self.headers = {}
        info = self.device.info
        for part in self._parts.values():
            header = read_engine_header(part.path)
            for msg in check_engine_header(
                header, cfg, self.tensorrt_version, info.name, info.compute_capability,
                part=part.name, where=str(part.path), on_mismatch=on_mismatch,
            ):
                warnings.warn(msg, EngineMismatchWarning, stacklevel=2)
            self.headers[part.name] = header
        precisions = {h.precision for h in self.headers.values()}
        if len(precisions) != 1:
            raise EngineError(f"{self.engine_dir}: engines of mixed precisions {sorted(precisions)}; rebuild them together")
        self.precision = precisions.pop()
        maxima = [h.profile["max"] for h in self.headers.values() if h.profile]
        if not maxima:
            raise EngineError(f"{self._parts['pfn'].path}: header has no pillar profile; rebuild with export/build_engines.py")
        self._max_pillars = min(maxima)
        self._buffers: dict[str, Any] = {}

    @property
    def max_pillars(self) -> int:
        """The engine profile's maximum pillar count (the Detector drops or refuses more)."""
        return self._max_pillars

    # ---- lifecycle ----------------------------------------------------------------------------
    def _activate(self) -> None:
        from ..cuda.memory import DeviceBuffer, Event, PinnedBuffer, Stream
        from ..cuda.scatter import CudaScatter
        from ..tensorrt import api
        from ..tensorrt.contract import check_io_names
        from ..tensorrt.engine_file import read_engine_file

        dev = self.device
        dev.make_current()
        self._logger = api.make_logger(self.log_severity)
        self._runtime = api.create_runtime(self._logger)
        for part in self._parts.values():
            _, data = read_engine_file(part.path)
            part.engine = api.deserialize_engine(self._runtime, data, str(part.path))
            tensors = api.engine_io(part.engine)
            part.tensors = {t.name: t for t in tensors}
            check_io_names(part.name, [t.name for t in tensors if t.is_input], [t.name for t in tensors if not t.is_input], str(part.path))
            part.context = api.create_context(part.engine, str(part.path))
        geo = self._check_geometry()
        self._geo = geo
        p_max = self._max_pillars
        b: dict[str, Any] = {}
        b["stream"] = Stream(dev)
        b["features"] = DeviceBuffer(p_max * geo["M"] * geo["F"] * geo["feat_size"], dev)
        b["num_points"] = DeviceBuffer(p_max * 4, dev)
        b["coords"] = DeviceBuffer(p_max * 2 * 4, dev)
        b["pillar_features"] = DeviceBuffer(p_max * geo["C"] * geo["pf_size"], dev)
        b["h_features"] = PinnedBuffer(p_max * geo["M"] * geo["F"] * geo["feat_size"], dev)
        b["h_num_points"] = PinnedBuffer(p_max * 4, dev)
        b["h_coords"] = PinnedBuffer(p_max * 2 * 4, dev)
        if self.scatter_mode == "cuda":
            b["scatter"] = CudaScatter(geo["nx"], geo["ny"], geo["C"], geo["pf_dtype"], max_pillars=p_max, device=dev, clear=self.clear)
            canvas_ptr = b["scatter"].canvas_ptr
        else:
            b["canvas"] = DeviceBuffer(geo["C"] * geo["ny"] * geo["nx"] * geo["pf_size"], dev)
            canvas_ptr = b["canvas"].ptr
        rpn = self._parts["rpn"]
        for name in ("cls", "box", "dir"):
            t = rpn.tensors[name]
            nbytes = math.prod(t.shape) * np.dtype(t.dtype).itemsize
            b[name] = DeviceBuffer(nbytes, dev)
            b["h_" + name] = PinnedBuffer(nbytes, dev)
        b["events"] = [Event(dev) for _ in range(len(STAGES) + 1)]
        self._buffers = b
        # addresses never change: bind once, by name
        what = lambda p: str(self._parts[p].path)  # noqa: E731
        pfn = self._parts["pfn"].context
        api.set_tensor_address(pfn, "features", b["features"].ptr, what("pfn"))
        api.set_tensor_address(pfn, "num_points", b["num_points"].ptr, what("pfn"))
        api.set_tensor_address(pfn, "pillar_features", b["pillar_features"].ptr, what("pfn"))
        if "mfn" in self._parts:
            mfn = self._parts["mfn"].context
            api.set_tensor_address(mfn, "pillar_features", b["pillar_features"].ptr, what("mfn"))
            api.set_tensor_address(mfn, "coords", b["coords"].ptr, what("mfn"))
            api.set_tensor_address(mfn, "canvas", canvas_ptr, what("mfn"))
        api.set_tensor_address(rpn.context, "canvas", canvas_ptr, what("rpn"))
        for name in ("cls", "box", "dir"):
            api.set_tensor_address(rpn.context, name, b[name].ptr, what("rpn"))

    def _check_geometry(self) -> dict[str, Any]:
        """Engine shapes and dtypes against the config and each other."""
        cfg = self.cfg
        pfn, rpn = self._parts["pfn"].tensors, self._parts["rpn"].tensors
        where = str(self._parts["pfn"].path)
        feats, npts, pf = pfn["features"], pfn["num_points"], pfn["pillar_features"]
        if len(feats.shape) != 3 or feats.shape[0] != -1:
            raise EngineError(f"{where}: features shape {feats.shape}, expected [num_pillars, M, F]")
        m, f = feats.shape[1], feats.shape[2]
        if (m, f) != (cfg.voxel.max_points_per_pillar, cfg.voxel.num_decorated_features):
            raise EngineError(f"{where}: features [P, {m}, {f}] but the config has [P, {cfg.voxel.max_points_per_pillar}, {cfg.voxel.num_decorated_features}]")
        if feats.dtype not in ("float32", "float16") or npts.dtype != "int32" or pf.dtype not in ("float32", "float16"):
            raise EngineError(f"{where}: dtypes features {feats.dtype}, num_points {npts.dtype}, pillar_features {pf.dtype}; expected float, int32, float")
        c = pf.shape[-1]
        nx, ny, _ = cfg.grid_size
        canvas = rpn["canvas"]
        if tuple(canvas.shape) != (1, c, ny, nx):
            raise EngineError(f"{self._parts['rpn'].path}: canvas {canvas.shape}, expected (1, {c}, {ny}, {nx}) from the PFN engine and the config")
        if canvas.dtype != pf.dtype:
            raise EngineError(f"{self._parts['rpn'].path}: canvas is {canvas.dtype} but the PFN engine outputs {pf.dtype}; rebuild both from one export")
        prof = feats.profile
        if prof is None or prof[2][0] < self._max_pillars:
            raise EngineError(f"{where}: engine profile {prof} does not reach the header's max {self._max_pillars} pillars; rebuild it")
        return {
            "M": m, "F": f, "C": c, "nx": nx, "ny": ny,
            "feat_dtype": np.dtype(feats.dtype), "feat_size": np.dtype(feats.dtype).itemsize,
            "pf_dtype": np.dtype(pf.dtype), "pf_size": np.dtype(pf.dtype).itemsize,
        }

    def _deactivate(self) -> None:
        b = self._buffers
        if "stream" in b:
            b["stream"].synchronize()
        for part in self._parts.values():
            part.context = None
            part.engine = None
        for key, obj in list(b.items()):
            if key == "events":
                for e in obj:
                    e.free()
            elif hasattr(obj, "free"):
                obj.free()
        self._buffers = {}
        self._runtime = None

    # ---- one frame ----------------------------------------------------------------------------
    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..cuda.memory import copy_d2h_async, copy_h2d_async
        from ..tensorrt import api

        geo, b = self._geo, self._buffers
        feats = np.asarray(feeds["features"])
        p = int(feats.shape[0])
        m, f = geo["M"], geo["F"]
        if feats.shape != (p, m, f):
            raise ConfigError(f"tensorrt backend: features {feats.shape}, expected ({p}, {m}, {f})")
        npts = np.asarray(feeds["num_points"])
        coords = np.asarray(feeds["coords"])
        if npts.shape != (p,) or coords.shape != (p, 2):
            raise ConfigError(f"tensorrt backend: num_points {npts.shape} / coords {coords.shape}, expected ({p},) / ({p}, 2)")
        h_feats = b["h_features"].view(geo["feat_dtype"], (p, m, f))
        h_npts = b["h_num_points"].view(np.int32, (p,))
        h_coords = b["h_coords"].view(np.int32, (p, 2))
        np.copyto(h_feats, feats, casting="same_kind")
        np.copyto(h_npts, npts, casting="unsafe")
        np.copyto(h_coords, coords, casting="unsafe")

        self.device.make_current()
        s = b["stream"].handle
        ev = b["events"]
        parts = self._parts
        ev[0].record(s)
        copy_h2d_async(b["features"].ptr, b["h_features"].ptr, h_feats.nbytes, s)
        copy_h2d_async(b["num_points"].ptr, b["h_num_points"].ptr, h_npts.nbytes, s)
        copy_h2d_async(b["coords"].ptr, b["h_coords"].ptr, h_coords.nbytes, s)
        ev[1].record(s)
        if p > 0:
            ctx = parts["pfn"].context
            api.set_input_shape(ctx, "features", (p, m, f), str(parts["pfn"].path))
            api.set_input_shape(ctx, "num_points", (p,), str(parts["pfn"].path))
            api.execute_async(ctx, s, str(parts["pfn"].path))
        ev[2].record(s)
        if self.scatter_mode == "cuda":
            b["scatter"](b["pillar_features"].ptr, b["coords"].ptr, p, s)
        elif p > 0:
            ctx = parts["mfn"].context
            api.set_input_shape(ctx, "pillar_features", (p, geo["C"]), str(parts["mfn"].path))
            api.set_input_shape(ctx, "coords", (p, 2), str(parts["mfn"].path))
            api.execute_async(ctx, s, str(parts["mfn"].path))
        else:  # the MFN profile starts at 1 pillar: an empty frame is a zero canvas
            b["canvas"].memset_async(s)
        ev[3].record(s)
        api.execute_async(parts["rpn"].context, s, str(parts["rpn"].path))
        ev[4].record(s)
        rpn_tensors = parts["rpn"].tensors
        for name in ("cls", "box", "dir"):
            copy_d2h_async(b["h_" + name].ptr, b[name].ptr, b[name].nbytes, s)
        ev[5].record(s)
        b["stream"].synchronize()
        out = {}
        for name in ("cls", "box", "dir"):
            t = rpn_tensors[name]
            out[name] = b["h_" + name].view(np.dtype(t.dtype), t.shape).astype(np.float32, copy=True)
        self.last_timings_ms = {stage: ev[i].elapsed_ms(ev[i + 1]) for i, stage in enumerate(STAGES)}
        return out


@register_backend("tensorrt")
def _make_tensorrt(
    cfg: PointPillarsConfig,
    engine_dir: str | Path | None = None,
    device: int | str = 0,
    state_dict: object = None,
    on_mismatch: str = "error",
    scatter: str = "cuda",
    clear: str = "cells",
    **_: object,
) -> TensorRTBackend:
    """Factory for ``create_backend("tensorrt", ...)``; ``state_dict`` is ignored (the weights are in the engines)."""
    if engine_dir is None:
        raise ConfigError("tensorrt backend: engine_dir is required (a folder written by export/build_engines.py)")
    return TensorRTBackend(cfg, engine_dir, device=device, on_mismatch=on_mismatch, scatter=scatter, clear=clear)
