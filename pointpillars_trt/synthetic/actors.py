"""Labelled objects and vehicles of a scene: parked and driving cars, pedestrians, cyclists (and in
generator v2 vans, trucks, buses and trams as unlabelled-class negatives), placed on a :class:`Layout`."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import shapes
from .layout import Layout, normal_clip


# --- cars: parked, in lanes, on the cross street and at odd angles -------------------------------


def add_parked_cars(lay: Layout) -> None:
    """Cars along each parking lane, mostly with the flow, gaps between them, none at the cross street."""
    rng, cfg = lay.rng, lay.config
    u_lo, u_hi = cfg.object_u_range
    for v_min, v_max, side in lay.street.parking:
        u = u_lo + float(rng.uniform(0, 6))
        while u < u_hi:
            name, make, dims = "Car", shapes.car, lay.car_dims()
            if cfg.parked_van_probability > 0 and rng.random() < cfg.parked_van_probability:
                name, make, dims = "Van", shapes.large_vehicle, shapes.large_vehicle_dims(rng, "Van")
            if rng.random() < cfg.parked_car_probability and not lay.in_gap(u, dims[0]):
                yaw = lay.along_road(side >= 0, 0.04)
                if rng.random() < 0.15:
                    yaw += math.pi  # parked against the flow
                v = (v_min + v_max) / 2 + float(rng.normal(0, 0.12))
                lay.place(name, make, dims, u + dims[0] / 2, v, yaw, 0.15)
            u += dims[0] + float(rng.uniform(*cfg.parked_gap))


def add_lane_cars(lay: Layout) -> None:
    """``config.lane_cars`` cars driving in the lanes (three tries each)."""
    rng, cfg = lay.rng, lay.config
    n_lane = int(rng.integers(cfg.lane_cars[0], cfg.lane_cars[1] + 1))
    _add_in_lanes(lay, n_lane, lambda: ("Car", shapes.car, lay.car_dims()), cfg.object_u_range, 0.8)


def _add_in_lanes(lay: Layout, count: int, pick, u_range: tuple[float, float], margin: float) -> None:
    """Up to ``count`` vehicles in random lanes (three tries each); ``pick()`` gives ``(name, parts_fn, dims)``."""
    rng = lay.rng
    for _ in range(count * 3):
        if count <= 0:
            break
        v_min, v_max, direction = lay.random_lane()
        name, make, dims = pick()
        u = float(rng.uniform(*u_range))
        yaw = lay.along_road(direction < 0, 0.03)
        v = (v_min + v_max) / 2 + float(rng.normal(0, 0.2))
        if lay.place(name, make, dims, u, v, yaw, margin):
            count -= 1


def add_large_vehicles(lay: Layout) -> None:
    """``config.large_vehicles`` vans, trucks, buses and trams driving in the lanes (none in v1)."""
    rng, cfg = lay.rng, lay.config
    if cfg.large_vehicles[1] <= 0:
        return

    def pick():
        name = str(rng.choice(shapes.LARGE_VEHICLES, p=shapes.LARGE_VEHICLE_SHARES))
        return name, shapes.large_vehicle, shapes.large_vehicle_dims(rng, name)

    _add_in_lanes(lay, int(rng.integers(cfg.large_vehicles[0], cfg.large_vehicles[1] + 1)), pick, cfg.object_u_range, 1.0)


def add_far_cars(lay: Layout) -> None:
    """``config.far_cars`` cars driving 30 to 70 m ahead (none in v1)."""
    rng, cfg = lay.rng, lay.config
    if cfg.far_cars[1] <= 0:
        return
    n = int(rng.integers(cfg.far_cars[0], cfg.far_cars[1] + 1))
    _add_in_lanes(lay, n, lambda: ("Car", shapes.car, lay.car_dims()), (30.0, 70.0), 0.8)


def add_edge_cars(lay: Layout) -> None:
    """``config.edge_cars`` cars 20-40 m from the sensor, ``config.edge_car_azimuths_deg`` (v3-v5: 28-42) degrees off
    its x axis (the camera view ends near 40 degrees, so the crop cuts some); none in v1 and v2."""
    _add_around(lay, lay.config.edge_cars, (20.0, 40.0), lay.config.edge_car_azimuths_deg)


def add_open_far_cars(lay: Layout) -> None:
    """``config.open_far_cars`` cars 40-70 m away, up to 35 degrees off the x axis, anywhere the
    ground is free (cross and side streets, lots, verges); none in v1 and v2."""
    _add_around(lay, lay.config.open_far_cars, (40.0, 70.0), (0.0, 35.0))


def _add_around(lay: Layout, counts: tuple[int, int], ranges: tuple[float, float], azimuths_deg: tuple[float, float]) -> None:
    """``counts`` (inclusive range) cars at a BEV range in ``ranges`` (m) and ``azimuths_deg`` off the
    x axis to either side, along the road, across it or at any yaw; five tries each, placed only
    where the ground is free. No draws when ``counts`` is ``(0, 0)``."""
    rng = lay.rng
    if counts[1] <= 0:
        return
    count = int(rng.integers(counts[0], counts[1] + 1))
    for _ in range(count * 5):
        if count <= 0:
            break
        r, az = float(rng.uniform(*ranges)), math.radians(float(rng.uniform(*azimuths_deg))) * lay.random_side()
        u, v = (float(a) for a in lay.ground.to_road(r * math.cos(az), r * math.sin(az)))
        how = rng.random()
        yaw = lay.along_road(rng.random() < 0.5, 0.05) if how < 0.5 else (
            lay.across_road(0.1) if how < 0.8 else float(rng.uniform(-math.pi, math.pi)))
        if lay.place("Car", shapes.car, lay.car_dims(), u, v, yaw, 0.3):
            count -= 1


def add_screened_cars(lay: Layout) -> None:
    """``config.screened_cars`` cars crossing the line of sight ``config.screened_car_ranges`` (m) away, up to 30
    degrees off the x axis, each with one or two pedestrians or cyclists 3-12 m nearer the sensor on lines of sight
    to its body, so the car is seen side-on, sparse and partly hidden (none before v7; no draws at ``(0, 0)``).
    A screen that does not fit is left out; the car stays."""
    rng, cfg = lay.rng, lay.config
    if cfg.screened_cars[1] <= 0:
        return
    count = int(rng.integers(cfg.screened_cars[0], cfg.screened_cars[1] + 1))
    for _ in range(count * 5):
        if count <= 0:
            break
        r, az = float(rng.uniform(*cfg.screened_car_ranges)), math.radians(float(rng.uniform(0.0, 30.0))) * lay.random_side()
        x, y = r * math.cos(az), r * math.sin(az)
        u, v = (float(a) for a in lay.ground.to_road(x, y))
        yaw = az + math.pi / 2 * float(rng.choice([-1, 1])) + float(rng.normal(0, 0.15))
        dims = lay.car_dims()
        if not lay.place("Car", shapes.car, dims, u, v, yaw, 0.3):
            continue
        count -= 1
        for _ in range(int(rng.choice([1, 2, 2]))):
            along = float(rng.uniform(-0.4, 0.4)) * dims[0]  # a point of the car's body to hide
            px, py = x + along * math.cos(yaw), y + along * math.sin(yaw)
            k = (math.hypot(px, py) - float(rng.uniform(3.0, 12.0))) / math.hypot(px, py)
            su, sv = (float(a) for a in lay.ground.to_road(k * px, k * py))
            if rng.random() < 0.5:
                lay.place("Pedestrian", shapes.pedestrian, pedestrian_dims(lay), su, sv, float(rng.uniform(-math.pi, math.pi)), 0.1)
            else:
                lay.place("Cyclist", shapes.cyclist, cyclist_dims(lay), su, sv, float(rng.uniform(-math.pi, math.pi)), 0.2)


def add_cross_cars(lay: Layout) -> None:
    """``config.cross_cars`` cars driving on the cross street."""
    rng, (lo, hi) = lay.rng, lay.config.cross_cars
    for _ in range(int(rng.integers(lo, hi + 1))):
        dims = lay.car_dims()
        u = float(rng.uniform(lay.gap[0] + 1.5, lay.gap[1] - 1.5))
        v = float(rng.uniform(-40.0, 40.0))
        lay.place("Car", shapes.car, dims, u, v, lay.across_road(0.05), 0.6)


def add_random_yaw_cars(lay: Layout) -> None:
    """``config.random_yaw_cars`` cars on the road at any yaw (turning, parking manoeuvres)."""
    rng, cfg, st = lay.rng, lay.config, lay.street
    u_lo, u_hi = cfg.object_u_range
    for _ in range(int(rng.integers(cfg.random_yaw_cars[0], cfg.random_yaw_cars[1] + 1))):
        dims = lay.car_dims()
        u = float(rng.uniform(u_lo, u_hi))
        v = float(rng.uniform(st.v_right + 1.0, st.v_left - 1.0))
        lay.place("Car", shapes.car, dims, u, v, float(rng.uniform(-math.pi, math.pi)), 0.4)


# --- pedestrians and cyclists --------------------------------------------------------------------


def add_pedestrians(lay: Layout) -> None:
    """``config.pedestrians`` pedestrians: on the sidewalks (alone or in groups) and crossing."""
    rng, cfg, st = lay.rng, lay.config, lay.street
    u_lo, u_hi = cfg.object_u_range

    def attempt() -> int:
        if rng.random() < 0.8:
            v = lay.sidewalk_v(lay.random_side(), 0.4, 0.3, 0.5)
            yaw = lay.along_road(rng.random() >= 0.5, 0.3)
        else:
            v = float(rng.uniform(st.v_right, st.v_left))
            yaw = lay.across_road(0.2)
        if rng.random() < 0.25:
            yaw = float(rng.uniform(-math.pi, math.pi))  # standing, looking anywhere
        u = float(rng.uniform(u_lo, u_hi))
        return _add_pedestrian_group(lay, u, v, yaw)

    _place_up_to(rng, cfg.pedestrians, attempt)


def _place_up_to(rng: np.random.Generator, count_range: tuple[int, int], attempt: Callable[[], int]) -> None:
    """Draw a count in ``count_range`` (inclusive) and call ``attempt()`` (which returns how many it
    placed) until that many are placed or 4 attempts per wanted object were made."""
    wanted = int(rng.integers(count_range[0], count_range[1] + 1))
    placed = 0
    for _ in range(wanted * 4):
        if placed >= wanted:
            break
        placed += attempt()


def pedestrian_dims(lay: Layout) -> tuple[float, float, float]:
    """``(l, w, h)`` of a pedestrian: 0.8 x 0.6 m (std 0.1, 0.06, clipped), the config's height."""
    rng = lay.rng
    return (float(np.clip(rng.normal(0.8, 0.1), 0.5, 1.05)), float(np.clip(rng.normal(0.6, 0.06), 0.45, 0.75)),
            normal_clip(rng, lay.config.ped_height))


def cyclist_dims(lay: Layout) -> tuple[float, float, float]:
    """``(l, w, h)`` of a cyclist: the config's length and height, 0.6 m wide (std 0.05, clipped)."""
    rng, cfg = lay.rng, lay.config
    return (normal_clip(rng, cfg.cyclist_length), float(np.clip(rng.normal(0.6, 0.05), 0.45, 0.75)),
            normal_clip(rng, cfg.cyclist_height))


def _add_pedestrian_group(lay: Layout, u: float, v: float, yaw: float) -> int:
    """One to three pedestrians walking together from ``(u, v)`` heading ``yaw``; returns how many were placed."""
    rng = lay.rng
    placed = 0
    for g in range(int(rng.choice([1, 1, 1, 2, 3]))):
        dims = pedestrian_dims(lay)
        du, dv = (g * float(rng.uniform(0.8, 1.3)), float(rng.normal(0, 0.3))) if g else (0.0, 0.0)
        if lay.place("Pedestrian", shapes.pedestrian, dims, u + du, v + dv, yaw + float(rng.normal(0, 0.1)), 0.1):
            placed += 1
    return placed


def add_cyclists(lay: Layout) -> None:
    """``config.cyclists`` cyclists: near the right edge of a lane, on the sidewalks, or anywhere on the road."""
    rng, cfg = lay.rng, lay.config
    u_lo, u_hi = cfg.object_u_range

    def attempt() -> int:
        dims = cyclist_dims(lay)
        v, yaw = _cyclist_pose(lay)
        u = float(rng.uniform(u_lo, u_hi))
        return int(bool(lay.place("Cyclist", shapes.cyclist, dims, u, v, yaw, 0.3)))

    _place_up_to(rng, cfg.cyclists, attempt)


def _cyclist_pose(lay: Layout) -> tuple[float, float]:
    """``(v, yaw)`` of a cyclist: 60 % riding near a lane's right edge, 25 % on a sidewalk, else anywhere."""
    rng, st = lay.rng, lay.street
    r = rng.random()
    if r < 0.6:
        v_min, v_max, direction = lay.random_lane()
        v = (v_min + 0.8) if direction > 0 else (v_max - 0.8)
        v += float(rng.normal(0, 0.25))
        return v, lay.along_road(direction < 0, 0.08)
    if r < 0.85:
        v = lay.sidewalk_v(lay.random_side(), 0.5, 0.5, 0.6)
        return v, lay.along_road(rng.random() >= 0.5, 0.15)
    return float(rng.uniform(st.v_right, st.v_left)), float(rng.uniform(-math.pi, math.pi))
