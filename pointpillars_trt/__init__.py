"""PointPillars LiDAR 3D object detection on PyTorch, ONNX Runtime and TensorRT.

The names below are imported lazily, so ``import pointpillars_trt.io.kitti`` (or ``.eval``)
does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Detections": "detector",
    "Detector": "detector",
    "PointPillarsConfig": "config",
    "load_config": "config",
    "PointPillarsError": "errors",
    "load_points": "io.pointcloud",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'pointpillars_trt' has no attribute {name!r}")
