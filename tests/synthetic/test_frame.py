"""Whole synthetic frames: shapes, ranges, determinism, ground height, object sizes and points."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.synthetic import CLASS_NAMES, SensorConfig, generate_frame, hdl64e_elevations
from pointpillars_trt.synthetic.frame import points_in_boxes

SEED = 7


@pytest.fixture(scope="module")
def frames():
    return [generate_frame(SEED, i) for i in range(2)]


def test_hdl64e_beams():
    el = np.array(hdl64e_elevations())
    assert el.shape == (64,) and el[0] == 2.0 and el[-1] == -24.9
    assert np.all(np.diff(el) < 0)
    gaps = -np.diff(el)
    assert gaps[:31].mean() < gaps[32:].mean()  # denser near the horizon
    with pytest.raises(ValueError):
        SensorConfig(elevations_deg=(1.0, 2.0))


def test_points_are_float32_in_range(frames):
    sensor = SensorConfig()
    for f in frames:
        p = f.points
        assert p.dtype == np.float32 and p.ndim == 2 and p.shape[1] == 4
        assert 50_000 < len(p) < 250_000
        assert np.all(np.isfinite(p))
        r = np.linalg.norm(p[:, :3].astype(np.float64), axis=1)
        assert r.max() <= sensor.max_range + 1e-3 and r.min() > 0.5
        assert p[:, 3].min() >= 0.0 and p[:, 3].max() <= 1.0
        assert p[:, 2].min() > -1.73 - 4.0  # nothing far below the (gently sloped) ground
        # a 360-degree cloud
        az = np.arctan2(p[:, 1], p[:, 0])
        assert np.histogram(az, bins=8, range=(-np.pi, np.pi))[0].min() > 0


def test_same_seed_same_frame_and_other_seed_differs(frames):
    again = generate_frame(SEED, 1)
    assert np.array_equal(again.points, frames[1].points)
    assert np.array_equal(again.boxes, frames[1].boxes) and again.names == frames[1].names
    other = generate_frame(SEED + 1, 1)
    assert other.points.shape != frames[1].points.shape or not np.array_equal(other.points, frames[1].points)
    assert not np.array_equal(frames[0].points[:1000], frames[1].points[:1000])


def test_ground_near_the_sensor_is_mount_height_below(frames):
    for f in frames:
        p = f.points.astype(np.float64)
        r = np.hypot(p[:, 0], p[:, 1])
        near = p[(r > 4.0) & (r < 8.0) & (f.point_object < 0)]
        low = near[near[:, 2] < -1.3]
        assert len(low) > 1000
        # road and sidewalk (0.1-0.2 m higher) within the slope (<= 3 %) over 8 m
        assert np.median(low[:, 2]) == pytest.approx(-1.73, abs=0.12)
        assert np.percentile(low[:, 2], 5) > -1.73 - 0.3


def test_objects_sizes_classes_and_points(frames):
    for f in frames:
        assert f.boxes.shape == (len(f.names), 7)
        assert set(f.names) <= set(CLASS_NAMES)
        assert {"Car", "Pedestrian", "Cyclist"} <= set(f.names)
        cars = f.boxes[np.array(f.names) == "Car"]
        assert np.all((cars[:, 3] > 2.8) & (cars[:, 3] < 5.0))
        assert np.all((cars[:, 4] > 1.3) & (cars[:, 4] < 1.9))
        assert np.all((cars[:, 5] > 1.25) & (cars[:, 5] < 1.9))
        peds = f.boxes[np.array(f.names) == "Pedestrian"]
        assert np.all((peds[:, 5] > 1.4) & (peds[:, 5] < 2.05) & (peds[:, 4] < 0.8) & (peds[:, 3] < 1.1))
        # boxes stand on the ground: bottom within curb height + slope of -1.73 near the sensor
        near = np.hypot(f.boxes[:, 0], f.boxes[:, 1]) < 15
        bottom = f.boxes[near, 2] - f.boxes[near, 5] / 2
        assert np.all(np.abs(bottom + 1.73) < 0.2 + 0.03 * 15)
        # the returns of an object lie in its box (range noise may push a few out)
        for k in range(len(f.names)):
            mine = f.points[f.point_object == k]
            if len(mine) >= 20:
                assert points_in_boxes(mine, f.boxes[k : k + 1]).mean() > 0.9
        assert np.all(f.num_points <= np.bincount(f.point_object[f.point_object >= 0], minlength=len(f.names)))
        # occlusion statistics are consistent
        assert np.all(f.visible_hits <= f.would_hit)
        frac = f.occluded_fraction
        assert np.all((frac >= 0) & (frac <= 1))
        assert np.any(frac < 0.05) and np.any(frac > 0.5)


def test_no_boxes_overlap_in_bev(frames):
    # a 5 x 5 grid over each box footprint: no sample lies inside another box
    g = np.linspace(-0.45, 0.45, 5)
    for f in frames:
        for k, b in enumerate(f.boxes):
            lx, ly = np.meshgrid(g * b[3], g * b[4])
            c, s = np.cos(b[6]), np.sin(b[6])
            pts = np.stack([b[0] + c * lx - s * ly, b[1] + s * lx + c * ly, np.full(lx.shape, b[2])], -1).reshape(-1, 3)
            others = np.delete(np.arange(len(f.boxes)), k)
            assert not points_in_boxes(pts, f.boxes[others]).any(), f"box {k} overlaps another"
