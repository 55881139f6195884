"""Procedural street scenes around the sensor.

A scene is a straight street through the sensor's position (the ego car drives in one of its
lanes), on a gently sloped ground: lanes with painted lines, optional parking lanes, curbs,
sidewalks, an optional cross street, and beyond the sidewalks building blocks, walls, fences or
vegetation. Street furniture (poles, signs, trees, bushes, bins, benches) lines the sidewalks.
Labelled objects (cars parked and in lanes, pedestrians on sidewalks and crossing, cyclists on
the road) are placed without overlapping anything, so occlusion and truncation arise from the
layout as on real roads.

All placement draws from one ``numpy.random.Generator``; the same generator state gives the
same scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import shapes
from .raycast import Ground, Primitives

CLASS_NAMES = ("Car", "Pedestrian", "Cyclist")


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the scene layout (lengths in metres).

    ``extent``: the street is built for ``|u| <= extent`` along the road. Objects are placed in
    ``object_u_range`` along the road (more ahead of the sensor, where the camera looks).
    Counts are drawn uniformly from the inclusive ranges.
    """

    extent: float = 110.0
    object_u_range: tuple[float, float] = (-50.0, 75.0)
    slope_sigma: float = 0.01
    road_angle_sigma: float = 0.04
    parked_car_probability: float = 0.55
    lane_cars: tuple[int, int] = (2, 8)
    random_yaw_cars: tuple[int, int] = (0, 3)
    pedestrians: tuple[int, int] = (4, 14)
    cyclists: tuple[int, int] = (2, 7)
    car_length: tuple[float, float] = (3.9, 0.4)
    car_width: tuple[float, float] = (1.6, 0.1)
    car_height: tuple[float, float] = (1.56, 0.1)
    ped_height: tuple[float, float] = (1.73, 0.1)
    cyclist_length: tuple[float, float] = (1.76, 0.1)
    cyclist_height: tuple[float, float] = (1.73, 0.08)


@dataclass(frozen=True)
class Scene:
    """A generated scene.

    * ``ground``: the analytic ground.
    * ``primitives``: all other geometry, grouped; groups with ``group_object >= 0`` are objects.
    * ``boxes``: ``[K, 7]`` float64 LiDAR boxes ``(x, y, z_center, l, w, h, yaw)`` of the objects.
    * ``names``: ``K`` class names.
    * ``primitive_object``: ``[P]`` int32 object index of each primitive, -1 for background.
    """

    ground: Ground
    primitives: Primitives
    boxes: np.ndarray
    names: tuple[str, ...]
    primitive_object: np.ndarray


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _rect_corners(x: float, y: float, l: float, w: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    loc = np.array([[l, w], [l, -w], [-l, -w], [-l, w]], dtype=np.float64) / 2
    return np.stack([x + c * loc[:, 0] - s * loc[:, 1], y + s * loc[:, 0] + c * loc[:, 1]], axis=1)


class _Occupancy:
    """BEV footprints already taken (oriented rectangles), with a separating-axis overlap test."""

    def __init__(self) -> None:
        self.rects: list[np.ndarray] = []
        self.centers: list[tuple[float, float, float]] = []

    def free(self, x: float, y: float, l: float, w: float, yaw: float, margin: float) -> bool:
        cand = _rect_corners(x, y, l + 2 * margin, w + 2 * margin, yaw)
        rad = 0.5 * math.hypot(l, w) + margin
        for (ox, oy, orad), other in zip(self.centers, self.rects):
            if math.hypot(ox - x, oy - y) > rad + orad:
                continue
            if _rects_overlap(cand, other):
                return False
        return True

    def take(self, x: float, y: float, l: float, w: float, yaw: float) -> None:
        self.rects.append(_rect_corners(x, y, l, w, yaw))
        self.centers.append((x, y, 0.5 * math.hypot(l, w)))


def _rects_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    for poly in (a, b):
        for k in range(4):
            edge = poly[(k + 1) % 4] - poly[k]
            axis = np.array([-edge[1], edge[0]])
            pa, pb = a @ axis, b @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


class _Builder:
    """Accumulates primitive groups and labelled objects."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.group_obj: list[int] = []
        self.group_box: list[tuple[float, ...]] = []
        self.boxes: list[tuple[float, ...]] = []
        self.names: list[str] = []

    def add_static(self, rows: np.ndarray, yaw: float) -> None:
        """A background group; its bounding box is computed from its primitives in the ``yaw`` frame."""
        c, s = math.cos(yaw), math.sin(yaw)
        lx = c * rows[:, 1] + s * rows[:, 2]
        ly = -s * rows[:, 1] + c * rows[:, 2]
        d = rows[:, 7] - yaw
        cd, sd = np.abs(np.cos(d)), np.abs(np.sin(d))
        ex = cd * rows[:, 4] + sd * rows[:, 5]
        ey = sd * rows[:, 4] + cd * rows[:, 5]
        lo = np.array([(lx - ex).min(), (ly - ey).min(), (rows[:, 3] - rows[:, 6]).min()])
        hi = np.array([(lx + ex).max(), (ly + ey).max(), (rows[:, 3] + rows[:, 6]).max()])
        mid = (lo + hi) / 2
        half = (hi - lo) / 2 + 0.01
        self.rows.append(rows)
        self.group_obj.append(-1)
        self.group_box.append((c * mid[0] - s * mid[1], s * mid[0] + c * mid[1], mid[2], *half, yaw))

    def add_object(self, name: str, parts: shapes.Parts, x: float, y: float, z: float, l: float, w: float, h: float, yaw: float) -> None:
        """A labelled object standing at ``(x, y)`` on height ``z`` (its box bottom)."""
        self.rows.append(parts.placed(x, y, z, yaw))
        self.group_obj.append(len(self.boxes))
        self.group_box.append((x, y, z + h / 2, l / 2 + 0.01, w / 2 + 0.01, h / 2 + 0.01, yaw))
        self.boxes.append((x, y, z + h / 2, l, w, h, _wrap(yaw)))
        self.names.append(name)

    def build(self) -> tuple[Primitives, np.ndarray, np.ndarray, tuple[str, ...]]:
        counts = [len(r) for r in self.rows]
        rows = np.concatenate(self.rows, axis=0) if self.rows else np.zeros((0, 10))
        start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        gbox = np.array(self.group_box, dtype=np.float64).reshape(-1, 7)
        prims = Primitives(
            kind=rows[:, 0].astype(np.int32),
            center=np.ascontiguousarray(rows[:, 1:4]),
            half=np.ascontiguousarray(rows[:, 4:7]),
            yaw=np.ascontiguousarray(rows[:, 7]),
            reflectivity=np.ascontiguousarray(rows[:, 8]),
            dropout=np.ascontiguousarray(rows[:, 9]),
            group_start=start,
            group_object=np.array(self.group_obj, dtype=np.int32),
            group_center=np.ascontiguousarray(gbox[:, 0:3]),
            group_half=np.ascontiguousarray(gbox[:, 3:6]),
            group_yaw=np.ascontiguousarray(gbox[:, 6]),
        )
        prim_obj = np.repeat(np.array(self.group_obj, dtype=np.int32), counts)
        boxes = np.array(self.boxes, dtype=np.float64).reshape(-1, 7)
        return prims, boxes, prim_obj, tuple(self.names)


@dataclass(frozen=True)
class _Street:
    """Cross-section of the street in road coordinates (v to the left, metres)."""

    lanes: tuple[tuple[float, float, int], ...]  # (v_min, v_max, direction +1 / -1)
    parking: tuple[tuple[float, float, int], ...]  # (v_min, v_max, side +1 left / -1 right)
    v_left: float
    v_right: float
    sidewalk_left: float
    sidewalk_right: float
    lines: tuple[tuple[float, bool], ...]

    def sidewalk(self, side: int) -> tuple[float, float]:
        """``(curb v, paved width)`` of the sidewalk on ``side`` (+1 left, -1 right)."""
        if side > 0:
            return self.v_left, self.sidewalk_left
        return self.v_right, self.sidewalk_right


def _street(rng: np.random.Generator) -> _Street:
    n_lanes = int(rng.choice([1, 2, 2, 3, 4], p=[0.1, 0.4, 0.2, 0.15, 0.15]))
    lane_w = float(rng.uniform(3.0, 3.8))
    one_way = n_lanes == 1 or rng.random() < 0.2
    n_fwd = n_lanes if one_way else max(1, n_lanes // 2)
    ego = int(rng.integers(0, n_fwd))  # ego lane among the forward lanes (counted from the right)
    offset = float(rng.normal(0.0, 0.25))
    v0 = -(ego + 0.5) * lane_w + offset  # right edge of the rightmost lane
    lanes, lines = [], []
    for k in range(n_lanes):
        lanes.append((v0 + k * lane_w, v0 + (k + 1) * lane_w, 1 if k < n_fwd else -1))
        if k > 0:
            centre_line = k == n_fwd
            lines.append((v0 + k * lane_w, not centre_line))
    v_right, v_left = v0, v0 + n_lanes * lane_w
    parking = []
    for side in (-1, 1):
        if rng.random() < 0.65:
            pw = float(rng.uniform(2.1, 2.6))
            if side < 0:
                parking.append((v_right - pw, v_right, -1))
                lines.append((v_right, False))
                v_right -= pw
            else:
                parking.append((v_left, v_left + pw, 1))
                lines.append((v_left, False))
                v_left += pw
    return _Street(
        lanes=tuple(lanes),
        parking=tuple(parking),
        v_left=v_left,
        v_right=v_right,
        sidewalk_left=float(rng.uniform(1.8, 5.0)),
        sidewalk_right=float(rng.uniform(1.8, 5.0)),
        lines=tuple(lines),
    )


def _normal_clip(rng: np.random.Generator, mean_std: tuple[float, float], k: float = 2.5) -> float:
    m, s = mean_std
    return float(np.clip(rng.normal(m, s), m - k * s, m + k * s))


def _draw_ground(rng: np.random.Generator, st: _Street, config: SceneConfig, mount_height: float) -> tuple[Ground, bool]:
    """``(ground, has_cross)``: road angle, slope and an optional cross street drawn for street ``st``."""
    theta = float(rng.normal(0.0, config.road_angle_sigma))
    slope = np.clip(rng.normal(0.0, config.slope_sigma, 2), -0.03, 0.03)
    has_cross = rng.random() < 0.35
    gap = (1.0, -1.0)
    if has_cross:
        cu = float(rng.uniform(-30.0, 60.0))
        cw = float(rng.uniform(8.0, 16.0))
        gap = (cu - cw / 2, cu + cw / 2)
    ground = Ground(
        z0=-mount_height, gx=float(slope[0]), gy=float(slope[1]), road_angle=theta,
        v_left=st.v_left, v_right=st.v_right, curb_height=float(rng.uniform(0.1, 0.2)),
        sidewalk_width_left=st.sidewalk_left, sidewalk_width_right=st.sidewalk_right,
        gap_u0=gap[0], gap_u1=gap[1],
        lane_lines=tuple(v for v, _ in st.lines), lane_dashed=tuple(d for _, d in st.lines),
        dash_period=float(rng.uniform(8.0, 12.0)), dash_length=3.0,
    )
    return ground, has_cross


class _Layout:
    """A scene under construction: the generator, the street and ground, the BEV footprints taken
    and the groups built. Positions are given in road coordinates ``(u, v)`` and placed on the
    walkable surface; yaws are LiDAR yaws (``theta`` is the road's)."""

    def __init__(
        self, rng: np.random.Generator, config: SceneConfig, street: _Street, ground: Ground, has_cross: bool
    ) -> None:
        self.rng = rng
        self.config = config
        self.street = street
        self.ground = ground
        self.has_cross = has_cross
        self.theta = ground.road_angle
        self.gap = (ground.gap_u0, ground.gap_u1)
        self.occ = _Occupancy()
        self.builder = _Builder()
        self.occ.take(0.0, 0.0, 5.0, 2.2, self.theta)  # the ego car carrying the sensor

    def xy(self, u: float, v: float) -> tuple[float, float]:
        x, y = self.ground.from_road(u, v)
        return float(x), float(y)

    def surface(self, x: float, y: float) -> float:
        return float(self.ground.surface_height(np.array([x]), np.array([y]))[0])

    def in_gap(self, u: float, margin: float = 0.0) -> bool:
        """True where ``u`` is within ``margin`` of the cross street (never without one)."""
        return self.gap[0] - margin <= u <= self.gap[1] + margin

    def random_side(self) -> int:
        return 1 if self.rng.random() < 0.5 else -1

    def random_lane(self) -> tuple[float, float, int]:
        """``(v_min, v_max, direction)`` of a lane drawn uniformly."""
        return self.street.lanes[int(self.rng.integers(0, len(self.street.lanes)))]

    def sidewalk_v(self, side: int, inner: float, outer_margin: float, min_outer: float) -> float:
        """A lateral position ``v`` on the sidewalk of ``side``: ``inner`` to
        ``max(width - outer_margin, min_outer)`` from the curb."""
        curb, width = self.street.sidewalk(side)
        return curb + side * float(self.rng.uniform(inner, max(width - outer_margin, min_outer)))

    def along_road(self, backwards: bool, sigma: float) -> float:
        """Yaw along the road (against it if ``backwards``) plus N(0, ``sigma``)."""
        return self.theta + (math.pi if backwards else 0.0) + float(self.rng.normal(0, sigma))

    def across_road(self, sigma: float) -> float:
        """Yaw across the road, to either side, plus N(0, ``sigma``)."""
        return self.theta + math.pi / 2 * float(self.rng.choice([-1, 1])) + float(self.rng.normal(0, sigma))

    def car_dims(self) -> tuple[float, float, float]:
        cfg = self.config
        return (
            _normal_clip(self.rng, cfg.car_length),
            _normal_clip(self.rng, cfg.car_width),
            _normal_clip(self.rng, cfg.car_height),
        )

    def add_static(
        self, parts: shapes.Parts, x: float, y: float, yaw: float, footprint, placed_yaw: float | None = None
    ) -> None:
        """Background ``parts`` at ``(x, y)`` on the surface, turned by ``placed_yaw`` (default ``yaw``),
        boxed in the ``yaw`` frame; ``footprint`` ``(l, w, yaw)`` is taken."""
        placed = parts.placed(x, y, self.surface(x, y), yaw if placed_yaw is None else placed_yaw)
        self.builder.add_static(placed, yaw)
        self.occ.take(x, y, *footprint)

    def add_static_if_free(self, parts: shapes.Parts, x: float, y: float, yaw: float, footprint) -> None:
        """:meth:`add_static` where ``footprint`` is free with a 0.1 m margin."""
        if self.occ.free(x, y, *footprint, 0.1):
            self.add_static(parts, x, y, yaw, footprint)

    def place(self, name: str, parts_fn, dims, u: float, v: float, yaw: float, margin: float) -> bool:
        """Place labelled object ``name`` of ``dims`` ``(l, w, h)`` at ``(u, v)`` if its footprint
        (plus ``margin``) is free; ``parts_fn(rng, l, w, h)`` builds it. True if placed."""
        l, w, h = dims
        x, y = self.xy(u, v)
        if not self.occ.free(x, y, l, w, yaw, margin):
            return False
        self.builder.add_object(name, parts_fn(self.rng, l, w, h), x, y, self.surface(x, y), l, w, h, yaw)
        self.occ.take(x, y, l, w, yaw)
        return True


# --- frontage: buildings, walls, fences, vegetation beyond each sidewalk -----------------------


def _add_frontage(lay: _Layout, side: int) -> None:
    """Segments along ``side`` beyond the sidewalk: a building, a wall or fence, trees and bushes,
    or an empty lot; the cross street stays open."""
    rng, st, gap, extent = lay.rng, lay.street, lay.gap, lay.config.extent
    edge = st.v_left + st.sidewalk_left if side > 0 else st.v_right - st.sidewalk_right
    u = -extent + float(rng.uniform(0, 10))
    while u < extent:
        kind = rng.choice(4, p=[0.5, 0.15, 0.25, 0.1])
        seg = float(rng.uniform(8.0, 35.0))
        if lay.has_cross and u < gap[1] + 3.0 and u + seg > gap[0] - 3.0:
            u = gap[1] + 3.0  # leave the cross street open
            continue
        if kind == 0:
            _add_building(lay, side, edge, u, seg)
        elif kind == 1:
            _add_wall(lay, side, edge, u, seg)
        elif kind == 2:
            _add_vegetation(lay, side, edge, u, seg)
        u += seg + float(rng.choice([0.0, rng.uniform(1.0, 10.0)], p=[0.4, 0.6]))


def _add_building(lay: _Layout, side: int, edge: float, u: float, seg: float) -> None:
    """A building ``seg`` long from ``u``, set back from the sidewalk ``edge``, facade to the street."""
    rng = lay.rng
    depth = float(rng.uniform(8.0, 20.0))
    setback = float(rng.uniform(0.0, 4.0))
    x, y = lay.xy(u + seg / 2, edge + side * (setback + depth / 2))
    yaw = lay.theta if side < 0 else lay.theta + math.pi  # facade (+y face) towards the street
    parts = shapes.building(rng, seg, depth, float(rng.uniform(3.5, 25.0)))
    lay.add_static(parts, x, y, yaw, (seg, depth + 2.0, yaw))


def _add_wall(lay: _Layout, side: int, edge: float, u: float, seg: float) -> None:
    """A wall or fence ``seg`` long from ``u``, along the road near the sidewalk ``edge``."""
    parts, t = shapes.wall(lay.rng, seg)
    x, y = lay.xy(u + seg / 2, edge + side * (float(lay.rng.uniform(0.0, 2.0)) + t / 2))
    lay.add_static(parts, x, y, lay.theta, (seg, t, lay.theta))


def _add_vegetation(lay: _Layout, side: int, edge: float, u: float, seg: float) -> None:
    """2 to 6 trees and bushes scattered over a segment ``seg`` long from ``u`` beyond ``edge``."""
    rng = lay.rng
    for _ in range(int(rng.integers(2, 7))):
        x, y = lay.xy(u + float(rng.uniform(0, seg)), edge + side * float(rng.uniform(0.5, 8.0)))
        if rng.random() < 0.5:
            parts, trunk_r = shapes.tree(rng)
            fp = 2 * trunk_r
        else:
            parts, fp = shapes.bush(rng), 2.0
        if lay.occ.free(x, y, fp, fp, 0.0, 0.1):
            lay.add_static(parts, x, y, 0.0, (fp, fp, 0.0), placed_yaw=float(rng.uniform(0, 2 * math.pi)))


# --- street furniture on the sidewalks ----------------------------------------------------------


def _add_furniture(lay: _Layout, side: int) -> None:
    """Poles, trees and clutter every 6 to 25 m along the sidewalk of ``side``, not at the cross street."""
    rng, extent = lay.rng, lay.config.extent
    u = -extent + float(rng.uniform(0, 15))
    while u < extent:
        if not lay.in_gap(u, 1.0):
            _add_furniture_item(lay, side, u)
        u += float(rng.uniform(6.0, 25.0))


def _add_furniture_item(lay: _Layout, side: int, u: float) -> None:
    """A pole (sign, light), a tree near the curb, or clutter (bin, bench, ...) anywhere on the sidewalk."""
    rng, theta = lay.rng, lay.theta
    curb, _ = lay.street.sidewalk(side)
    what = rng.choice(3, p=[0.35, 0.4, 0.25])
    x, y = lay.xy(u, curb + side * float(rng.uniform(0.4, 0.9)))
    if what == 0:
        parts = shapes.pole(rng)
        yaw = theta + (math.pi / 2 if side < 0 else -math.pi / 2)
        lay.add_static_if_free(parts, x, y, yaw, (0.3, 0.3, 0.0))
    elif what == 1:
        parts, trunk_r = shapes.tree(rng)
        lay.add_static_if_free(parts, x, y, 0.0, (2 * trunk_r, 2 * trunk_r, 0.0))
    else:
        parts, l, w = shapes.clutter(rng)
        x, y = lay.xy(u, lay.sidewalk_v(side, 0.4, 0.5, 0.5))
        yaw = theta + float(rng.choice([0.0, math.pi / 2]))
        lay.add_static_if_free(parts, x, y, yaw, (l, w, yaw))


# --- cars: parked, in lanes, on the cross street and at odd angles -------------------------------


def _add_parked_cars(lay: _Layout) -> None:
    """Cars along each parking lane, mostly with the flow, gaps between them, none at the cross street."""
    rng, cfg = lay.rng, lay.config
    u_lo, u_hi = cfg.object_u_range
    for v_min, v_max, side in lay.street.parking:
        u = u_lo + float(rng.uniform(0, 6))
        while u < u_hi:
            dims = lay.car_dims()
            if rng.random() < cfg.parked_car_probability and not lay.in_gap(u, dims[0]):
                yaw = lay.along_road(side >= 0, 0.04)
                if rng.random() < 0.15:
                    yaw += math.pi  # parked against the flow
                v = (v_min + v_max) / 2 + float(rng.normal(0, 0.12))
                lay.place("Car", shapes.car, dims, u + dims[0] / 2, v, yaw, 0.15)
            u += dims[0] + float(rng.uniform(0.5, 4.0))


def _add_lane_cars(lay: _Layout) -> None:
    """``config.lane_cars`` cars driving in the lanes (three tries each)."""
    rng, cfg = lay.rng, lay.config
    u_lo, u_hi = cfg.object_u_range
    n_lane = int(rng.integers(cfg.lane_cars[0], cfg.lane_cars[1] + 1))
    for _ in range(n_lane * 3):
        if n_lane <= 0:
            break
        v_min, v_max, direction = lay.random_lane()
        dims = lay.car_dims()
        u = float(rng.uniform(u_lo, u_hi))
        yaw = lay.along_road(direction < 0, 0.03)
        v = (v_min + v_max) / 2 + float(rng.normal(0, 0.2))
        if lay.place("Car", shapes.car, dims, u, v, yaw, 0.8):
            n_lane -= 1


def _add_cross_cars(lay: _Layout) -> None:
    """Up to 3 cars driving on the cross street."""
    rng = lay.rng
    for _ in range(int(rng.integers(0, 4))):
        dims = lay.car_dims()
        u = float(rng.uniform(lay.gap[0] + 1.5, lay.gap[1] - 1.5))
        v = float(rng.uniform(-40.0, 40.0))
        lay.place("Car", shapes.car, dims, u, v, lay.across_road(0.05), 0.6)


def _add_random_yaw_cars(lay: _Layout) -> None:
    """``config.random_yaw_cars`` cars on the road at any yaw (turning, parking manoeuvres)."""
    rng, cfg, st = lay.rng, lay.config, lay.street
    u_lo, u_hi = cfg.object_u_range
    for _ in range(int(rng.integers(cfg.random_yaw_cars[0], cfg.random_yaw_cars[1] + 1))):
        dims = lay.car_dims()
        u = float(rng.uniform(u_lo, u_hi))
        v = float(rng.uniform(st.v_right + 1.0, st.v_left - 1.0))
        lay.place("Car", shapes.car, dims, u, v, float(rng.uniform(-math.pi, math.pi)), 0.4)


# --- pedestrians and cyclists --------------------------------------------------------------------


def _add_pedestrians(lay: _Layout) -> None:
    """``config.pedestrians`` pedestrians: on the sidewalks (alone or in groups) and crossing."""
    rng, cfg, st = lay.rng, lay.config, lay.street
    u_lo, u_hi = cfg.object_u_range
    n_ped = int(rng.integers(cfg.pedestrians[0], cfg.pedestrians[1] + 1))
    placed = 0
    for _ in range(n_ped * 4):
        if placed >= n_ped:
            break
        if rng.random() < 0.8:
            v = lay.sidewalk_v(lay.random_side(), 0.4, 0.3, 0.5)
            yaw = lay.along_road(rng.random() >= 0.5, 0.3)
        else:
            v = float(rng.uniform(st.v_right, st.v_left))
            yaw = lay.across_road(0.2)
        if rng.random() < 0.25:
            yaw = float(rng.uniform(-math.pi, math.pi))  # standing, looking anywhere
        u = float(rng.uniform(u_lo, u_hi))
        placed += _add_pedestrian_group(lay, u, v, yaw)


def _add_pedestrian_group(lay: _Layout, u: float, v: float, yaw: float) -> int:
    """One to three pedestrians walking together from ``(u, v)`` heading ``yaw``; returns how many were placed."""
    rng = lay.rng
    placed = 0
    for g in range(int(rng.choice([1, 1, 1, 2, 3]))):
        dims = (
            float(np.clip(rng.normal(0.8, 0.1), 0.5, 1.05)),
            float(np.clip(rng.normal(0.6, 0.06), 0.45, 0.75)),
            _normal_clip(rng, lay.config.ped_height),
        )
        du, dv = (g * float(rng.uniform(0.8, 1.3)), float(rng.normal(0, 0.3))) if g else (0.0, 0.0)
        if lay.place("Pedestrian", shapes.pedestrian, dims, u + du, v + dv, yaw + float(rng.normal(0, 0.1)), 0.1):
            placed += 1
    return placed


def _add_cyclists(lay: _Layout) -> None:
    """``config.cyclists`` cyclists: near the right edge of a lane, on the sidewalks, or anywhere on the road."""
    rng, cfg = lay.rng, lay.config
    u_lo, u_hi = cfg.object_u_range
    n_cyc = int(rng.integers(cfg.cyclists[0], cfg.cyclists[1] + 1))
    placed = 0
    for _ in range(n_cyc * 4):
        if placed >= n_cyc:
            break
        dims = (
            _normal_clip(rng, cfg.cyclist_length),
            float(np.clip(rng.normal(0.6, 0.05), 0.45, 0.75)),
            _normal_clip(rng, cfg.cyclist_height),
        )
        v, yaw = _cyclist_pose(lay)
        u = float(rng.uniform(u_lo, u_hi))
        if lay.place("Cyclist", shapes.cyclist, dims, u, v, yaw, 0.3):
            placed += 1


def _cyclist_pose(lay: _Layout) -> tuple[float, float]:
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


def generate_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig(), mount_height: float = 1.73) -> Scene:
    """Draw one street scene. The ground is ``mount_height`` below the sensor at the origin.

    The draws follow a fixed order (street, ground, frontage and furniture on both sides, cars,
    pedestrians, cyclists), so the same generator state gives the same scene.
    """
    st = _street(rng)
    ground, has_cross = _draw_ground(rng, st, config, mount_height)
    lay = _Layout(rng, config, st, ground, has_cross)
    for side in (-1, 1):
        _add_frontage(lay, side)
    for side in (-1, 1):
        _add_furniture(lay, side)
    _add_parked_cars(lay)
    _add_lane_cars(lay)
    if has_cross:
        _add_cross_cars(lay)
    _add_random_yaw_cars(lay)
    _add_pedestrians(lay)
    _add_cyclists(lay)
    prims, boxes, prim_obj, names = lay.builder.build()
    return Scene(ground=ground, primitives=prims, boxes=boxes, names=names, primitive_object=prim_obj)
