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

import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..config import PointPillarsConfig
from ..errors import ConfigError
from .base import Backend, register_backend

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


class TensorRTBackend(Backend):
    """Runs the engines in ``engine_dir`` (``pfn.engine``, ``rpn.engine``; ``mfn.engine`` when
    ``scatter="native"``) on CUDA device ``device``.

    ``on_mismatch``: ``"error"`` refuses engines built with another TensorRT version or on another
    GPU; ``"warn"`` emits :class:`EngineMismatchWarning` and lets TensorRT try (a different config
    is always refused). ``clear``: how the CUDA scatter zeroes the canvas (``"cells"`` or
    ``"memset"``, see :mod:`pointpillars_trt.network.cuda_scatter`).
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
        from ..tensorrt.runner import EngineRunner, common_precision, profile_max_pillars

        if scatter not in SCATTER_MODES:
            raise ConfigError(f"tensorrt backend: scatter must be one of {SCATTER_MODES}, got {scatter!r}")
        self.engine_dir = Path(engine_dir)
        self.scatter_mode, self.clear, self.log_severity = scatter, clear, log_severity
        api.load_tensorrt()
        self.device = get_device(parse_device(device))
        self.tensorrt_version = api.tensorrt_version()
        names = ("pfn", "mfn", "rpn") if scatter == "native" else ("pfn", "rpn")
        self._parts = {n: EngineRunner(n, self.engine_dir / f"{n}.engine", cfg, self.device, self.tensorrt_version, on_mismatch)
                       for n in names}
        for part in self._parts.values():
            for msg in part.warnings:
                warnings.warn(msg, EngineMismatchWarning, stacklevel=2)
        self.headers = {name: part.header for name, part in self._parts.items()}
        self.precision = common_precision(list(self._parts.values()), str(self.engine_dir))
        self._max_pillars = profile_max_pillars(list(self._parts.values()))
        self._buffers: dict[str, Any] = {}

    @property
    def max_pillars(self) -> int:
        """The engine profile's maximum pillar count (the Detector drops or refuses more)."""
        return self._max_pillars

    # ---- lifecycle ----------------------------------------------------------------------------
    def _activate(self) -> None:
        from ..cuda.memory import DeviceBuffer, Event, PinnedBuffer, Stream
        from .cuda_scatter import CudaScatter
        from ..tensorrt import api
        from ..tensorrt.runner import check_geometry

        dev = self.device
        dev.make_current()
        self._logger = api.make_logger(self.log_severity)
        self._runtime = api.create_runtime(self._logger)
        for part in self._parts.values():
            part.activate(self._runtime)
        geo = check_geometry(self.cfg, self._parts["pfn"], self._parts["rpn"], self._max_pillars)
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
            nbytes = rpn.nbytes(name)
            b[name] = DeviceBuffer(nbytes, dev)
            b["h_" + name] = PinnedBuffer(nbytes, dev)
        b["events"] = [Event(dev) for _ in range(len(STAGES) + 1)]
        self._buffers = b
        # addresses never change: bind once, by name
        pfn = self._parts["pfn"]
        pfn.bind("features", b["features"].ptr)
        pfn.bind("num_points", b["num_points"].ptr)
        pfn.bind("pillar_features", b["pillar_features"].ptr)
        if "mfn" in self._parts:
            mfn = self._parts["mfn"]
            mfn.bind("pillar_features", b["pillar_features"].ptr)
            mfn.bind("coords", b["coords"].ptr)
            mfn.bind("canvas", canvas_ptr)
        rpn.bind("canvas", canvas_ptr)
        for name in ("cls", "box", "dir"):
            rpn.bind(name, b[name].ptr)

    def _deactivate(self) -> None:
        b = self._buffers
        if "stream" in b:
            b["stream"].synchronize()
        for part in self._parts.values():
            part.deactivate()
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
            parts["pfn"].set_shape("features", (p, m, f))
            parts["pfn"].set_shape("num_points", (p,))
            parts["pfn"].execute(s)
        ev[2].record(s)
        if self.scatter_mode == "cuda":
            b["scatter"](b["pillar_features"].ptr, b["coords"].ptr, p, s)
        elif p > 0:
            parts["mfn"].set_shape("pillar_features", (p, geo["C"]))
            parts["mfn"].set_shape("coords", (p, 2))
            parts["mfn"].execute(s)
        else:  # the MFN profile starts at 1 pillar: an empty frame is a zero canvas
            b["canvas"].memset_async(s)
        ev[3].record(s)
        parts["rpn"].execute(s)
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
