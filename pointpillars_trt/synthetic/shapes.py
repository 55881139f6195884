"""Part-based shapes of the scene: cars, pedestrians, cyclists, trees, poles, buildings, clutter.

A shape is built in its own frame (origin at the bottom centre, x forward, y left, z up) as a
:class:`Parts` list of primitives and then placed in the LiDAR frame with :meth:`Parts.placed`.
Object shapes (car, pedestrian, cyclist) stay inside the box ``[-l/2, l/2] x [-w/2, w/2] x [0, h]``
that becomes their label, inset by ``INSET`` so that range noise rarely pushes points out of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .raycast import BOX, ELLIPSOID, VCYL, YCYL

#: Horizontal inset of object parts from their label box (m).
INSET = 0.05


@dataclass
class Parts:
    """Primitives in a shape's local frame. Each row: kind, centre (3), half extents (3), yaw,
    reflectivity, dropout (see :class:`~pointpillars_trt.synthetic.raycast.Primitives`)."""

    rows: list[tuple] = field(default_factory=list)

    def add(self, kind: int, center, half, refl: float, drop: float = 0.0, yaw: float = 0.0) -> None:
        self.rows.append((int(kind), *map(float, center), *map(float, half), float(yaw), float(refl), float(drop)))

    def placed(self, x: float, y: float, z: float, yaw: float) -> np.ndarray:
        """``[P, 10]`` float64 rows in the LiDAR frame: the local origin moves to ``(x, y, z)``
        and the shape turns by ``yaw`` (CCW about +z)."""
        a = np.array(self.rows, dtype=np.float64).reshape(-1, 10)
        c, s = math.cos(yaw), math.sin(yaw)
        lx, ly = a[:, 1].copy(), a[:, 2].copy()
        a[:, 1] = x + c * lx - s * ly
        a[:, 2] = y + s * lx + c * ly
        a[:, 3] += z
        a[:, 7] += yaw
        return a


def car(rng: np.random.Generator, l: float, w: float, h: float) -> Parts:
    """A car of length ``l``, width ``w``, height ``h``: lower body, bonnet, glass house and roof,
    four wheels, lamps and number plates (retro-reflective)."""
    p = Parts()
    paint = float(rng.choice([rng.uniform(0.03, 0.12), rng.uniform(0.12, 0.45)], p=[0.35, 0.65]))
    li, wi = l - 2 * INSET, w - 2 * INSET
    r = float(np.clip(0.29 + 0.05 * (h - 1.5) + rng.normal(0, 0.015), 0.27, 0.4))
    overhang = (0.19 + rng.uniform(-0.02, 0.02)) * l
    ax = l / 2 - overhang
    ww = 0.2
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.add(YCYL, (sx * ax, sy * (wi / 2 - ww / 2), r), (r, ww / 2, r), 0.06, 0.05)
    clearance = r * 0.55
    belt = h * rng.uniform(0.5, 0.6)
    p.add(BOX, (0, 0, (clearance + belt) / 2), (li / 2 - 0.02, wi / 2, (belt - clearance) / 2), paint)
    # glass house (windows: dark, often no return) and roof
    cab_len = l * rng.uniform(0.45, 0.58)
    cab_x = -l * rng.uniform(0.02, 0.1)
    glass_top = belt + (h - belt) * 0.78
    p.add(BOX, (cab_x, 0, (belt + glass_top) / 2), (cab_len / 2, wi / 2 - 0.06, (glass_top - belt) / 2), 0.04, 0.45)
    p.add(BOX, (cab_x - 0.03 * l, 0, (glass_top + h) / 2), (cab_len / 2 - 0.12, wi / 2 - 0.1, (h - glass_top) / 2), paint)
    # bonnet step in front of the windscreen, boot step behind
    p.add(BOX, (cab_x + cab_len / 2 + 0.15, 0, belt + 0.05), (0.25, wi / 2 - 0.05, 0.05), paint)
    # lamps and plates on the bumpers, retro-reflective
    for sx in (-1, 1):
        xf = sx * (li / 2 - 0.015)  # flush with the inset box, 2 cm proud of the body
        p.add(BOX, (xf, 0, clearance + 0.25), (0.015, 0.25, 0.06), 0.92)
        for sy in (-1, 1):
            p.add(BOX, (xf, sy * (wi / 2 - 0.15), belt - 0.12), (0.015, 0.12, 0.06), 0.8 if sx < 0 else 0.6)
    return p


def pedestrian(rng: np.random.Generator, l: float, w: float, h: float) -> Parts:
    """A standing or walking person of height ``h`` inside an ``l x w`` footprint: legs, hips and
    torso, arms, head."""
    p = Parts()
    cloth_top = float(rng.uniform(0.05, 0.55))
    cloth_leg = float(rng.uniform(0.05, 0.45))
    skin = float(rng.uniform(0.2, 0.45))
    half_l, half_w = l / 2 - INSET, w / 2 - INSET
    stride = float(rng.uniform(0.0, 1.0)) * max(half_l - 0.1, 0.0)
    leg_h = 0.47 * h
    leg_r = 0.075
    for sy, sx in ((1, 1), (-1, -1)):
        p.add(VCYL, (sx * stride * 0.9, sy * 0.1, leg_h / 2), (leg_r, leg_r, leg_h / 2), cloth_leg)
    torso_w = min(0.2, half_w - 0.08)
    p.add(BOX, (0, 0, leg_h + 0.08), (0.12, torso_w, 0.09), cloth_leg)
    p.add(ELLIPSOID, (0, 0, 0.66 * h), (0.14, torso_w + 0.02, 0.18 * h), cloth_top)
    arm_h = 0.34 * h
    for sy in (1, -1):
        p.add(VCYL, (-sy * stride * 0.5, sy * (half_w - 0.05), 0.8 * h - arm_h / 2), (0.045, 0.045, arm_h / 2), cloth_top)
    p.add(ELLIPSOID, (0.01, 0, h - 0.12), (0.1, 0.085, 0.12), skin if rng.random() < 0.5 else cloth_top)
    return p


def cyclist(rng: np.random.Generator, l: float, w: float, h: float) -> Parts:
    """A bicycle (spoked wheels: sparse returns; frame; handlebar) with its rider inside an
    ``l x w x h`` box, heading +x."""
    p = Parts()
    metal = float(rng.uniform(0.3, 0.7))
    cloth = float(rng.uniform(0.05, 0.5))
    half_l, half_w = l / 2 - INSET, w / 2 - INSET
    r = min(0.34, half_l / 2.6)
    wx = half_l - r
    for sx in (-1, 1):
        p.add(YCYL, (sx * wx, 0, r), (r, 0.025, r), 0.25, 0.55)
    p.add(BOX, (0, 0, r + 0.12), (wx * 0.85, 0.02, 0.16), metal)
    bar_x = wx - 0.08
    p.add(BOX, (bar_x, 0, 0.98 * h * 0.58 + 0.05), (0.03, half_w - 0.02, 0.03), metal)
    # rider: legs on the pedals, torso leaning forward, arms to the bar, head
    seat_z = 0.52 * h
    for sy in (1, -1):
        p.add(VCYL, (-0.1 + sy * 0.08, sy * 0.12, (seat_z + 0.3) / 2), (0.07, 0.07, (seat_z - 0.3) / 2), cloth)
    p.add(ELLIPSOID, (0.02, 0, 0.7 * h), (0.26, 0.19, 0.17 * h), cloth)
    for sy in (1, -1):
        p.add(BOX, ((0.15 + bar_x) / 2, sy * 0.2, 0.66 * h), ((bar_x - 0.15) / 2, 0.04, 0.04), cloth)
    p.add(ELLIPSOID, (0.22, 0, h - 0.12), (0.11, 0.09, 0.12), float(rng.uniform(0.1, 0.5)))
    return p


def tree(rng: np.random.Generator) -> tuple[Parts, float]:
    """A tree: trunk and 1-3 foliage ellipsoids (foliage lets many rays through). Returns the
    parts and the trunk radius (for placement)."""
    p = Parts()
    trunk_r = float(rng.uniform(0.12, 0.3))
    trunk_h = float(rng.uniform(2.4, 3.8))
    p.add(VCYL, (0, 0, trunk_h / 2), (trunk_r, trunk_r, trunk_h / 2 + 0.3), float(rng.uniform(0.15, 0.35)))
    crown_r = float(rng.uniform(1.2, 3.2))
    foliage = float(rng.uniform(0.1, 0.3))
    for _ in range(int(rng.integers(1, 4))):
        cr = crown_r * rng.uniform(0.6, 1.0)
        off = rng.normal(0, crown_r * 0.3, 2)
        cc = cr * rng.uniform(0.7, 1.2)
        cz = trunk_h + 0.9 * cc  # the crown stays above ~2 m, clear of people and cars
        p.add(ELLIPSOID, (off[0], off[1], cz), (cr, cr * rng.uniform(0.8, 1.2), cc), foliage, 0.35)
    return p, trunk_r


def bush(rng: np.random.Generator) -> Parts:
    """A low bush: a cluster of 1-4 ellipsoids."""
    p = Parts()
    refl = float(rng.uniform(0.1, 0.3))
    for _ in range(int(rng.integers(1, 5))):
        a = float(rng.uniform(0.3, 1.0))
        off = rng.normal(0, 0.5, 2)
        c = a * rng.uniform(0.5, 1.0)
        p.add(ELLIPSOID, (off[0], off[1], c * 0.6), (a, a * rng.uniform(0.7, 1.3), c), refl, 0.25)
    return p


def pole(rng: np.random.Generator) -> Parts:
    """A street light or sign post: a thin mast with an arm and lamp, or a retro-reflective sign."""
    p = Parts()
    r = float(rng.uniform(0.05, 0.14))
    metal = float(rng.uniform(0.3, 0.6))
    if rng.random() < 0.6:
        hgt = float(rng.uniform(5.0, 9.0))
        p.add(VCYL, (0, 0, hgt / 2 - 0.2), (r, r, hgt / 2 + 0.2), metal)
        arm = float(rng.uniform(1.0, 2.5))
        p.add(BOX, (0, arm / 2, hgt - 0.1), (0.06, arm / 2, 0.06), metal)
        p.add(BOX, (0, arm - 0.2, hgt - 0.25), (0.15, 0.3, 0.08), 0.5)
    else:
        hgt = float(rng.uniform(2.6, 3.4))
        p.add(VCYL, (0, 0, hgt / 2 - 0.2), (0.04, 0.04, hgt / 2 + 0.2), metal)
        p.add(BOX, (0, 0, hgt - 0.35), (0.02, 0.3, 0.3), 0.95)
    return p


def clutter(rng: np.random.Generator) -> tuple[Parts, float, float]:
    """Street furniture that is not a labelled class: bins, bollards, boxes, benches, hydrants.
    Returns the parts and their ``(length, width)`` footprint."""
    p = Parts()
    kind = int(rng.integers(0, 4))
    refl = float(rng.uniform(0.1, 0.6))
    if kind == 0:  # bin / electrical cabinet
        l, w, h = rng.uniform(0.5, 1.2), rng.uniform(0.4, 0.8), rng.uniform(0.8, 1.6)
        p.add(BOX, (0, 0, h / 2), (l / 2, w / 2, h / 2), refl)
    elif kind == 1:  # bollard / hydrant
        l = w = 0.3
        h = rng.uniform(0.6, 1.0)
        p.add(VCYL, (0, 0, h / 2), (0.12, 0.12, h / 2), refl)
    elif kind == 2:  # bench
        l, w = rng.uniform(1.5, 2.2), 0.6
        p.add(BOX, (0, 0, 0.45), (l / 2, 0.25, 0.04), refl)
        p.add(BOX, (0, -0.25, 0.75), (l / 2, 0.03, 0.25), refl)
        for sx in (-1, 1):
            p.add(BOX, (sx * (l / 2 - 0.1), 0, 0.2), (0.04, 0.25, 0.2), refl)
    else:  # planter / low wall piece
        l, w, h = rng.uniform(1.0, 3.0), rng.uniform(0.5, 1.0), rng.uniform(0.4, 0.9)
        p.add(BOX, (0, 0, h / 2), (l / 2, w / 2, h / 2), refl)
        p.add(ELLIPSOID, (0, 0, h + 0.25), (l / 2, w / 2, 0.35), 0.2, 0.3)
    return p, float(l), float(w)


def building(rng: np.random.Generator, length: float, depth: float, height: float) -> Parts:
    """A building block ``length`` along its x, ``depth`` along y (its facade is the +y face at
    ``y = depth / 2``), sunk 1 m into the ground; some get an awning or a fence in front."""
    p = Parts()
    refl = float(rng.uniform(0.2, 0.6))
    p.add(BOX, (0, 0, (height - 1.0) / 2), (length / 2, depth / 2, (height + 1.0) / 2), refl)
    if rng.random() < 0.3:
        p.add(BOX, (0, depth / 2 + 0.6, 3.0), (length / 2 * rng.uniform(0.3, 0.9), 0.6, 0.05), float(rng.uniform(0.1, 0.5)))
    if rng.random() < 0.3:
        # protruding ground floor / shop front, darker glass
        p.add(BOX, (0, depth / 2 + 0.15, 1.2), (length / 2 * rng.uniform(0.3, 0.9), 0.15, 1.7), 0.05, 0.4)
    return p


def wall(rng: np.random.Generator, length: float) -> tuple[Parts, float]:
    """A wall or fence along x (fences are see-through: high dropout). Returns parts and thickness."""
    p = Parts()
    if rng.random() < 0.5:
        h, t, drop = rng.uniform(0.8, 2.5), rng.uniform(0.2, 0.4), 0.0
    else:
        h, t, drop = rng.uniform(1.0, 2.0), 0.05, 0.6
    p.add(BOX, (0, 0, (h - 0.5) / 2), (length / 2, t / 2, (h + 0.5) / 2), float(rng.uniform(0.1, 0.5)), drop)
    return p, float(t)


#: Vehicles that are not a labelled class of the demo model, with their KITTI label names
#: (KITTI labels buses ``Misc``) and shares among the large vehicles of a scene.
LARGE_VEHICLES = ("Van", "Truck", "Misc", "Tram")
LARGE_VEHICLE_SHARES = (0.5, 0.25, 0.15, 0.1)

# name -> (length, width, height) as (mean, std) in metres (KITTI training labels for Van,
# Truck and Tram; a city bus for Misc)
_LARGE_VEHICLE_SIZES = {
    "Van": ((5.08, 0.45), (1.90, 0.11), (2.21, 0.25)),
    "Truck": ((10.1, 2.5), (2.59, 0.15), (3.25, 0.4)),
    "Misc": ((11.5, 1.0), (2.50, 0.08), (3.10, 0.15)),
    "Tram": ((16.0, 3.0), (2.45, 0.1), (3.40, 0.15)),
}


def large_vehicle_dims(rng: np.random.Generator, name: str) -> tuple[float, float, float]:
    """``(l, w, h)`` of a large vehicle ``name`` (one of ``LARGE_VEHICLES``), normals clipped at 2 std."""
    return tuple(float(np.clip(rng.normal(m, s), m - 2 * s, m + 2 * s)) for m, s in _LARGE_VEHICLE_SIZES[name])


def large_vehicle(rng: np.random.Generator, l: float, w: float, h: float) -> Parts:
    """A van, truck, bus or tram of ``l x w x h``: a boxy body on 2-3 axles, a dark window band
    (vans and buses) or a cab with a windscreen ahead of a cargo box (trucks, ``l > 7`` without
    windows), lamps and plates."""
    p = Parts()
    paint = float(rng.uniform(0.08, 0.5))
    li, wi = l - 2 * INSET, w - 2 * INSET
    r = float(np.clip(0.35 + 0.05 * (h - 2.0), 0.3, 0.5))
    axles = (-0.35, 0.35) if l < 7 else (-0.38, 0.25, 0.38)
    for ax in axles:
        for sy in (-1, 1):
            p.add(YCYL, (ax * li, sy * (wi / 2 - 0.12), r), (r, 0.12, r), 0.06, 0.05)
    base = r * 0.7
    truck = l > 7 and rng.random() < 0.5
    if truck:
        cab = min(2.4, 0.25 * l)
        p.add(BOX, (li / 2 - cab / 2, 0, (base + h * 0.85) / 2), (cab / 2, wi / 2, (h * 0.85 - base) / 2), paint)
        p.add(BOX, (li / 2 - 0.02, 0, h * 0.62), (0.02, wi / 2 - 0.1, h * 0.14), 0.04, 0.45)
        p.add(BOX, (-cab / 2, 0, (base + h) / 2), ((li - cab) / 2 - 0.1, wi / 2, (h - base) / 2), float(rng.uniform(0.2, 0.6)))
    else:
        p.add(BOX, (0, 0, (base + h) / 2), (li / 2, wi / 2, (h - base) / 2), paint)
        band = (base + 0.55 * (h - base), base + 0.85 * (h - base))
        p.add(BOX, (0, 0, sum(band) / 2), (li / 2 + 0.01, wi / 2 + 0.01, (band[1] - band[0]) / 2), 0.04, 0.4)
    for sx in (-1, 1):
        p.add(BOX, (sx * (li / 2 + 0.005), 0, base + 0.35), (0.015, 0.25, 0.06), 0.92)
    return p


def hedge(rng: np.random.Generator, length: float) -> tuple[Parts, float]:
    """A hedge along x: a row of foliage ellipsoids 0.8-2 m tall (see-through in parts). Returns parts and thickness."""
    p = Parts()
    h, t = float(rng.uniform(0.8, 2.0)), float(rng.uniform(0.6, 1.4))
    refl = float(rng.uniform(0.1, 0.3))
    n = max(1, int(length / 1.5))
    for k in range(n):
        x = -length / 2 + (k + 0.5) * length / n
        a = length / n * 0.75
        p.add(ELLIPSOID, (x, float(rng.normal(0, 0.1)), h / 2), (a, t / 2, h / 2 * float(rng.uniform(0.85, 1.0))), refl, 0.3)
    return p, t
