"""The engines of one engine folder, loaded once and shared by both TensorRT paths: the
:class:`~pointpillars_trt.network.tensorrt.TensorRTBackend` (host executor) and the
:class:`~pointpillars_trt.network.device.EngineNetwork` (device executor).

Lifecycle: construct (reads and checks every header against the config, the TensorRT version
and the GPU; no TensorRT object yet) -> :meth:`EngineSet.activate` (one runtime, engines,
the geometry check) -> :meth:`EngineSet.context` for each batch lane (an execution context of
its own, bound once) -> :meth:`EngineSet.free`. Not run in this repository's CI or on its GPU
machine: TensorRT is installed on neither (docs/TENSORRT.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import PointPillarsConfig
from ..errors import EngineError

if TYPE_CHECKING:  # annotations only
    from ..cuda.device import CudaDevice


class EngineMismatchWarning(UserWarning):
    """An engine was built with another TensorRT version or on another GPU (``on_mismatch="warn"``)."""


@dataclass(frozen=True)
class EngineGeometry:
    """Shapes and dtypes the PFN and RPN engines agree on with the config.

    ``points_per_pillar`` (M) and ``features`` (F) of the PFN input ``[P, M, F]``, ``channels`` (C)
    of ``pillar_features [P, C]`` and of the canvas ``[1, C, ny, nx]``; numpy dtypes of the PFN
    input and of the pillar features (= the canvas)."""

    points_per_pillar: int
    features: int
    channels: int
    nx: int
    ny: int
    feature_dtype: np.dtype
    canvas_dtype: np.dtype

    @classmethod
    def from_dict(cls, geo: dict[str, Any]) -> "EngineGeometry":
        return cls(geo["M"], geo["F"], geo["C"], geo["nx"], geo["ny"], np.dtype(geo["feat_dtype"]), np.dtype(geo["pf_dtype"]))


class EngineSet:
    """The ``parts`` engines (``pfn``, ``rpn``; ``mfn`` too for the native scatter) in ``engine_dir``.

    ``on_mismatch``: ``"error"`` refuses engines of another TensorRT version or GPU; ``"warn"``
    emits :class:`EngineMismatchWarning` and lets TensorRT try (another config is always refused).
    """

    def __init__(self, engine_dir: str | Path, cfg: PointPillarsConfig, device: "CudaDevice", *,
                 parts: tuple[str, ...] = ("pfn", "rpn"), on_mismatch: str = "error") -> None:
        from . import api
        from .runner import EngineRunner, check_same_checkpoint, common_precision, profile_max_pillars

        api.load_tensorrt()
        self.engine_dir, self.cfg, self.device = Path(engine_dir), cfg, device
        self.tensorrt_version = api.tensorrt_version()
        self.runners = {p: EngineRunner(p, self.engine_dir / f"{p}.plan", cfg, device, self.tensorrt_version, on_mismatch)
                        for p in parts}
        check_same_checkpoint(list(self.runners.values()))
        for runner in self.runners.values():
            for msg in runner.warnings:
                warnings.warn(msg, EngineMismatchWarning, stacklevel=3)
        self.headers = {p: r.header for p, r in self.runners.items()}
        self.precision = common_precision(list(self.runners.values()), str(self.engine_dir))
        self.max_pillars = profile_max_pillars(list(self.runners.values()))
        self.geometry: EngineGeometry | None = None
        self._runtime: Any = None

    def __getitem__(self, part: str):
        return self.runners[part]

    def activate(self) -> "EngineSet":
        """Deserialize every engine with one runtime and check their geometry against the config."""
        from . import api
        from .runner import check_geometry

        if self._runtime is None:
            self.device.make_current()
            self._runtime = api.create_runtime(api.process_logger())
            for runner in self.runners.values():
                runner.activate(self._runtime)
            geo = check_geometry(self.cfg, self.runners["pfn"], self.runners["rpn"], self.max_pillars)
            self.geometry = EngineGeometry.from_dict(geo)
        return self

    def context(self, part: str):
        """A new :class:`~.runner.ExecutionContext` of ``part`` (one per batch lane: never rebound inside a capture)."""
        from .runner import ExecutionContext

        if self._runtime is None:
            raise EngineError(f"{self.engine_dir}: EngineSet.context before activate()")
        runner = self.runners[part]
        return ExecutionContext(runner.engine, runner.what)

    def free(self) -> None:
        for runner in self.runners.values():
            runner.deactivate()
        self._runtime = None


__all__ = ["EngineGeometry", "EngineMismatchWarning", "EngineSet"]
