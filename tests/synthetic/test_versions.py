"""Generator versions: v1 to v5 frames unchanged, v2's to v6's sensor, returns and scenes, the mix, bad versions."""

from __future__ import annotations

import numpy as np
import pytest

from tests.synthetic.test_scene import digest
from pointpillars_trt.errors import DatasetError
from pointpillars_trt.synthetic import GENERATOR_VERSION, generate_frame, generator_settings
from pointpillars_trt.synthetic.realism import RealismStats, intensity_histogram, synthetic_stats
from pointpillars_trt.synthetic.returns import (ReturnModel, cab_keep, falloff, frame_cab_fade, intensity, kitti_like_returns,
                                                rough_ground_detect)

# generate_frame(0, i) (v1) before generator v2 was added
V1_FRAME_DIGESTS = {0: "310223d9ffe4c908", 1: "b0867036290a2c60"}
# generator_settings("2", mix) frames 0 and 1 before generator v3 was added
V2_FRAME_DIGESTS = {(0.0, 0): "619460eca571c2a0", (0.0, 1): "bb37bde889c7ceea", (0.3, 0): "d08dcdcc31bf11a8",
                    (0.3, 1): "6e5f6fe4a48c0d81"}
# generator_settings("3", mix) frames 0 and 1 before generator v4 was added
V3_FRAME_DIGESTS = {(0.0, 0): "696d6967bbc978b3", (0.0, 1): "979e312d1e5d2570", (0.3, 0): "0f9aac8e3a63c104",
                    (0.3, 1): "1573fbd41d81b9dd"}
# generator_settings("4", mix) frames 0 and 1 before generator v5 was added
V4_FRAME_DIGESTS = {(0.0, 0): "5ac8b8cad3a4e0bf", (0.0, 1): "7e03498ac169044b", (0.3, 0): "b9aec19336347574",
                    (0.3, 1): "b88a0cd5c36b050a"}


def frame_of(settings, index, seed=0):
    return generate_frame(seed, index, settings.sensor, settings.scene, settings.returns)


@pytest.mark.parametrize("index", sorted(V1_FRAME_DIGESTS))
def test_v1_frames_are_unchanged(index):
    for f in (generate_frame(0, index), frame_of(generator_settings("1"), index)):
        assert digest(f.points, f.boxes, f.num_points, f.point_object) == V1_FRAME_DIGESTS[index]


@pytest.mark.parametrize("mix, index", sorted(V2_FRAME_DIGESTS))
def test_v2_frames_are_unchanged(mix, index):
    f = frame_of(generator_settings("2", mix), index)
    assert digest(f.points, f.boxes, f.num_points, f.point_object) == V2_FRAME_DIGESTS[(mix, index)]


@pytest.mark.parametrize("mix, index", sorted(V3_FRAME_DIGESTS))
def test_v3_frames_are_unchanged(mix, index):
    f = generator_settings("3", mix).frame(0, index)
    assert digest(f.points, f.boxes, f.num_points, f.point_object) == V3_FRAME_DIGESTS[(mix, index)]


@pytest.mark.parametrize("mix, index", sorted(V4_FRAME_DIGESTS))
def test_v4_frames_are_unchanged(mix, index):
    f = generator_settings("4", mix).frame(0, index)
    assert digest(f.points, f.boxes, f.num_points, f.point_object) == V4_FRAME_DIGESTS[(mix, index)]


@pytest.fixture(scope="module")
def v2_frames():
    return [frame_of(generator_settings("2"), i) for i in range(3)]


def test_v2_scenes_have_large_vehicles_and_kitti_sizes(v2_frames):
    names = [n for f in v2_frames for n in f.names]
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
        generator_settings("8")
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


def test_v3_has_more_far_and_edge_cars_and_brighter_far_vehicles():
    v2, v3 = generator_settings("2"), generator_settings("3")
    assert v3.sensor == v2.sensor and v3.calibration is v2.calibration
    assert v3.scene.far_cars[0] > v2.scene.far_cars[1] - 2 and v3.scene.edge_cars[1] > 0 == v2.scene.edge_cars[1]
    # same scene up to the v3-only cars: the street and the v2 objects drawn before them are kept
    f2, f3 = frame_of(v2, 0), frame_of(v3, 0)
    assert f3.names.count("Car") > f2.names.count("Car")
    # vehicle returns at 45 m: v3's fall-off is gentler, the rest of the scene keeps v2's
    r = np.array([45.0, 45.0])
    assert falloff(r, v3.returns, np.array([True, False])).tolist() == [
        pytest.approx(1 / (1 + (45 / 52) ** 8)), falloff(r[:1], v2.returns)[0]]
    assert falloff(r, v2.returns, np.array([True, False]))[0] == falloff(r, v2.returns)[0]


def test_v3_far_cars_read_above_zero_more_often_than_v2():
    cars = {}
    for v in ("2", "3"):
        stats, _ = synthetic_stats(generator_settings(v), 0, range(4))
        cars[v] = {row["range"]: row for row in stats.table()}
    assert cars["3"]["40-50"]["median_car_zero_intensity"] < cars["2"]["40-50"]["median_car_zero_intensity"] - 0.2
    assert cars["3"]["50-80"]["cars"] >= cars["2"]["50-80"]["cars"]


def test_v4_drops_only_the_upper_body_returns_of_far_cars():
    v3, v4 = generator_settings("3"), generator_settings("4")
    assert (v4.sensor, v4.scene, v4.calibration) == (v3.sensor, v3.scene, v3.calibration)
    f3, f4 = v3.frame(0, 0), v4.frame(0, 0)
    assert np.array_equal(f3.boxes, f4.boxes) and f3.names == f4.names
    # same draws, lower detection probabilities only: v4's points are v3's less some
    kept = {p.tobytes() for p in f4.points}
    lost = np.array([p.tobytes() not in kept for p in f3.points])
    assert len(f3.points) - len(f4.points) == lost.sum() > 0
    obj = f3.point_object[lost]
    assert np.all(obj >= 0) and all(f3.names[k] == "Car" for k in np.unique(obj))
    pts, b = f3.points[lost], f3.boxes[obj]
    assert np.all(pts[:, 2] > b[:, 2] - 0.5 * b[:, 5] + 0.55 * b[:, 5] - 0.1)  # above 0.55 of the box (range noise aside)
    r = np.hypot(pts[:, 0], pts[:, 1])
    assert np.median(r) > 30
    assert digest(f4.points, f4.boxes, f4.num_points, f4.point_object) == "5ac8b8cad3a4e0bf"  # v4 as first shipped


def test_cab_keep_formula():
    m = generator_settings("4").returns
    assert (m.cab_fade_m, m.cab_fraction) == (26.0, 0.55) and ReturnModel().cab_fade_m == 0
    keep = cab_keep(np.array([0.8, 0.8, 0.3, 0.8]), np.array([26.0, 52.0, 52.0, 52.0]), np.array([True, True, True, False]), m)
    assert keep.tolist() == [0.5, pytest.approx(1 / 65), 1.0, 1.0]
    assert cab_keep(np.array([0.8]), np.array([52.0]), np.array([True]), generator_settings("3").returns).tolist() == [1.0]


def test_v5_adds_only_far_road_returns_in_patches():
    v4, v5 = generator_settings("4"), generator_settings("5")
    assert (v5.sensor, v5.scene, v5.calibration) == (v4.sensor, v4.scene, v4.calibration)
    assert v5.returns.ground_roughness == 0.2 and v4.returns.ground_roughness == 0
    f4, f5 = v4.frame(0, 0), v5.frame(0, 0)
    assert np.array_equal(f4.boxes, f5.boxes) and f4.names == f5.names
    # same draws, higher detection probabilities of the ground only: v5's points are v4's and some more
    old = {p.tobytes() for p in f4.points}
    new = np.array([p.tobytes() not in old for p in f5.points])
    assert len(f5.points) - len(f4.points) == new.sum() > 50
    assert np.all(f5.point_object[new] == -1) and np.array_equal(f5.num_points, f4.num_points)
    pts = f5.points[new]
    assert np.median(np.hypot(pts[:, 0], pts[:, 1])) > 25 and np.median(pts[:, 2]) < -1.0  # far and low: the road
    assert digest(f5.points, f5.boxes, f5.num_points, f5.point_object) == "7f0c8a576302735e"  # v5 as first shipped


def test_rough_ground_detect_raises_only_patches():
    p = rough_ground_detect(np.array([0.1, 0.1, 0.6]), np.array([0.9, 0.9, 0.2]), np.array([True, False, True]))
    assert p.tolist() == [0.9, 0.1, 0.6]


# generator_settings("5", mix) frame 0 before generator v6 was added
V5_FRAME_DIGESTS = {(0.0, 0): "7f0c8a576302735e"}
# generator_settings("6") frame 0 as first added
V6_FRAME_0 = "22e5060555816116"


def frame_digest(f):
    return digest(f.points, f.boxes, f.num_points, f.point_object)


@pytest.mark.parametrize("mix, index", sorted(V5_FRAME_DIGESTS))
def test_v5_frames_are_unchanged(mix, index):
    assert frame_digest(generator_settings("5", mix).frame(0, index)) == V5_FRAME_DIGESTS[(mix, index)]


def test_frame_cab_fade_draw():
    v6 = generator_settings("6").returns
    assert v6.cab_share == 0.5 and generator_settings("5").returns.cab_share == 1.0
    assert frame_cab_fade(v6, 0.49) is v6 and frame_cab_fade(v6, 0.5).cab_fade_m == 0.0
    v3 = generator_settings("3").returns
    assert frame_cab_fade(v3, 0.9) is v3


def test_v6_frames_are_v5_frames_with_or_without_the_cab_fade_and_more_cut_edge_cars():
    import dataclasses

    v5, v6 = generator_settings("5"), generator_settings("6")
    assert (v6.sensor, v6.calibration) == (v5.sensor, v5.calibration)
    assert v6.scene == dataclasses.replace(v5.scene, edge_car_azimuths_deg=(30.0, 46.0))
    assert v5.scene.edge_car_azimuths_deg == (28.0, 42.0)
    v6_with_v5_scene = dataclasses.replace(v6, scene=v5.scene)
    roofed = dataclasses.replace(v5, returns=dataclasses.replace(v5.returns, cab_fade_m=0.0))
    # seed 0: frame 0 draws 0.76 (roofed, as v3's cars), frame 3 draws 0.03 (the cab fade, as v5)
    f0, f3 = v6_with_v5_scene.frame(0, 0), v6_with_v5_scene.frame(0, 3)
    assert frame_digest(f0) == frame_digest(roofed.frame(0, 0)) != frame_digest(v5.frame(0, 0))
    assert frame_digest(f3) == frame_digest(v5.frame(0, 3))
    assert len(f0.points) > len(v5.frame(0, 0).points)  # the roofs' returns
    assert frame_digest(v6.frame(0, 0)) == V6_FRAME_0


def test_v6_edge_cars_are_further_out():
    az = {}
    for version in ("5", "6"):
        g = generator_settings(version)
        a = []
        for i in range(4):
            s = g.frame(0, i).scene
            a += [abs(np.degrees(np.arctan2(b[1], b[0]))) for b, n in zip(s.boxes, s.names) if n == "Car" and 20 < np.hypot(b[0], b[1]) < 40]
        az[version] = np.array(a)
    assert (az["6"] > 42).sum() > (az["5"] > 42).sum()


def screened_crossing_cars(scene) -> int:
    """Cars 28-42 m away, up to 30 degrees off the x axis, within 30 degrees of crossing the line of sight, with a
    pedestrian or cyclist 2.5-12.5 m nearer on a line of sight to their body."""
    n = 0
    for b, name in zip(scene.boxes, scene.names):
        r, az = np.hypot(b[0], b[1]), np.arctan2(b[1], b[0])
        crossing = abs((b[6] - az) % np.pi - np.pi / 2) < np.radians(30)
        if name != "Car" or not (28 < r < 42 and abs(az) < np.radians(30.5) and crossing):
            continue
        for s_, sname in zip(scene.boxes, scene.names):
            rs, azs = np.hypot(s_[0], s_[1]), np.arctan2(s_[1], s_[0])
            if sname in ("Pedestrian", "Cyclist") and r - 12.5 < rs < r - 2.5 and abs(azs - az) < np.arctan((0.4 * b[3] + 1.0) / r):
                n += 1
                break
    return n


def test_v7_scenes_are_v6_scenes_with_screened_crossing_cars():
    import dataclasses

    from pointpillars_trt.synthetic.scene import generate_scene

    v6, v7 = generator_settings("6"), generator_settings("7")
    assert (v7.sensor, v7.returns, v7.calibration) == (v6.sensor, v6.returns, v6.calibration)
    assert v7.scene == dataclasses.replace(v6.scene, screened_cars=(1, 3), slope_sigma=0.02, slope_max=0.05)
    assert (v6.scene.screened_cars, v6.scene.slope_sigma, v6.scene.slope_max) == ((0, 0), 0.01, 0.03)
    counts = {}
    for name, g in (("6", v6), ("7", v7)):
        counts[name] = sum(screened_crossing_cars(generate_scene(np.random.default_rng(seed), g.scene)) for seed in range(6))
    assert counts["7"] >= 6 and counts["7"] > 2 * counts["6"], counts
    f = v7.frame(0, 0)  # a whole v7 frame ray casts, and its boxes are the scene's
    assert len(f.points) > 10000 and np.array_equal(f.boxes, f.scene.boxes)
    grades = np.array([[g.frame(0, i).scene.ground.gx for i in range(12)] for g in (v6, v7)])
    assert np.abs(grades).max() <= 0.05 and np.abs(grades[1]).mean() > 1.5 * np.abs(grades[0]).mean()
