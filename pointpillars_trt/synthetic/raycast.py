"""Vectorised ray casting of a procedural scene from a spinning LiDAR at the origin.

All rays start at the origin of the LiDAR frame. Geometry is of two kinds:

* the **ground**: a sloped plane ``z = z0 + gx*x + gy*y`` carrying a straight road between two
  curbs (``v_right <= v <= v_left`` in road coordinates ``u = x cos(t) + y sin(t)``,
  ``v = -x sin(t) + y cos(t)``), raised sidewalks of height ``curb_height`` outside the curbs,
  an optional cross street (``gap_u0 <= u <= gap_u1``) where the road runs through, and
  painted lane lines; intersected analytically for every ray;
* **primitives** rotated by a yaw about +z: oriented boxes, vertical cylinders, ellipsoids and
  cylinders whose axis is the local y axis (wheels). Primitives are grouped (one group per
  object, tree, building, ...); each group has an oriented bounding box whose angular footprint
  (azimuth columns x beams) limits the rays tested against the group's primitives, so the cost
  is proportional to the footprints, not rays x primitives.

For groups that belong to a labelled object the caster also counts the rays that hit the object
when everything else is ignored ("would hit"); comparing with the rays whose nearest hit is the
object gives the fraction of the object hidden by nearer geometry (occlusion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

BOX, VCYL, ELLIPSOID, YCYL = 0, 1, 2, 3

#: Ground zone codes, reported as ``hit = -(2 + zone)``.
ASPHALT, MARKING, CURB, SIDEWALK, VERGE = 0, 1, 2, 3, 4
NUM_GROUND_ZONES = 5
NO_HIT = -1

_EPS = 1e-6


@dataclass(frozen=True)
class Ground:
    """The analytic ground (see the module docstring). Lengths in metres, angles in radians.

    ``lane_lines``: ``[L]`` lateral positions ``v`` of painted lines; ``lane_dashed``: ``[L]``
    bools; dashes are ``dash_length`` long every ``dash_period`` along ``u``. ``sidewalk_width``
    is the paved width outside each curb; farther out the surface is a verge (grass/soil).
    Without a cross street ``gap_u0 > gap_u1``.
    """

    z0: float
    gx: float
    gy: float
    road_angle: float
    v_left: float
    v_right: float
    curb_height: float
    sidewalk_width_left: float
    sidewalk_width_right: float
    gap_u0: float = 1.0
    gap_u1: float = -1.0
    lane_lines: tuple[float, ...] = ()
    lane_dashed: tuple[bool, ...] = ()
    dash_period: float = 9.0
    dash_length: float = 3.0

    def height(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray | float:
        """Road-plane height ``z0 + gx*x + gy*y`` at LiDAR ``(x, y)`` (sidewalks are ``curb_height`` higher)."""
        return self.z0 + self.gx * np.asarray(x) + self.gy * np.asarray(y)

    def to_road(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LiDAR ``(x, y)`` -> road coordinates ``(u, v)`` (u along the road, v to its left)."""
        c, s = math.cos(self.road_angle), math.sin(self.road_angle)
        return c * np.asarray(x) + s * np.asarray(y), -s * np.asarray(x) + c * np.asarray(y)

    def from_road(self, u: np.ndarray | float, v: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Road coordinates ``(u, v)`` -> LiDAR ``(x, y)``."""
        c, s = math.cos(self.road_angle), math.sin(self.road_angle)
        u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
        return c * u - s * v, s * u + c * v

    def in_road(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """True where ``(u, v)`` is on the road surface (between the curbs or in the cross street)."""
        u, v = np.asarray(u), np.asarray(v)
        return ((v >= self.v_right) & (v <= self.v_left)) | ((u >= self.gap_u0) & (u <= self.gap_u1))

    def surface_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the walkable surface at LiDAR ``(x, y)``: road plane, or plane + curb height off the road."""
        u, v = self.to_road(x, y)
        return self.height(x, y) + np.where(self.in_road(u, v), 0.0, self.curb_height)

    def params(self) -> np.ndarray:
        """Packed float64 parameters for the kernel."""
        return np.array(
            [
                self.z0, self.gx, self.gy, math.cos(self.road_angle), math.sin(self.road_angle),
                self.v_left, self.v_right, self.curb_height, self.gap_u0, self.gap_u1,
                self.sidewalk_width_left, self.sidewalk_width_right, self.dash_period, self.dash_length,
            ],
            dtype=np.float64,
        )


@dataclass(frozen=True)
class Primitives:
    """Scene primitives, grouped. ``P`` primitives in ``G`` groups, ``K`` labelled objects.

    * ``kind`` ``[P]`` int32: BOX, VCYL, ELLIPSOID or YCYL.
    * ``center`` ``[P, 3]`` float64, LiDAR frame.
    * ``half`` ``[P, 3]`` float64: box half extents (local x, y, z); VCYL ``(r, r, half height)``;
      ELLIPSOID semi-axes; YCYL ``(r, half length along local y, r)``.
    * ``yaw`` ``[P]`` float64: rotation about +z, CCW from +x.
    * ``reflectivity`` ``[P]`` float64 in [0, 1]; ``dropout`` ``[P]`` float64 extra loss probability.
    * ``group_start`` ``[G + 1]`` int32: primitives of group g are ``group_start[g]:group_start[g+1]``.
    * ``group_object`` ``[G]`` int32: labelled-object index of the group, or -1.
    * ``group_center``/``group_half``/``group_yaw``: each group's oriented bounding box.
    """

    kind: np.ndarray
    center: np.ndarray
    half: np.ndarray
    yaw: np.ndarray
    reflectivity: np.ndarray
    dropout: np.ndarray
    group_start: np.ndarray
    group_object: np.ndarray
    group_center: np.ndarray
    group_half: np.ndarray
    group_yaw: np.ndarray

    @property
    def num_groups(self) -> int:
        return int(self.group_object.shape[0])


@dataclass(frozen=True)
class CastResult:
    """What the caster returns, per ray ``[B, A]`` unless stated.

    * ``range``: distance to the nearest hit (float64, ``inf`` if none within ``max_range``).
    * ``hit``: primitive index ``>= 0``, ``NO_HIT`` (-1) or ``-(2 + ground zone)``.
    * ``cos_incidence``: ``|cos|`` of the angle between the ray and the surface normal (float32).
    * ``would_hit``: ``[K]`` int64 rays that hit object k when all other geometry is ignored.
    """

    range: np.ndarray
    hit: np.ndarray
    cos_incidence: np.ndarray
    would_hit: np.ndarray


@numba.njit(cache=True, inline="always")
def _box_hit(ox, oy, oz, dx, dy, dz, hx, hy, hz):
    tn = -np.inf
    tf = np.inf
    axis = -1
    o = (ox, oy, oz)
    d = (dx, dy, dz)
    h = (hx, hy, hz)
    for k in range(3):
        if abs(d[k]) < 1e-12:
            if abs(o[k]) > h[k]:
                return np.inf, 0.0
            continue
        t1 = (-h[k] - o[k]) / d[k]
        t2 = (h[k] - o[k]) / d[k]
        if t1 > t2:
            t1, t2 = t2, t1
        if t1 > tn:
            tn = t1
            axis = k
        if t2 < tf:
            tf = t2
        if tn > tf:
            return np.inf, 0.0
    if tn <= _EPS or axis < 0:
        return np.inf, 0.0
    return tn, abs(d[axis])


@numba.njit(cache=True, inline="always")
def _vcyl_hit(ox, oy, oz, dx, dy, dz, r, hz):
    best = np.inf
    cosv = 0.0
    a = dx * dx + dy * dy
    c = ox * ox + oy * oy - r * r
    if c <= 0.0 and abs(oz) <= hz:
        return np.inf, 0.0  # origin inside
    if a > 1e-12:
        b = 2.0 * (ox * dx + oy * dy)
        disc = b * b - 4.0 * a * c
        if disc >= 0.0:
            t = (-b - math.sqrt(disc)) / (2.0 * a)
            if t > _EPS and abs(oz + t * dz) <= hz:
                px = ox + t * dx
                py = oy + t * dy
                best = t
                cosv = abs(px * dx + py * dy) / r
    if abs(dz) > 1e-12:
        for cap in (hz, -hz):
            if (cap > 0 and oz > cap) or (cap < 0 and oz < cap):
                t = (cap - oz) / dz
                if _EPS < t < best:
                    px = ox + t * dx
                    py = oy + t * dy
                    if px * px + py * py <= r * r:
                        best = t
                        cosv = abs(dz)
    return best, cosv


@numba.njit(cache=True, inline="always")
def _ellipsoid_hit(ox, oy, oz, dx, dy, dz, a, b, c):
    qx, qy, qz = ox / a, oy / b, oz / c
    ex, ey, ez = dx / a, dy / b, dz / c
    aa = ex * ex + ey * ey + ez * ez
    bb = 2.0 * (qx * ex + qy * ey + qz * ez)
    cc = qx * qx + qy * qy + qz * qz - 1.0
    if cc <= 0.0:
        return np.inf, 0.0
    disc = bb * bb - 4.0 * aa * cc
    if disc < 0.0:
        return np.inf, 0.0
    t = (-bb - math.sqrt(disc)) / (2.0 * aa)
    if t <= _EPS:
        return np.inf, 0.0
    nx = (ox + t * dx) / (a * a)
    ny = (oy + t * dy) / (b * b)
    nz = (oz + t * dz) / (c * c)
    nn = math.sqrt(nx * nx + ny * ny + nz * nz)
    if nn <= 0.0:
        return t, 1.0
    return t, abs(nx * dx + ny * dy + nz * dz) / nn


@numba.njit(cache=True, inline="always")
def _primitive_hit(kind, cx, cy, cz, hx, hy, hz, cyaw, syaw, dx, dy, dz):
    # ray origin is the LiDAR origin; move to the primitive's local frame (rotate by -yaw)
    ox = -(cyaw * cx + syaw * cy)
    oy = -(-syaw * cx + cyaw * cy)
    oz = -cz
    lx = cyaw * dx + syaw * dy
    ly = -syaw * dx + cyaw * dy
    if kind == 0:
        return _box_hit(ox, oy, oz, lx, ly, dz, hx, hy, hz)
    if kind == 1:
        return _vcyl_hit(ox, oy, oz, lx, ly, dz, hx, hz)
    if kind == 2:
        return _ellipsoid_hit(ox, oy, oz, lx, ly, dz, hx, hy, hz)
    # YCYL: axis along local y -> swap y and z and reuse the vertical cylinder
    return _vcyl_hit(ox, oz, oy, lx, dz, ly, hx, hy)


@numba.njit(cache=True)
def _footprint(cx, cy, cz, hx, hy, hz, yaw):
    """Azimuth interval (lo, hi, full) and elevation interval (el_lo, el_hi) of an oriented box."""
    c = math.cos(yaw)
    s = math.sin(yaw)
    # origin in the box's local frame
    ox = -(c * cx + s * cy)
    oy = -(-s * cx + c * cy)
    ddx = max(abs(ox) - hx, 0.0)
    ddy = max(abs(oy) - hy, 0.0)
    rho_min = math.sqrt(ddx * ddx + ddy * ddy)
    rho_max = 0.0
    full = rho_min <= 1e-9
    phic = math.atan2(cy, cx)
    lo = np.inf
    hi = -np.inf
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            px = cx + c * sx * hx - s * sy * hy
            py = cy + s * sx * hx + c * sy * hy
            rho_max = max(rho_max, math.sqrt(px * px + py * py))
            dphi = math.atan2(py, px) - phic
            while dphi > math.pi:
                dphi -= 2.0 * math.pi
            while dphi < -math.pi:
                dphi += 2.0 * math.pi
            lo = min(lo, dphi)
            hi = max(hi, dphi)
    zmin = cz - hz
    zmax = cz + hz
    el_hi = math.atan2(zmax, rho_min if zmax >= 0.0 else rho_max)
    el_lo = math.atan2(zmin, rho_min if zmin < 0.0 else rho_max)
    return phic + lo, phic + hi, full, el_lo, el_hi


@numba.njit(cache=True, inline="always")
def _road_zone(u, v, lane_v, lane_dashed, gu0, gu1, dash_period, dash_len):
    """ASPHALT, or MARKING where road coordinates ``(u, v)`` lie on a painted line (none in the cross street)."""
    zone = ASPHALT
    if not (gu0 <= u <= gu1):
        for k in range(lane_v.shape[0]):
            if abs(v - lane_v[k]) < 0.075:
                if (not lane_dashed[k]) or ((u % dash_period) < dash_len):
                    zone = MARKING
    return zone


@numba.njit(cache=True, inline="always")
def _off_road_zone(v, v_left, v_right, sw_left, sw_right):
    """SIDEWALK within the paved width outside a curb at lateral position ``v``, else VERGE."""
    if (v > v_left and v - v_left <= sw_left) or (v < v_right and v_right - v <= sw_right):
        return SIDEWALK
    return VERGE


@numba.njit(cache=True, inline="always")
def _hit_curb_faces(g, dx, dy, dz, best, zone, cosv):
    """``(t, zone, |cos|)`` of ray ``d``, updated where a curb face is nearer than ``best``: the faces
    along the road (``v = v_left``, ``v = v_right``) and at the cross street (``u = gap_u0``, ``gap_u1``).
    ``g`` is the tuple ``(z0, gx, gy, cos t, sin t, v_left, v_right, curb_height, gap_u0, gap_u1)``."""
    z0, gx, gy, ct, st, v_left, v_right, hc, gu0, gu1 = g
    du = ct * dx + st * dy
    dv = -st * dx + ct * dy
    for f in range(4):
        if f < 2:
            lim = v_left if f == 0 else v_right
            if abs(dv) < 1e-12:
                continue
            t = lim / dv
        else:
            if gu0 > gu1:
                continue
            lim = gu0 if f == 2 else gu1
            if abs(du) < 1e-12:
                continue
            t = lim / du
        if t <= 0.0 or t >= best:
            continue
        x = t * dx
        y = t * dy
        z = t * dz
        u = ct * x + st * y
        v = -st * x + ct * y
        if f < 2 and (gu0 <= u <= gu1):
            continue
        if f >= 2 and (v_right <= v <= v_left):
            continue
        zg = z0 + gx * x + gy * y
        if zg <= z <= zg + hc:
            best = t
            zone = CURB
            cosv = abs(dv) if f < 2 else abs(du)
    return best, zone, cosv


@numba.njit(cache=True)
def _cast_ground(ground, lane_v, lane_dashed, cos_el, sin_el, cos_az, sin_az, max_range, rng_out, hit_out, cos_out):
    """Write the nearest ground hit (road or sidewalk plane, curb face) within ``max_range`` of each
    ``[B, A]`` ray (beam i, column j) into ``rng_out``/``hit_out``/``cos_out``; ``ground`` is
    :meth:`Ground.params`. Misses leave the outputs as they are."""
    z0, gx, gy, ct, st = ground[0], ground[1], ground[2], ground[3], ground[4]
    v_left, v_right, hc, gu0, gu1 = ground[5], ground[6], ground[7], ground[8], ground[9]
    sw_left, sw_right, dash_period, dash_len = ground[10], ground[11], ground[12], ground[13]
    nn = math.sqrt(gx * gx + gy * gy + 1.0)
    curb = (z0, gx, gy, ct, st, v_left, v_right, hc, gu0, gu1)
    nb = cos_el.shape[0]
    na = cos_az.shape[0]
    for i in range(nb):
        for j in range(na):
            dx = cos_el[i] * cos_az[j]
            dy = cos_el[i] * sin_az[j]
            dz = sin_el[i]
            best = np.inf
            zone = -1
            cosv = 0.0
            den = dz - gx * dx - gy * dy
            if den < -1e-12:
                cplane = abs(den) / nn
                # road plane
                t = z0 / den
                x = t * dx
                y = t * dy
                u = ct * x + st * y
                v = -st * x + ct * y
                if (v_right <= v <= v_left) or (gu0 <= u <= gu1):
                    best = t
                    zone = _road_zone(u, v, lane_v, lane_dashed, gu0, gu1, dash_period, dash_len)
                    cosv = cplane
                # raised sidewalk plane
                t = (z0 + hc) / den
                if t > 0.0 and t < best:
                    x = t * dx
                    y = t * dy
                    u = ct * x + st * y
                    v = -st * x + ct * y
                    if not ((v_right <= v <= v_left) or (gu0 <= u <= gu1)):
                        best = t
                        zone = _off_road_zone(v, v_left, v_right, sw_left, sw_right)
                        cosv = cplane
            best, zone, cosv = _hit_curb_faces(curb, dx, dy, dz, best, zone, cosv)
            if zone >= 0 and best <= max_range:
                rng_out[i, j] = best
                hit_out[i, j] = -(2 + zone)
                cos_out[i, j] = cosv


@numba.njit(cache=True)
def _cast_groups(
    kind, center, half, yaw, group_start, group_object, group_center, group_half, group_yaw,
    el, cos_el, sin_el, cos_az, sin_az, az0, daz, max_range, rng_out, hit_out, cos_out, would_hit,
):
    nb = cos_el.shape[0]
    na = rng_out.shape[1]
    pc = np.cos(yaw)
    ps = np.sin(yaw)
    for g in range(group_object.shape[0]):
        p0 = group_start[g]
        p1 = group_start[g + 1]
        if p1 <= p0:
            continue
        obj = group_object[g]
        lo, hi, full, el_lo, el_hi = _footprint(
            group_center[g, 0], group_center[g, 1], group_center[g, 2],
            group_half[g, 0], group_half[g, 1], group_half[g, 2], group_yaw[g],
        )
        if full:
            j0 = 0
            j1 = na - 1
        else:
            j0 = int(math.floor((lo - az0) / daz))
            j1 = int(math.ceil((hi - az0) / daz))
            if j1 - j0 >= na:
                j0 = 0
                j1 = na - 1
        for i in range(nb):
            if el[i] < el_lo - 1e-9 or el[i] > el_hi + 1e-9:
                continue
            ce = cos_el[i]
            dz = sin_el[i]
            for jj in range(j0, j1 + 1):
                j = jj % na
                dx = ce * cos_az[j]
                dy = ce * sin_az[j]
                tbest = np.inf
                cbest = 0.0
                pbest = -1
                for p in range(p0, p1):
                    t, cs = _primitive_hit(
                        kind[p], center[p, 0], center[p, 1], center[p, 2],
                        half[p, 0], half[p, 1], half[p, 2], pc[p], ps[p], dx, dy, dz,
                    )
                    if t < tbest:
                        tbest = t
                        cbest = cs
                        pbest = p
                if tbest <= max_range:
                    if obj >= 0:
                        would_hit[obj] += 1
                    if tbest < rng_out[i, j]:
                        rng_out[i, j] = tbest
                        hit_out[i, j] = pbest
                        cos_out[i, j] = cbest


def cast(
    prims: Primitives,
    ground: Ground,
    elevations: np.ndarray,
    num_azimuth: int,
    azimuth_start: float,
    max_range: float,
    num_objects: int,
) -> CastResult:
    """Cast ``len(elevations) x num_azimuth`` rays from the origin against ``ground`` and ``prims``.

    ``elevations`` ``[B]`` radians (descending); column j has azimuth
    ``azimuth_start + j * 2*pi/num_azimuth``. ``num_objects`` sizes ``would_hit``.
    """
    el = np.ascontiguousarray(elevations, dtype=np.float64)
    daz = 2.0 * math.pi / num_azimuth
    az = azimuth_start + np.arange(num_azimuth, dtype=np.float64) * daz
    nb = el.shape[0]
    rng_out = np.full((nb, num_azimuth), np.inf, dtype=np.float64)
    hit_out = np.full((nb, num_azimuth), NO_HIT, dtype=np.int32)
    cos_out = np.zeros((nb, num_azimuth), dtype=np.float32)
    would_hit = np.zeros(max(num_objects, 0), dtype=np.int64)
    cos_el, sin_el = np.cos(el), np.sin(el)
    _cast_ground(
        ground.params(),
        np.asarray(ground.lane_lines, dtype=np.float64).reshape(-1),
        np.asarray(ground.lane_dashed, dtype=np.bool_).reshape(-1),
        cos_el, sin_el, np.cos(az), np.sin(az), float(max_range), rng_out, hit_out, cos_out,
    )
    if prims.num_groups:
        _cast_groups(
            prims.kind.astype(np.int32), prims.center, prims.half, prims.yaw,
            prims.group_start.astype(np.int32), prims.group_object.astype(np.int32),
            prims.group_center, prims.group_half, prims.group_yaw,
            el, cos_el, sin_el, np.cos(az), np.sin(az), float(azimuth_start), daz, float(max_range),
            rng_out, hit_out, cos_out, would_hit,
        )
    return CastResult(range=rng_out, hit=hit_out, cos_incidence=cos_out, would_hit=would_hit)
