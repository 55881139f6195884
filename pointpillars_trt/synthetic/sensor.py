"""The simulated spinning LiDAR, modelled on KITTI's Velodyne HDL-64E.

The sensor sits at the origin of the LiDAR frame (x forward, y left, z up), ``mount_height``
metres above the ground directly below it. It fires ``len(elevations)`` beams at each of
``num_azimuth`` equally spaced azimuths per revolution; a ray is ``(beam, column)``.

The HDL-64E has two blocks of 32 lasers: the upper block spans +2.0 .. -8.33 degrees at about
1/3 degree spacing, the lower block -8.83 .. -24.9 degrees at about 1/2 degree spacing, so the
beams are denser near the horizon. ``hdl64e_elevations`` reproduces that layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def hdl64e_elevations() -> tuple[float, ...]:
    """64 beam elevations in degrees, descending from +2.0 to -24.9 (two 32-laser blocks)."""
    upper = np.linspace(2.0, -8.33, 32)
    lower = np.linspace(-8.83, -24.9, 32)
    return tuple(float(round(v, 4)) for v in np.concatenate([upper, lower]))


@dataclass(frozen=True)
class SensorConfig:
    """Geometry and noise of the simulated LiDAR.

    * ``elevations_deg``: beam elevations, strictly descending (degrees).
    * ``num_azimuth``: columns per revolution. 2000 (0.18 degree steps) is what KITTI's frames
      show: consecutive returns of one ring in ``../shared/data/kitti_frames`` are 0.18 degrees
      apart (median), the HDL-64E at 10 Hz; 4000 gives the 0.09 degree steps of its 5 Hz mode.
    * ``mount_height``: sensor height above the ground below it (m); ground is at ``z = -mount_height``.
    * ``max_range``: returns farther than this are lost (m).
    * ``range_noise``: standard deviation of the Gaussian range error (m).
    * ``dropout``: probability that any return is lost at random.
    * ``detect_gain``: returns are detected with probability ``1 - exp(-detect_gain * snr)``
      where ``snr = reflectivity * cos(incidence)^2 * (50 m / range)^2``: grazing, dark and far
      surfaces fade as on the real sensor (KITTI's ground thins out beyond ~30 m).
    * ``intensity_noise``: relative (multiplicative) standard deviation of the intensity.
    * ``elevation_jitter_deg``: standard deviation of each laser's fixed offset from its nominal
      elevation (the uneven spacing of a real unit's calibration; drawn once from a fixed seed, so
      every frame sees the same unit). 0 (generator v1): the nominal layout.
    * ``azimuth_noise_deg``: standard deviation of the per-return rotation (encoder) error.
    * ``beam_divergence_mrad``: full beam divergence; a return's direction is jittered uniformly
      within the beam's cone (no mixed-pixel edges are modelled).
    """

    elevations_deg: tuple[float, ...] = field(default_factory=hdl64e_elevations)
    num_azimuth: int = 2000
    mount_height: float = 1.73
    max_range: float = 120.0
    range_noise: float = 0.02
    dropout: float = 0.02
    detect_gain: float = 150.0
    intensity_noise: float = 0.1
    elevation_jitter_deg: float = 0.0
    azimuth_noise_deg: float = 0.0
    beam_divergence_mrad: float = 0.0

    def __post_init__(self) -> None:
        el = np.asarray(self.elevations_deg, dtype=np.float64)
        if el.ndim != 1 or el.size < 1 or np.any(np.diff(el) >= 0):
            raise ValueError("SensorConfig.elevations_deg must be a non-empty, strictly descending sequence")
        if self.num_azimuth < 1 or self.max_range <= 0 or self.mount_height <= 0:
            raise ValueError("SensorConfig: num_azimuth, max_range and mount_height must be positive")

    @property
    def num_beams(self) -> int:
        return len(self.elevations_deg)

    @property
    def azimuth_step(self) -> float:
        """Azimuth step between columns (radians)."""
        return 2.0 * np.pi / self.num_azimuth

    def elevations_rad(self) -> np.ndarray:
        """``[B]`` float64 beam elevations in radians (nominal plus the unit's fixed offsets)."""
        el = np.asarray(self.elevations_deg, dtype=np.float64)
        if self.elevation_jitter_deg > 0:
            el = el + np.random.default_rng(64).normal(0.0, self.elevation_jitter_deg, el.shape)
        return np.deg2rad(el)

    def direction_noise(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(d_azimuth [n], d_elevation [n])`` radians: per-return rotation noise and divergence jitter
        (zeros, and no draws, when both are off)."""
        if self.azimuth_noise_deg <= 0 and self.beam_divergence_mrad <= 0:
            return np.zeros(n), np.zeros(n)
        half = 0.5e-3 * self.beam_divergence_mrad
        d_az = np.deg2rad(self.azimuth_noise_deg) * rng.standard_normal(n) + rng.uniform(-half, half, n)
        return d_az, rng.uniform(-half, half, n)

    def azimuths_rad(self, start: float = 0.0) -> np.ndarray:
        """``[A]`` float64 column azimuths ``start + j * azimuth_step`` (radians, CCW from +x)."""
        return start + np.arange(self.num_azimuth, dtype=np.float64) * self.azimuth_step

    def ray_directions(self, start: float = 0.0) -> np.ndarray:
        """``[B, A, 3]`` float64 unit ray directions in the LiDAR frame."""
        el = self.elevations_rad()[:, None]
        az = self.azimuths_rad(start)[None, :]
        ce = np.cos(el)
        return np.stack(
            [ce * np.cos(az), ce * np.sin(az), np.broadcast_to(np.sin(el), (el.shape[0], az.shape[1]))], axis=-1
        )
