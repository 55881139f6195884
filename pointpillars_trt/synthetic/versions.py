"""Generator versions: the sensor, scene, return model and calibration each version uses.

* ``"1"``: the first simulator (the defaults of :class:`SensorConfig`, :class:`SceneConfig` and
  :class:`ReturnModel`; KITTI frame 000134's calibration). Kept so its datasets can be rebuilt
  byte for byte.
* ``"2"``: KITTI-like returns and scenes (:func:`.returns.kitti_like_returns`,
  :func:`.scene.kitti_like_scene`), the HDL-64E unit's uneven elevations (0.04 degree per-laser
  offsets), 0.01 degree rotation noise and 2 mrad beam divergence, and KITTI frame 000002's
  calibration (none of the hold-out frames' data). ``mix > 0`` makes every frame draw its own
  sensor and return settings (:func:`.frame.mixed_settings`).
* ``"3"``: v2's sensor and calibration with more far and partly seen cars
  (:func:`.scene.far_cars_scene`) and vehicle returns that fade later with range
  (:func:`.returns.far_vehicle_returns`); ``mix`` as in v2.
* ``"4"``: v3's scenes, sensor and calibration; the upper body (glass house, roof) of cars fades out
  of detection beyond ~30 m (:func:`.returns.cab_car_returns`); ``mix`` as in v2.
* ``"5"``: v4, and the far road returns in patches as a rough surface does (:func:`.returns.ground_patch_returns`):
  the isolated arcs of road returns 40-70 m away that the v4 models took for cars; ``mix`` as in v2.
* ``"6"``: v5, and each frame draws whether its far cars lose their glass-house and roof returns (v4's cab fade,
  half of the frames, :func:`.returns.mixed_cab_returns`) or keep them (v3's); the cars near the view's edge are
  drawn further out, so the crop cuts more (:func:`.scene.fov_edge_scene`). With v5's scene a v6 frame is its v5
  frame or its v5 frame with v3's cars; ``mix`` as in v2.
* ``"7"``: v6 with twice as steep grades (2 % std, up to 5 %), and 1-3 cars per scene 28-42 m away crossing the line of
  sight, partly hidden behind pedestrians and cyclists (:func:`.scene.screened_cars_scene`); ``mix`` as in v2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import DatasetError
from ..io.kitti import Calibration
from .frame import SyntheticFrame, generate_frame
from .kitti_writer import kitti_calibration, kitti_calibration_000002
from .returns import ReturnModel, cab_car_returns, far_vehicle_returns, ground_patch_returns, kitti_like_returns, mixed_cab_returns
from .scene import SceneConfig, far_cars_scene, fov_edge_scene, kitti_like_scene, screened_cars_scene
from .sensor import SensorConfig

GENERATOR_VERSIONS = ("1", "2", "3", "4", "5", "6", "7")


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything a frame of one generator version depends on besides ``(seed, index)``."""

    version: str
    sensor: SensorConfig
    scene: SceneConfig
    returns: ReturnModel
    calibration: Callable[[], Calibration]

    def frame(self, seed: int, index: int) -> SyntheticFrame:
        """Frame ``index`` of dataset ``seed`` with these settings (:func:`.frame.generate_frame`)."""
        return generate_frame(seed, index, self.sensor, self.scene, self.returns)


def generator_settings(version: str, mix: float = 0.0) -> GeneratorSettings:
    """The settings of generator ``version`` (``"1"`` to ``"7"``); ``mix`` (v2 and later) is the
    per-frame spread of the sensor and return settings (0: one sensor)."""
    if version not in GENERATOR_VERSIONS:
        raise DatasetError(f"generator version must be one of {', '.join(GENERATOR_VERSIONS)}, got {version!r}")
    if not 0.0 <= mix < 1.0:
        raise DatasetError(f"generator mix must be in [0, 1), got {mix}")
    if version == "1":
        if mix:
            raise DatasetError("generator version 1 has no mix (use version 2 or later)")
        return GeneratorSettings("1", SensorConfig(), SceneConfig(), ReturnModel(), kitti_calibration)
    sensor = SensorConfig(elevation_jitter_deg=0.04, azimuth_noise_deg=0.01, beam_divergence_mrad=2.0)
    if version == "2":
        return GeneratorSettings("2", sensor, kitti_like_scene(), kitti_like_returns(mix), kitti_calibration_000002)
    if version == "3":
        return GeneratorSettings("3", sensor, far_cars_scene(), far_vehicle_returns(mix), kitti_calibration_000002)
    if version == "4":
        return GeneratorSettings("4", sensor, far_cars_scene(), cab_car_returns(mix), kitti_calibration_000002)
    if version == "5":
        return GeneratorSettings("5", sensor, far_cars_scene(), ground_patch_returns(mix), kitti_calibration_000002)
    if version == "6":
        return GeneratorSettings("6", sensor, fov_edge_scene(), mixed_cab_returns(mix), kitti_calibration_000002)
    return GeneratorSettings("7", sensor, screened_cars_scene(), mixed_cab_returns(mix), kitti_calibration_000002)
