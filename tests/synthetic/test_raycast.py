"""The ray caster against primitives with known analytic hits, the ground with its curbs, and the
occlusion counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pointpillars_trt.synthetic.raycast import (
    ASPHALT,
    BOX,
    CURB,
    ELLIPSOID,
    NO_HIT,
    SIDEWALK,
    VCYL,
    VERGE,
    YCYL,
    Ground,
    Primitives,
    cast,
)

NA = 360  # one-degree columns keep the analytic checks simple


def _prims(rows, objects=None) -> Primitives:
    """One group per row: (kind, cx, cy, cz, hx, hy, hz, yaw); group k is object objects[k]."""
    a = np.array(rows, dtype=np.float64).reshape(-1, 8)
    n = len(a)
    objects = [-1] * n if objects is None else objects
    return Primitives(
        kind=a[:, 0].astype(np.int32),
        center=np.ascontiguousarray(a[:, 1:4]),
        half=np.ascontiguousarray(a[:, 4:7]),
        yaw=np.ascontiguousarray(a[:, 7]),
        reflectivity=np.full(n, 0.5),
        dropout=np.zeros(n),
        group_start=np.arange(n + 1, dtype=np.int32),
        group_object=np.array(objects, dtype=np.int32),
        group_center=np.ascontiguousarray(a[:, 1:4]),
        group_half=np.ascontiguousarray(np.maximum(a[:, 4:7], a[:, [5, 4, 6]]) * 1.5),
        group_yaw=np.ascontiguousarray(a[:, 7]),
    )


FLAT = Ground(z0=-1.73, gx=0.0, gy=0.0, road_angle=0.0, v_left=4.0, v_right=-4.0, curb_height=0.15,
              sidewalk_width_left=3.0, sidewalk_width_right=3.0)
HORIZON = np.array([0.0])


def _column(azimuth_deg: float) -> int:
    return int(round(azimuth_deg)) % NA


@pytest.mark.parametrize(
    "row, azimuth, expected",
    [
        ((BOX, 10.0, 0.0, 0.0, 1.0, 2.0, 1.0, 0.0), 0.0, 9.0),
        ((BOX, 0.0, 10.0, 0.0, 1.0, 2.0, 1.0, math.pi / 2), 90.0, 9.0),  # long side faces the ray
        ((BOX, -10.0, 0.0, 0.0, 1.0, 1.0, 1.0, math.pi / 4), 180.0, 10.0 - math.sqrt(2.0)),  # corner first
        ((VCYL, 0.0, -8.0, 0.0, 0.5, 0.5, 1.0, 0.3), -90.0, 7.5),
        ((ELLIPSOID, 6.0, 0.0, 0.0, 2.0, 1.0, 1.0, 0.0), 0.0, 4.0),
        ((YCYL, 7.0, 0.0, 0.0, 0.4, 0.1, 0.4, 0.0), 0.0, 6.6),  # wheel seen along its rim
        ((YCYL, 7.0, 0.0, 0.0, 0.4, 0.1, 0.4, math.pi / 2), 0.0, 6.9),  # wheel seen face on
    ],
)
def test_primitive_hit_distance(row, azimuth, expected):
    res = cast(_prims([row]), FLAT, HORIZON, NA, 0.0, 120.0, 0)
    j = _column(azimuth)
    assert res.hit[0, j] == 0
    assert res.range[0, j] == pytest.approx(expected, abs=1e-9)
    assert 0.0 <= res.cos_incidence[0, j] <= 1.0
    # nothing else on the horizon: the other columns miss
    others = np.delete(np.arange(NA), j)
    assert np.all(res.hit[0, others[np.abs(((others - j + NA // 2) % NA) - NA // 2) > 30]] == NO_HIT)


def test_object_behind_the_sensor_across_the_azimuth_seam():
    # a box straddling azimuth +-180 degrees (columns 359 and 0 of a seam at 180)
    res = cast(_prims([(BOX, -10.0, 0.0, 0.0, 1.0, 3.0, 1.0, 0.0)]), FLAT, HORIZON, NA, math.pi - 0.5 * math.pi / 180, 120.0, 0)
    assert res.hit[0, 0] == 0 and res.hit[0, NA - 1] == 0 and res.hit[0, 1] == 0


def test_ground_plane_and_sidewalk_heights():
    el = np.deg2rad(np.array([-10.0, -20.0]))
    res = cast(_prims(np.zeros((0, 8))), FLAT, el, NA, 0.0, 120.0, 0)
    # straight ahead (along the road) every beam lands on the road plane
    for i in range(2):
        assert res.range[i, 0] * math.sin(el[i]) == pytest.approx(-1.73, abs=1e-9)
        assert res.hit[i, 0] == -(2 + ASPHALT)
    # sideways (+90 deg) both beams pass the curb at v = 4 m and land on the raised surface:
    # -20 deg at 4.3 m (sidewalk, 3 m wide), -10 deg at 9.0 m (the verge beyond it)
    for i, zone in ((1, SIDEWALK), (0, VERGE)):
        assert res.range[i, 90] * math.sin(el[i]) == pytest.approx(-1.73 + 0.15, abs=1e-9)
        assert res.hit[i, 90] == -(2 + zone)


def test_curb_face_is_hit_by_rays_that_reach_it_below_the_sidewalk():
    ground = Ground(z0=-1.73, gx=0.0, gy=0.0, road_angle=0.0, v_left=9.0, v_right=-9.0, curb_height=0.3,
                    sidewalk_width_left=3.0, sidewalk_width_right=3.0)
    # the ray at elevation e crosses v = 9 m at height 9 tan(e); pick e so that is inside the curb band
    e = math.atan2(-1.73 + 0.15, 9.0)
    res = cast(_prims(np.zeros((0, 8))), ground, np.array([e]), NA, 0.0, 120.0, 0)
    assert res.hit[0, 90] == -(2 + CURB)
    assert res.range[0, 90] * math.cos(e) == pytest.approx(9.0, abs=1e-9)


def test_would_hit_counts_rays_an_occluder_blocks():
    el = np.deg2rad(np.linspace(1.0, -1.0, 5))
    rows = [
        (BOX, 20.0, 0.0, 0.0, 1.0, 3.0, 2.0, 0.0),  # object 0, far
        (BOX, 10.0, 0.0, 0.0, 0.5, 0.2, 2.0, 0.0),  # object 1, a thin post in front of it
    ]
    res = cast(_prims(rows, objects=[0, 1]), FLAT, el, 3600, 0.0, 120.0, 2)
    visible = np.bincount(res.hit[res.hit >= 0], minlength=2)
    assert res.would_hit[1] == visible[1] > 0  # nothing hides the post
    assert res.would_hit[0] > visible[0] > 0  # the post hides part of the far box
    # the hidden share is about the post's angular width over the box's
    assert 1 - visible[0] / res.would_hit[0] == pytest.approx((0.2 / 9.5) / (3.0 / 19.0), rel=0.25)


def test_max_range_drops_far_hits():
    res = cast(_prims([(BOX, 50.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0)], objects=[0]), FLAT, HORIZON, NA, 0.0, 30.0, 1)
    assert np.all(res.hit == NO_HIT) and res.would_hit[0] == 0
