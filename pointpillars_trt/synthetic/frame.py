"""One synthetic LiDAR frame: scene -> ray cast -> sensor effects -> points and object stats.

Sensor effects applied to the cast ranges: Gaussian range noise, random dropouts, a per-material
extra loss (glass, foliage, fences, spokes), and a detection probability that falls with
``reflectivity * cos(incidence)^2 / range^2`` (dark, grazing, far returns fade). Intensity is the
surface reflectivity scaled by ``(1 + cos(incidence)) / 2``, with multiplicative noise, clipped to [0, 1]
and quantised to 0.01 as KITTI's. Generator v2 adds (:mod:`.returns`, :class:`SensorConfig`) glossy
vehicle paint, the intensity's range fall-off and floor, foliage penetration, spurious returns,
the unit's uneven beam elevations, rotation noise and beam divergence; its extra draws come after
v1's (or from a separate generator), so a v1 frame is unchanged.

Frame ``index`` of dataset ``seed`` is drawn from ``numpy.random.SeedSequence([seed, index])``:
frames are independent of each other and of how they are distributed over workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import returns as ret
from .raycast import ELLIPSOID, NUM_GROUND_ZONES, cast
from .returns import ReturnModel
from .scene import Scene, SceneConfig, generate_scene
from .sensor import SensorConfig


@dataclass(frozen=True)
class SyntheticFrame:
    """A generated frame.

    * ``points``: ``[N, 4]`` float32 ``(x, y, z, intensity)`` in the LiDAR frame, ordered by beam
      (top beam first) then azimuth.
    * ``boxes``: ``[K, 7]`` float64 LiDAR boxes ``(x, y, z_center, l, w, h, yaw)`` of all objects
      (inside and outside the camera view).
    * ``names``: ``K`` class names.
    * ``num_points``: ``[K]`` int64 returns of each object that lie inside its box.
    * ``would_hit``: ``[K]`` int64 rays that hit the object when everything else is ignored.
    * ``visible_hits``: ``[K]`` int64 rays whose nearest hit is the object (before dropouts).
    * ``point_object``: ``[N]`` int32 object index of each point, -1 for background and ground.
    * ``scene``: the scene that was cast.
    """

    points: np.ndarray
    point_object: np.ndarray
    boxes: np.ndarray
    names: tuple[str, ...]
    num_points: np.ndarray
    would_hit: np.ndarray
    visible_hits: np.ndarray
    scene: Scene

    @property
    def occluded_fraction(self) -> np.ndarray:
        """``[K]`` float64 fraction of the object's rays blocked by nearer geometry
        (``1 - visible_hits / would_hit``; 1.0 where no ray would reach it)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = 1.0 - self.visible_hits / self.would_hit
        return np.where(self.would_hit > 0, np.clip(frac, 0.0, 1.0), 1.0)


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of frame ``index`` of dataset ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``[N, K]`` bool: point n (``[N, >=3]`` LiDAR) lies inside box k (``[K, 7]``, yaw about z)."""
    pts = np.asarray(points, dtype=np.float64)[:, None, :3]
    b = np.asarray(boxes, dtype=np.float64)[None]
    d = pts - b[..., 0:3]
    c, s = np.cos(b[..., 6]), np.sin(b[..., 6])
    lx = c * d[..., 0] + s * d[..., 1]
    ly = -s * d[..., 0] + c * d[..., 1]
    return (np.abs(lx) <= b[..., 3] / 2) & (np.abs(ly) <= b[..., 4] / 2) & (np.abs(d[..., 2]) <= b[..., 5] / 2)


def _ground_reflectivity(rng: np.random.Generator) -> np.ndarray:
    """Reflectivity of the ground zones (asphalt, marking, curb, sidewalk, verge) for one frame."""
    refl = np.array(
        [rng.uniform(0.35, 0.6), rng.uniform(0.8, 1.0), rng.uniform(0.45, 0.65), rng.uniform(0.4, 0.65), rng.uniform(0.25, 0.5)]
    )
    assert refl.shape[0] == NUM_GROUND_ZONES
    return refl


def mixed_settings(rng: np.random.Generator, sensor: SensorConfig, returns: ReturnModel) -> tuple[SensorConfig, ReturnModel]:
    """One frame's draw of a mixed sensor family: detection gain times ``U(0.5, 2)``, random dropout
    ``U(0, 0.08)``, range noise times ``U(0.75, 1.5)`` and :meth:`ReturnModel.varied`."""
    sensor = dataclasses.replace(
        sensor, detect_gain=sensor.detect_gain * float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
        dropout=float(rng.uniform(0.0, 0.08)), range_noise=sensor.range_noise * float(rng.uniform(0.75, 1.5)),
    )
    return sensor, returns.varied(rng)


def height_share(z: np.ndarray, obj: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``[N]`` height of returns ``z [N]`` above the bottom of their object's box over the box height
    (``obj [N]`` index into ``boxes [B, 7]``, centre z; -1 for no object: -1.0)."""
    if len(boxes) == 0:
        return np.full(len(z), -1.0)
    b = boxes[np.maximum(obj, 0)]
    share = (z - (b[:, 2] - 0.5 * b[:, 5])) / np.maximum(b[:, 5], 1e-6)
    return np.where(obj >= 0, share, -1.0)


def detect_probability(refl, incidence_cos, noisy: np.ndarray, sensor: SensorConfig, keep=1.0) -> np.ndarray:
    """``[N]`` chance that a return is detected: ``(1 - dropout) * keep * (1 - exp(-gain * snr))`` with
    ``snr = refl * incidence_cos**2 * (50 m / range)**2`` (``refl``, ``incidence_cos``, ``keep``: ``[N]``
    or scalars; ``noisy [N]`` the measured range, at least 1 m in the formula)."""
    snr = refl * incidence_cos**2 * (50.0 / np.maximum(noisy, 1.0)) ** 2
    return (1.0 - sensor.dropout) * keep * (1.0 - np.exp(-sensor.detect_gain * snr))


def _cab_fade(p_detect: np.ndarray, returns: ReturnModel, scene, obj: np.ndarray, z: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """``p_detect [N]`` times :func:`.returns.cab_keep` of the returns (object ``obj [N]``, height
    ``z [N]``, range ``ranges [N]``); ``p_detect`` itself when the model has no cab fade (v1-v3)."""
    if returns.cab_fade_m <= 0:
        return p_detect
    car = (np.asarray(scene.names + ("",)) == "Car")[obj]
    return p_detect * ret.cab_keep(height_share(z, obj, scene.boxes), ranges, car, returns)


def _rough_ground(p_detect, returns: ReturnModel, sensor: SensorConfig, seed: int, index: int, ground: np.ndarray,
                  beam: np.ndarray, col: np.ndarray, refl: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """``p_detect [N]`` with the rough road of v5 (:func:`.returns.rough_ground_detect`) for the ground
    returns (``ground [N]`` bool; laser ``beam``, column ``col``, reflectivity ``refl``, noisy range ``noisy``,
    all ``[N]``); the patches are drawn from a generator of their own (``[seed, index, 2]``), so the other
    draws are v4's. ``p_detect`` itself when the model has no roughness (v1-v4)."""
    if returns.ground_roughness <= 0:
        return p_detect
    cell_cols = max(1, int(round(np.radians(returns.ground_patch_deg) / sensor.azimuth_step)))
    n_cells = sensor.num_azimuth // cell_cols + 1
    on = np.random.default_rng([int(seed), int(index), 2]).random((int(beam.max()) + 1 if len(beam) else 1, n_cells))
    patch_on = ground & (on[beam, col // cell_cols] < returns.ground_patch_share)
    p_rough = detect_probability(refl, returns.ground_roughness, noisy, sensor)
    return ret.rough_ground_detect(p_detect, p_rough, patch_on)


def frame_settings(seed: int, index: int, sensor: SensorConfig, returns: ReturnModel) -> tuple[SensorConfig, ReturnModel]:
    """The sensor and return settings of frame ``index`` of dataset ``seed``: :func:`mixed_settings` when
    ``returns.mix_spread > 0`` (generator ``[seed, index, 1]``), then :func:`.returns.frame_cab_fade` when
    ``returns.cab_share < 1`` (``[seed, index, 3]``); the inputs themselves otherwise."""
    if returns.mix_spread > 0:
        sensor, returns = mixed_settings(np.random.default_rng([int(seed), int(index), 1]), sensor, returns)
    if returns.cab_share < 1:
        returns = ret.frame_cab_fade(returns, float(np.random.default_rng([int(seed), int(index), 3]).random()))
    return sensor, returns


def generate_frame(
    seed: int,
    index: int,
    sensor: SensorConfig = SensorConfig(),
    scene_config: SceneConfig = SceneConfig(),
    returns: ReturnModel = ReturnModel(),
) -> SyntheticFrame:
    """Generate frame ``index`` of dataset ``seed`` (deterministic; see the module docstring).
    With ``returns.mix_spread > 0`` the frame's own sensor and return settings are drawn from a
    generator of their own, so the scene is the one the unmixed settings give; so is the draw of the cab fade when
    ``returns.cab_share < 1`` (``[seed, index, 3]``, :func:`.returns.frame_cab_fade`)."""
    sensor, returns = frame_settings(seed, index, sensor, returns)
    rng = frame_rng(seed, index)
    scene = generate_scene(rng, scene_config, sensor.mount_height)
    ground_refl = _ground_reflectivity(rng)
    az0 = float(rng.uniform(0.0, sensor.azimuth_step))
    el = sensor.elevations_rad()
    num_obj = len(scene.names)
    res = cast(scene.primitives, scene.ground, el, sensor.num_azimuth, az0, sensor.max_range, num_obj)

    beam, col = np.nonzero(np.isfinite(res.range))
    rng_m = res.range[beam, col]
    hit = res.hit[beam, col]
    cos_inc = res.cos_incidence[beam, col].astype(np.float64)
    prims = scene.primitives
    is_prim = hit >= 0
    prim_idx = np.where(is_prim, hit, 0)
    zone = np.where(is_prim, 0, -hit - 2)
    refl = np.where(is_prim, prims.reflectivity[prim_idx], ground_refl[zone])
    extra_drop = np.where(is_prim, prims.dropout[prim_idx], 0.0)
    obj = np.where(is_prim, scene.primitive_object[prim_idx], -1)

    n = rng_m.shape[0]
    # surface texture: +-15 % reflectivity variation per return
    refl = np.clip(refl * (1.0 + 0.15 * rng.standard_normal(n)), 0.0, 1.0)
    noisy = rng_m + sensor.range_noise * rng.standard_normal(n)
    p_detect = detect_probability(refl, np.maximum(cos_inc, 0.01), noisy, sensor, 1.0 - extra_drop)
    p_detect = _cab_fade(p_detect, returns, scene, obj, np.sin(el[beam]) * rng_m, noisy)
    p_detect = _rough_ground(p_detect, returns, sensor, seed, index, ~is_prim, beam, col, refl, noisy)
    keep = (rng.random(n) < p_detect) & (noisy > 0.5) & (noisy <= sensor.max_range)

    glossy = vehicle = np.zeros(n, dtype=bool)
    if returns.vehicle_gloss > 0 or returns.vehicle_falloff_m > 0:
        vehicle = np.isin(np.asarray(scene.names + ("",)), ret.VEHICLE_CLASSES)[obj]
    if returns.vehicle_gloss > 0:
        glossy = vehicle & (refl < ret.RETRO_REFLECTIVITY)
    noise = sensor.intensity_noise * rng.standard_normal(n)
    intensity = ret.intensity(refl, cos_inc, noisy, glossy, noise, returns, vehicle)

    foliage = is_prim & (prims.kind[prim_idx] == ELLIPSOID) & (extra_drop > 0) & (obj < 0)
    noisy = noisy + ret.foliage_depth(rng, foliage, returns)
    d_az, d_el = sensor.direction_noise(rng, n)
    beam_el = el[beam] + d_el
    az = az0 + col * sensor.azimuth_step + d_az
    ce = np.cos(beam_el)
    xyz = np.stack([ce * np.cos(az), ce * np.sin(az), np.sin(beam_el)], axis=1) * noisy[:, None]
    points = np.concatenate([xyz, intensity[:, None]], axis=1)[keep].astype(np.float32)
    obj_kept = obj[keep]
    spurious = ret.spurious_points(rng, returns, el, sensor.max_range)
    if len(spurious):
        points = np.concatenate([points, spurious])
        obj_kept = np.concatenate([obj_kept, np.full(len(spurious), -1, obj_kept.dtype)])

    visible_hits = np.bincount(obj[obj >= 0], minlength=num_obj).astype(np.int64)[:num_obj]
    num_points = np.zeros(num_obj, dtype=np.int64)
    for k in range(num_obj):
        mine = points[obj_kept == k]
        if len(mine):
            num_points[k] = int(points_in_boxes(mine, scene.boxes[k : k + 1]).sum())
    return SyntheticFrame(
        points=points,
        point_object=obj_kept.astype(np.int32),
        boxes=scene.boxes,
        names=scene.names,
        num_points=num_points,
        would_hit=res.would_hit.copy(),
        visible_hits=visible_hits,
        scene=scene,
    )
