"""Generator versions: v1 frames unchanged, v2's sensor, returns and scenes, the mix, bad versions."""

from __future__ import annotations

import numpy as np
import pytest

from tests.synthetic.test_scene import digest
from pointpillars_trt.errors import DatasetError
from pointpillars_trt.synthetic import GENERATOR_VERSION, generate_frame, generator_settings
from pointpillars_trt.synthetic.realism import RealismStats, intensity_histogram, synthetic_stats
from pointpillars_trt.synthetic.returns import ReturnModel, falloff, intensity, kitti_like_returns

# generate_frame(0, i) (v1) before generator v2 was added
V1_FRAME_DIGESTS = {0: "310223d9ffe4c908", 1: "b0867036290a2c60"}


def frame_of(settings, index, seed=0):
    return generate_frame(seed, index, settings.sensor, settings.scene, settings.returns)


@pytest.mark.parametrize("index", sorted(V1_FRAME_DIGESTS))
def test_v1_frames_are_unchanged(index):
    for f in (generate_frame(0, index), frame_of(generator_settings("1"), index)):
        assert digest(f.points, f.boxes, f.num_points, f.point_object) == V1_FRAME_DIGESTS[index]


@pytest.fixture(scope="module")
def v2_frames():
    return [frame_of(generator_settings("2"), i) for i in range(3)]


def test_v2_scenes_have_large_vehicles_and_kitti_sizes(v2_frames):
    names = [n for f in v2_frames for n in f.names]
    assert GENERATOR_VERSION == "2"
    assert {"Car", "Pedestrian", "Cyclist"} <= set(names)
    assert {"Van", "Truck", "Misc", "Tram"} & set(names)
    for f in v2_frames:
        big = f.boxes[[n in ("Truck", "Misc", "Tram") for n in f.names]]
        assert np.all(big[:, 3] > 5.0)
        assert f.points.dtype == np.float32 and np.all(np.isfinite(f.points))


def test_v2_intensity_is_dark_on_cars_and_far_away(v2_frames):
    f = v2_frames[0]
    car = np.isin(f.point_object, [k for k, n in enumerate(f.names) if n == "Car"])
    assert (f.points[car, 3] == 0).mean() > 0.3  # glossy paint: most car returns read 0, as KITTI's
    r = np.hypot(f.points[:, 0], f.points[:, 1])
    assert f.points[r < 25, 3].mean() > 0.15 and f.points[(r > 50) & (r < 80), 3].mean() < 0.05
    v1 = generate_frame(0, 0)
    assert (v1.points[:, 3] == 0).mean() < 0.01  # v1 had no such zeros


def test_return_model_defaults_are_v1_and_formulas():
    assert ReturnModel().is_v1 and not kitti_like_returns().is_v1
    m = kitti_like_returns()
    assert falloff(np.array([0.0, 36.0]), m).tolist() == [1.0, 0.5]
    i = intensity(np.array([0.5, 0.5]), np.array([1.0, 1.0]), np.array([5.0, 5.0]), np.array([False, True]), np.zeros(2), m)
    assert 0 < i[1] <= i[0] <= 1 and np.allclose(i, np.round(i, 2))


def test_mix_keeps_the_scene_and_changes_the_sensor():
    plain, mixed = frame_of(generator_settings("2"), 1), frame_of(generator_settings("2", 0.3), 1)
    assert np.array_equal(plain.boxes, mixed.boxes) and plain.names == mixed.names
    assert not np.array_equal(plain.points, mixed.points)


def test_bad_versions():
    with pytest.raises(DatasetError, match="version"):
        generator_settings("3")
    with pytest.raises(DatasetError, match="no mix"):
        generator_settings("1", 0.2)
    with pytest.raises(DatasetError, match="mix"):
        generator_settings("2", 1.5)


def test_realism_stats_bins_and_histogram():
    stats, clouds = synthetic_stats(generator_settings("2"), 0, [0])
    rows = stats.table()
    assert [r["range"] for r in rows][0] == "5-10" and stats.frames == 1
    assert sum(r["cars"] for r in rows) > 0
    assert abs(intensity_histogram(clouds).sum() - 1.0) < 1e-9
    s = RealismStats()
    s.add_frame(np.array([[7.0, 0, -1, 0.0], [15.0, 0, -1, 0.5]], np.float32), np.array([[15.0, 0, -1, 4, 2, 2, 0]]))
    t = s.table()
    assert t[0]["zero_intensity"] == 1.0 and t[1]["mean_intensity"] == 0.5 and t[1]["median_car_points"] == 1.0
