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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..config import PointPillarsConfig
from ..errors import ConfigError
from ..options import ScatterKind, TensorRTOptions
from ..tensorrt.engines import EngineMismatchWarning  # noqa: F401  (re-exported)
from .base import OUTPUT_NAMES, Backend, register_backend

STAGES = ("h2d", "pfn", "scatter", "rpn", "d2h")


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
class _Buffers:
    """The backend's device and pinned host buffers, sized for the profile's maximum pillar count."""

    stream: Any
    events: list
    device: dict[str, Any] = field(default_factory=dict)  # tensor name -> DeviceBuffer
    host: dict[str, Any] = field(default_factory=dict)  # tensor name -> PinnedBuffer
    scatter: Any = None

    def free(self) -> None:
        self.stream.synchronize()
        for obj in (*self.device.values(), *self.host.values(), *self.events, self.scatter, self.stream):
            if obj is not None:
                obj.free()


class TensorRTBackend(Backend):
    """Runs the engines in ``engine_dir`` (``pfn.engine``, ``rpn.engine``; ``mfn.engine`` when
    ``scatter="native"``) on CUDA device ``device``.

    ``on_mismatch``: ``"error"`` refuses engines built with another TensorRT version or on another
    GPU; ``"warn"`` emits :class:`EngineMismatchWarning` and lets TensorRT try (a different config
    is always refused). ``clear``: how the CUDA scatter zeroes the canvas (``"cells"`` or
    ``"memset"``, see :mod:`pointpillars_trt.network.cuda_scatter`).
    """

    name = "tensorrt"

    def __init__(self, cfg: PointPillarsConfig, engine_dir: str | Path, device: int | str = 0, on_mismatch: str = "error",
                 scatter: str = "cuda", clear: str = "cells") -> None:
        super().__init__(cfg)
        from ..cuda.device import get_device
        from ..tensorrt import api
        from ..tensorrt.engines import EngineSet

        api.load_tensorrt()  # a missing TensorRT is the first thing to say
        self.engine_dir = Path(engine_dir)
        self.scatter_mode, self.clear = ScatterKind.parse(scatter, "tensorrt backend: scatter"), clear
        self.device = get_device(parse_device(device))
        parts = ("pfn", "mfn", "rpn") if self.scatter_mode == ScatterKind.NATIVE else ("pfn", "rpn")
        self.engines = EngineSet(self.engine_dir, cfg, self.device, parts=parts, on_mismatch=on_mismatch)
        self.tensorrt_version = self.engines.tensorrt_version
        self.headers = self.engines.headers
        self.precision = self.engines.precision
        self._buffers: _Buffers | None = None

    @property
    def max_pillars(self) -> int:
        """The engine profile's maximum pillar count (the Detector drops or refuses more)."""
        return self.engines.max_pillars

    # ---- lifecycle ----------------------------------------------------------------------------
    def _activate(self) -> None:
        from ..cuda.memory import DeviceBuffer, Event, PinnedBuffer, Stream
        from .cuda_scatter import CudaScatter

        dev = self.device
        self.engines.activate()
        geo, p_max = self.engines.geometry, self.max_pillars
        feat_bytes = p_max * geo.points_per_pillar * geo.features * geo.feature_dtype.itemsize
        sizes = {"features": feat_bytes, "num_points": p_max * 4, "coords": p_max * 2 * 4}
        b = _Buffers(stream=Stream(dev), events=[Event(dev) for _ in range(len(STAGES) + 1)])
        for name, nbytes in sizes.items():
            b.device[name], b.host[name] = DeviceBuffer(nbytes, dev), PinnedBuffer(nbytes, dev)
        b.device["pillar_features"] = DeviceBuffer(p_max * geo.channels * geo.canvas_dtype.itemsize, dev)
        if self.scatter_mode == ScatterKind.CUDA:
            b.scatter = CudaScatter(geo.nx, geo.ny, geo.channels, geo.canvas_dtype, max_pillars=p_max, device=dev, clear=str(self.clear))
            canvas_ptr = b.scatter.canvas_ptr
        else:
            b.device["canvas"] = DeviceBuffer(geo.channels * geo.ny * geo.nx * geo.canvas_dtype.itemsize, dev)
            canvas_ptr = b.device["canvas"].ptr
        rpn = self.engines["rpn"]
        for name in OUTPUT_NAMES:
            b.device[name], b.host[name] = DeviceBuffer(rpn.nbytes(name), dev), PinnedBuffer(rpn.nbytes(name), dev)
        self._buffers = b
        # addresses never change: bind once, by name
        binds = {"pfn": ("features", "num_points", "pillar_features"), "mfn": ("pillar_features", "coords"),
                 "rpn": OUTPUT_NAMES}
        for part, runner in self.engines.runners.items():
            for name in binds[part]:
                runner.bind(name, b.device[name].ptr)
        if "mfn" in self.engines.runners:
            self.engines["mfn"].bind("canvas", canvas_ptr)
        rpn.bind("canvas", canvas_ptr)

    def _deactivate(self) -> None:
        if self._buffers is not None:
            self._buffers.free()
        self.engines.free()
        self._buffers = None

    # ---- one frame ----------------------------------------------------------------------------
    def _stage_inputs(self, feeds: Mapping[str, np.ndarray]) -> int:
        """Copy the feeds into the pinned buffers; returns the pillar count."""
        geo, host = self.engines.geometry, self._buffers.host
        feats = np.asarray(feeds["features"])
        p, m, f = int(feats.shape[0]), geo.points_per_pillar, geo.features
        if feats.shape != (p, m, f):
            raise ConfigError(f"tensorrt backend: features {feats.shape}, expected ({p}, {m}, {f})")
        npts, coords = np.asarray(feeds["num_points"]), np.asarray(feeds["coords"])
        if npts.shape != (p,) or coords.shape != (p, 2):
            raise ConfigError(f"tensorrt backend: num_points {npts.shape} / coords {coords.shape}, expected ({p},) / ({p}, 2)")
        np.copyto(host["features"].view(geo.feature_dtype, (p, m, f)), feats, casting="same_kind")
        np.copyto(host["num_points"].view(np.int32, (p,)), npts, casting="unsafe")
        np.copyto(host["coords"].view(np.int32, (p, 2)), coords, casting="unsafe")
        return p

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..cuda.memory import copy_d2h_async, copy_h2d_async

        p = self._stage_inputs(feeds)
        geo, b, parts = self.engines.geometry, self._buffers, self.engines.runners
        item = {"features": geo.points_per_pillar * geo.features * geo.feature_dtype.itemsize, "num_points": 4, "coords": 8}
        self.device.make_current()
        s, ev = b.stream.handle, b.events
        ev[0].record(s)
        for name, size in item.items():
            copy_h2d_async(b.device[name].ptr, b.host[name].ptr, p * size, s)
        ev[1].record(s)
        if p > 0:
            parts["pfn"].set_shape("features", (p, geo.points_per_pillar, geo.features))
            parts["pfn"].set_shape("num_points", (p,))
            parts["pfn"].execute(s)
        ev[2].record(s)
        if b.scatter is not None:
            b.scatter(b.device["pillar_features"].ptr, b.device["coords"].ptr, p, s)
        elif p > 0:
            parts["mfn"].set_shape("pillar_features", (p, geo.channels))
            parts["mfn"].set_shape("coords", (p, 2))
            parts["mfn"].execute(s)
        else:  # the MFN profile starts at 1 pillar: an empty frame is a zero canvas
            b.device["canvas"].memset_async(s)
        ev[3].record(s)
        parts["rpn"].execute(s)
        ev[4].record(s)
        for name in OUTPUT_NAMES:
            copy_d2h_async(b.host[name].ptr, b.device[name].ptr, b.device[name].nbytes, s)
        ev[5].record(s)
        b.stream.synchronize()
        tensors = parts["rpn"].tensors
        out = {n: b.host[n].view(np.dtype(tensors[n].dtype), tensors[n].shape).astype(np.float32, copy=True) for n in OUTPUT_NAMES}
        self.last_timings_ms = {stage: ev[i].elapsed_ms(ev[i + 1]) for i, stage in enumerate(STAGES)}
        return out


@register_backend("tensorrt", TensorRTOptions)
def _make_tensorrt(cfg: PointPillarsConfig, state_dict, engine_dir, options: TensorRTOptions) -> TensorRTBackend:
    """The weights are in the engines: ``state_dict`` is not used."""
    if engine_dir is None:
        raise ConfigError("tensorrt backend: engine_dir is required (a folder written by export/build_engines.py)")
    o = options
    return TensorRTBackend(cfg, engine_dir, device=o.device, on_mismatch=str(o.on_mismatch), scatter=str(o.scatter), clear=str(o.clear))
