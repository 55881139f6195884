"""Procedural LiDAR scenes and a KITTI-layout synthetic dataset.

A street scene (:mod:`.scene`, shapes in :mod:`.shapes`) is ray cast (:mod:`.raycast`) by a
simulated Velodyne HDL-64E (:mod:`.sensor`) into a frame of points, boxes and per-object
visibility (:mod:`.frame`); :mod:`.kitti_writer` writes frames as KITTI files and
:mod:`.dataset` writes a whole dataset. ``GENERATOR_VERSION`` changes whenever the same seed
would give different files; it is recorded in ``dataset.json`` and in models trained on the data.
Every version stays available (:mod:`.versions`): ``generator_settings("1")`` rebuilds v1 data
byte for byte; ``GENERATOR_VERSION`` is the default of ``tools/make_synthetic.py`` and of the INT8
calibration frames: the version of the shipped demo model's data (v6: v5, with each frame's
far cars drawn with or without their glass-house and roof returns, and the cars near the view's edge further out).
"""

from __future__ import annotations

GENERATOR_VERSION = "6"

from .frame import SyntheticFrame, generate_frame  # noqa: E402
from .scene import CLASS_NAMES, Scene, SceneConfig, generate_scene  # noqa: E402
from .returns import ReturnModel  # noqa: E402
from .sensor import SensorConfig, hdl64e_elevations  # noqa: E402
from .versions import GENERATOR_VERSIONS, GeneratorSettings, generator_settings  # noqa: E402

__all__ = [
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "GENERATOR_VERSIONS",
    "GeneratorSettings",
    "ReturnModel",
    "Scene",
    "SceneConfig",
    "SensorConfig",
    "SyntheticFrame",
    "generate_frame",
    "generate_scene",
    "generator_settings",
    "hdl64e_elevations",
]
