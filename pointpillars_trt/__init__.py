"""PointPillars LiDAR 3D object detection on PyTorch, ONNX Runtime and TensorRT."""

from __future__ import annotations

__version__ = "0.1.0"

from .config import PointPillarsConfig, load_config
from .detector import Detections, Detector
from .errors import PointPillarsError
from .io.pointcloud import load_points

__all__ = ["Detections", "Detector", "PointPillarsConfig", "PointPillarsError", "__version__", "load_config", "load_points"]
