"""Deprecated names of the whole-frame GPU pipeline, kept so that existing code runs.

The pipeline is now the device executor (:mod:`pointpillars_trt.executors.device`) behind the one
:class:`~pointpillars_trt.detector.Detector` facade: use
``Detector.from_checkpoint(path, backend="gpu", precision="fp16")`` (or ``backend="auto"``, which
picks it on a machine with CUDA) and ``Detector.from_engine_dir(dir, backend="gpu")``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

from .config import PointPillarsConfig
from .detector import Detector
from .executors.buffers import point_bucket  # noqa: F401  (re-exported)
from .executors.device import DevicePipeline as GpuPipeline  # noqa: F401  (re-exported)
from .options import Backend


def _deprecated(name: str) -> None:
    warnings.warn(f"{name} is deprecated: use Detector.from_checkpoint(..., backend='gpu') or "
                  "Detector.from_engine_dir(..., backend='gpu')", DeprecationWarning, stacklevel=3)


class GpuDetector(Detector):
    """Deprecated alias: a :class:`~pointpillars_trt.detector.Detector` on the device executor."""

    def __new__(cls, config: PointPillarsConfig, state_dict: Mapping[str, Any], **options: Any) -> Detector:
        _deprecated("GpuDetector")
        return Detector.from_weights(config, state_dict, backend=Backend.GPU, **options)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, config: PointPillarsConfig | str | Path | None = None,
                        format: str | None = None, **options: Any) -> Detector:
        _deprecated("GpuDetector.from_checkpoint")
        return Detector.from_checkpoint(path, config, backend=Backend.GPU, format=format, **options)

    @classmethod
    def from_engine_dir(cls, engine_dir: str | Path, config: PointPillarsConfig | str | Path | None = None,
                        **options: Any) -> Detector:
        _deprecated("GpuDetector.from_engine_dir")
        return Detector.from_engine_dir(engine_dir, config, backend=Backend.GPU, **options)


__all__ = ["GpuDetector", "GpuPipeline", "point_bucket"]
