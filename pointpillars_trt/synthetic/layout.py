"""The scene under construction: BEV occupancy, the primitive accumulator, the street cross-section,
the ground, and :class:`Layout` which places things in road coordinates (:mod:`.scene` drives it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import shapes
from .raycast import Ground, Primitives

if TYPE_CHECKING:
    from .scene import SceneConfig


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _rect_corners(x: float, y: float, l: float, w: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    loc = np.array([[l, w], [l, -w], [-l, -w], [-l, w]], dtype=np.float64) / 2
    return np.stack([x + c * loc[:, 0] - s * loc[:, 1], y + s * loc[:, 0] + c * loc[:, 1]], axis=1)


class Occupancy:
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


class Builder:
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
class Street:
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


def draw_street(rng: np.random.Generator) -> Street:
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
    return Street(
        lanes=tuple(lanes),
        parking=tuple(parking),
        v_left=v_left,
        v_right=v_right,
        sidewalk_left=float(rng.uniform(1.8, 5.0)),
        sidewalk_right=float(rng.uniform(1.8, 5.0)),
        lines=tuple(lines),
    )


def normal_clip(rng: np.random.Generator, mean_std: tuple[float, float], k: float = 2.5) -> float:
    m, s = mean_std
    return float(np.clip(rng.normal(m, s), m - k * s, m + k * s))


def draw_ground(rng: np.random.Generator, st: Street, config: SceneConfig, mount_height: float) -> tuple[Ground, bool]:
    """``(ground, has_cross)``: road angle, slope and an optional cross street drawn for street ``st``."""
    theta = float(rng.normal(0.0, config.road_angle_sigma))
    slope = np.clip(rng.normal(0.0, config.slope_sigma, 2), -config.slope_max, config.slope_max)
    has_cross = rng.random() < config.cross_street_probability
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


class Layout:
    """A scene under construction: the generator, the street and ground, the BEV footprints taken
    and the groups built. Positions are given in road coordinates ``(u, v)`` and placed on the
    walkable surface; yaws are LiDAR yaws (``theta`` is the road's)."""

    def __init__(
        self, rng: np.random.Generator, config: SceneConfig, street: Street, ground: Ground, has_cross: bool
    ) -> None:
        self.rng = rng
        self.config = config
        self.street = street
        self.ground = ground
        self.has_cross = has_cross
        self.theta = ground.road_angle
        self.gap = (ground.gap_u0, ground.gap_u1)
        self.occ = Occupancy()
        self.builder = Builder()
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
            normal_clip(self.rng, cfg.car_length),
            normal_clip(self.rng, cfg.car_width),
            normal_clip(self.rng, cfg.car_height),
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
