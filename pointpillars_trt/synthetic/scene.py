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


def generate_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig(), mount_height: float = 1.73) -> Scene:
    """Draw one street scene. The ground is ``mount_height`` below the sensor at the origin."""
    st = _street(rng)
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
    occ = _Occupancy()
    b = _Builder()
    occ.take(0.0, 0.0, 5.0, 2.2, theta)  # the ego car carrying the sensor

    def xy(u: float, v: float) -> tuple[float, float]:
        x, y = ground.from_road(u, v)
        return float(x), float(y)

    def surface(x: float, y: float) -> float:
        return float(ground.surface_height(np.array([x]), np.array([y]))[0])

    def in_gap(u: float, margin: float = 0.0) -> bool:
        return gap[0] - margin <= u <= gap[1] + margin

    E = config.extent
    # --- frontage: buildings, walls, fences, vegetation beyond each sidewalk -------------------
    for side in (-1, 1):
        edge = st.v_left + st.sidewalk_left if side > 0 else st.v_right - st.sidewalk_right
        u = -E + float(rng.uniform(0, 10))
        while u < E:
            kind = rng.choice(4, p=[0.5, 0.15, 0.25, 0.1])
            seg = float(rng.uniform(8.0, 35.0))
            if has_cross and u < gap[1] + 3.0 and u + seg > gap[0] - 3.0:
                u = gap[1] + 3.0  # leave the cross street open
                continue
            mid = u + seg / 2
            if kind == 0:
                depth = float(rng.uniform(8.0, 20.0))
                setback = float(rng.uniform(0.0, 4.0))
                v = edge + side * (setback + depth / 2)
                x, y = xy(mid, v)
                yaw = theta if side < 0 else theta + math.pi  # facade (+y face) towards the street
                parts = shapes.building(rng, seg, depth, float(rng.uniform(3.5, 25.0)))
                b.add_static(parts.placed(x, y, surface(x, y), yaw), yaw)
                occ.take(x, y, seg, depth + 2.0, yaw)
            elif kind == 1:
                parts, t = shapes.wall(rng, seg)
                v = edge + side * (float(rng.uniform(0.0, 2.0)) + t / 2)
                x, y = xy(mid, v)
                b.add_static(parts.placed(x, y, surface(x, y), theta), theta)
                occ.take(x, y, seg, t, theta)
            elif kind == 2:
                for _ in range(int(rng.integers(2, 7))):
                    uu = u + float(rng.uniform(0, seg))
                    vv = edge + side * float(rng.uniform(0.5, 8.0))
                    x, y = xy(uu, vv)
                    if rng.random() < 0.5:
                        parts, trunk_r = shapes.tree(rng)
                        fp = 2 * trunk_r
                    else:
                        parts, fp = shapes.bush(rng), 2.0
                    if occ.free(x, y, fp, fp, 0.0, 0.1):
                        b.add_static(parts.placed(x, y, surface(x, y), float(rng.uniform(0, 2 * math.pi))), 0.0)
                        occ.take(x, y, fp, fp, 0.0)
            u += seg + float(rng.choice([0.0, rng.uniform(1.0, 10.0)], p=[0.4, 0.6]))

    # --- street furniture on the sidewalks ------------------------------------------------------
    for side in (-1, 1):
        curb = st.v_left if side > 0 else st.v_right
        width = st.sidewalk_left if side > 0 else st.sidewalk_right
        u = -E + float(rng.uniform(0, 15))
        while u < E:
            if not in_gap(u, 1.0):
                what = rng.choice(3, p=[0.35, 0.4, 0.25])
                v = curb + side * float(rng.uniform(0.4, 0.9))
                x, y = xy(u, v)
                if what == 0:
                    parts = shapes.pole(rng)
                    yaw = theta + (math.pi / 2 if side < 0 else -math.pi / 2)
                    if occ.free(x, y, 0.3, 0.3, 0.0, 0.1):
                        b.add_static(parts.placed(x, y, surface(x, y), yaw), yaw)
                        occ.take(x, y, 0.3, 0.3, 0.0)
                elif what == 1:
                    parts, trunk_r = shapes.tree(rng)
                    if occ.free(x, y, 2 * trunk_r, 2 * trunk_r, 0.0, 0.1):
                        b.add_static(parts.placed(x, y, surface(x, y), 0.0), 0.0)
                        occ.take(x, y, 2 * trunk_r, 2 * trunk_r, 0.0)
                else:
                    parts, l, w = shapes.clutter(rng)
                    v = curb + side * float(rng.uniform(0.4, max(width - 0.5, 0.5)))
                    x, y = xy(u, v)
                    yaw = theta + float(rng.choice([0.0, math.pi / 2]))
                    if occ.free(x, y, l, w, yaw, 0.1):
                        b.add_static(parts.placed(x, y, surface(x, y), yaw), yaw)
                        occ.take(x, y, l, w, yaw)
            u += float(rng.uniform(6.0, 25.0))

    u_lo, u_hi = config.object_u_range

    def place(name: str, parts_fn, dims, u: float, v: float, yaw: float, margin: float) -> bool:
        l, w, h = dims
        x, y = xy(u, v)
        if not occ.free(x, y, l, w, yaw, margin):
            return False
        b.add_object(name, parts_fn(rng, l, w, h), x, y, surface(x, y), l, w, h, yaw)
        occ.take(x, y, l, w, yaw)
        return True

    def car_dims() -> tuple[float, float, float]:
        return (
            _normal_clip(rng, config.car_length),
            _normal_clip(rng, config.car_width),
            _normal_clip(rng, config.car_height),
        )

    # --- parked cars ----------------------------------------------------------------------------
    for v_min, v_max, side in st.parking:
        u = u_lo + float(rng.uniform(0, 6))
        while u < u_hi:
            dims = car_dims()
            if rng.random() < config.parked_car_probability and not in_gap(u, dims[0]):
                yaw = theta + (0.0 if side < 0 else math.pi) + float(rng.normal(0, 0.04))
                if rng.random() < 0.15:
                    yaw += math.pi  # parked against the flow
                v = (v_min + v_max) / 2 + float(rng.normal(0, 0.12))
                place("Car", shapes.car, dims, u + dims[0] / 2, v, yaw, 0.15)
            u += dims[0] + float(rng.uniform(0.5, 4.0))

    # --- cars in lanes, on the cross street and at odd angles -------------------------------------
    n_lane = int(rng.integers(config.lane_cars[0], config.lane_cars[1] + 1))
    for _ in range(n_lane * 3):
        if n_lane <= 0:
            break
        v_min, v_max, direction = st.lanes[int(rng.integers(0, len(st.lanes)))]
        dims = car_dims()
        u = float(rng.uniform(u_lo, u_hi))
        yaw = theta + (0.0 if direction > 0 else math.pi) + float(rng.normal(0, 0.03))
        v = (v_min + v_max) / 2 + float(rng.normal(0, 0.2))
        if place("Car", shapes.car, dims, u, v, yaw, 0.8):
            n_lane -= 1
    if has_cross:
        for _ in range(int(rng.integers(0, 4))):
            dims = car_dims()
            u = float(rng.uniform(gap[0] + 1.5, gap[1] - 1.5))
            v = float(rng.uniform(-40.0, 40.0))
            yaw = theta + math.pi / 2 * float(rng.choice([-1, 1])) + float(rng.normal(0, 0.05))
            place("Car", shapes.car, dims, u, v, yaw, 0.6)
    for _ in range(int(rng.integers(config.random_yaw_cars[0], config.random_yaw_cars[1] + 1))):
        dims = car_dims()
        u = float(rng.uniform(u_lo, u_hi))
        v = float(rng.uniform(st.v_right + 1.0, st.v_left - 1.0))
        place("Car", shapes.car, dims, u, v, float(rng.uniform(-math.pi, math.pi)), 0.4)

    # --- pedestrians: on the sidewalks (alone or in groups) and crossing ----------------------------
    n_ped = int(rng.integers(config.pedestrians[0], config.pedestrians[1] + 1))
    placed = 0
    for _ in range(n_ped * 4):
        if placed >= n_ped:
            break
        if rng.random() < 0.8:
            side = 1 if rng.random() < 0.5 else -1
            curb = st.v_left if side > 0 else st.v_right
            width = st.sidewalk_left if side > 0 else st.sidewalk_right
            v = curb + side * float(rng.uniform(0.4, max(width - 0.3, 0.5)))
            yaw = theta + (0.0 if rng.random() < 0.5 else math.pi) + float(rng.normal(0, 0.3))
        else:
            v = float(rng.uniform(st.v_right, st.v_left))
            yaw = theta + math.pi / 2 * float(rng.choice([-1, 1])) + float(rng.normal(0, 0.2))
        if rng.random() < 0.25:
            yaw = float(rng.uniform(-math.pi, math.pi))  # standing, looking anywhere
        u = float(rng.uniform(u_lo, u_hi))
        group = int(rng.choice([1, 1, 1, 2, 3]))
        for g in range(group):
            dims = (
                float(np.clip(rng.normal(0.8, 0.1), 0.5, 1.05)),
                float(np.clip(rng.normal(0.6, 0.06), 0.45, 0.75)),
                _normal_clip(rng, config.ped_height),
            )
            du, dv = (g * float(rng.uniform(0.8, 1.3)), float(rng.normal(0, 0.3))) if g else (0.0, 0.0)
            if place("Pedestrian", shapes.pedestrian, dims, u + du, v + dv, yaw + float(rng.normal(0, 0.1)), 0.1):
                placed += 1

    # --- cyclists: near the right road edge, in lanes, some on sidewalks ----------------------------
    n_cyc = int(rng.integers(config.cyclists[0], config.cyclists[1] + 1))
    placed = 0
    for _ in range(n_cyc * 4):
        if placed >= n_cyc:
            break
        dims = (
            _normal_clip(rng, config.cyclist_length),
            float(np.clip(rng.normal(0.6, 0.05), 0.45, 0.75)),
            _normal_clip(rng, config.cyclist_height),
        )
        r = rng.random()
        if r < 0.6:
            v_min, v_max, direction = st.lanes[int(rng.integers(0, len(st.lanes)))]
            v = (v_min + 0.8) if direction > 0 else (v_max - 0.8)
            v += float(rng.normal(0, 0.25))
            yaw = theta + (0.0 if direction > 0 else math.pi) + float(rng.normal(0, 0.08))
        elif r < 0.85:
            side = 1 if rng.random() < 0.5 else -1
            curb = st.v_left if side > 0 else st.v_right
            width = st.sidewalk_left if side > 0 else st.sidewalk_right
            v = curb + side * float(rng.uniform(0.5, max(width - 0.5, 0.6)))
            yaw = theta + (0.0 if rng.random() < 0.5 else math.pi) + float(rng.normal(0, 0.15))
        else:
            v = float(rng.uniform(st.v_right, st.v_left))
            yaw = float(rng.uniform(-math.pi, math.pi))
        u = float(rng.uniform(u_lo, u_hi))
        if place("Cyclist", shapes.cyclist, dims, u, v, yaw, 0.3):
            placed += 1

    prims, boxes, prim_obj, names = b.build()
    return Scene(ground=ground, primitives=prims, boxes=boxes, names=names, primitive_object=prim_obj)
