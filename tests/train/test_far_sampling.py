"""Far GT sampling: samples moved away from the sensor, turned about it, thinned, on the ground; a far
car with few points still gets a positive anchor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pointpillars_trt.postprocess import iou_bev, limit_period
from pointpillars_trt.train import GTDatabase, GTSampler, TargetAssigner, points_in_boxes
from pointpillars_trt.train.far_sampling import (FarPlacement, angular_half_width, far_target, ground_height, inside_view,
                                                 place_far, view_edges)

BOUNDS = (0.0, -39.68, 69.12, 39.68)


def car_at(x, y, n=400, rng=None):
    rng = rng or np.random.default_rng(0)
    box = np.array([x, y, -0.96, 3.9, 1.6, 1.56, 0.3], np.float32)
    local = np.column_stack([rng.uniform(-1.9, 1.9, n), rng.uniform(-0.75, 0.75, n), rng.uniform(-0.7, 0.7, n),
                             np.full(n, 0.2)])
    c, s = math.cos(0.3), math.sin(0.3)
    rel = local.copy()
    rel[:, 0], rel[:, 1] = c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1]
    return box, rel.astype(np.float32)


def flat_ground(rng, z=-1.5, n=20000):
    return np.column_stack([rng.uniform(0, 70, n), rng.uniform(-40, 40, n), np.full(n, z), np.zeros(n)]).astype(np.float32)


def test_place_far_moves_out_turns_and_thins():
    rng = np.random.default_rng(1)
    far = FarPlacement(1.0, (40.0, 70.0), BOUNDS)
    box, rel = car_at(15.0, 5.0)
    r0, a0 = math.hypot(15, 5), math.atan2(5, 15)
    ground = flat_ground(rng)
    for _ in range(20):
        moved = place_far(box, rel, ground, rng, far)
        assert moved is not None
        new, pts = moved
        r1 = math.hypot(new[0], new[1])
        assert 40.0 <= r1 <= 70.0 and BOUNDS[0] <= new[0] <= BOUNDS[2] and BOUNDS[1] <= new[1] <= BOUNDS[3]
        turn = math.atan2(new[1], new[0]) - a0
        assert math.isclose(math.remainder(new[6] - box[6] - turn, 2 * math.pi), 0.0, abs_tol=1e-5)
        # thinned by (r0 / r1)^2 (binomial), sizes kept, standing on the ground (z = -1.5 + h / 2)
        assert abs(len(pts) - len(rel) * (r0 / r1) ** 2) < 4 * math.sqrt(len(rel) * (r0 / r1) ** 2) + 1
        np.testing.assert_array_equal(new[3:6], box[3:6])
        assert new[2] == np.float32(-1.5 + 0.78)
        assert points_in_boxes(pts + np.r_[new[:3], 0], new[None], 0.02).all()


def test_place_far_keeps_objects_that_cannot_move():
    rng = np.random.default_rng(2)
    far = FarPlacement(1.0, (20.0, 40.0), BOUNDS)
    box, rel = car_at(50.0, 0.0)
    assert far_target(box, rng, far) is None  # already beyond the range interval
    box, rel = car_at(10.0, 0.0, n=8)
    assert place_far(box, rel, np.zeros((0, 4), np.float32), rng, FarPlacement(1.0, (38.0, 40.0), BOUNDS)) is None
    # no ground points near the new place: the box keeps its height
    box, rel = car_at(10.0, 0.0, n=2000)
    new, _ = place_far(box, rel, np.zeros((0, 4), np.float32), rng, far)
    assert new[2] == box[2] and ground_height(np.zeros((0, 4)), 1.0, 1.0) is None


def test_sampler_with_far_placement_puts_cars_far_and_without_overlap():
    rng = np.random.default_rng(3)
    boxes, rels = zip(*(car_at(float(x), float(y), rng=rng) for x, y in zip(rng.uniform(8, 25, 60), rng.uniform(-8, 8, 60))))
    db = GTDatabase.from_objects(["Car"] * 60, np.stack(boxes), [r + np.r_[b[:3], 0] for b, r in zip(boxes, rels)])
    ground = flat_ground(rng)
    near = GTSampler(db, {"Car": 20})
    far = GTSampler(db, {"Car": 20}, FarPlacement(1.0, (40.0, 70.0), BOUNDS))
    empty_boxes, empty_names = np.zeros((0, 7), np.float32), np.zeros(0, "<U16")
    _, b_near, _ = near(ground, empty_boxes, empty_names, np.random.default_rng(4))
    p_far, b_far, n_far = far(ground, empty_boxes, empty_names, np.random.default_rng(4))
    assert np.hypot(b_near[:, 0], b_near[:, 1]).max() < 30
    r = np.hypot(b_far[:, 0], b_far[:, 1])
    assert len(b_far) >= 5 and (r >= 40).all() and (n_far == "Car").all()
    iou = iou_bev(b_far, b_far)
    np.fill_diagonal(iou, 0)
    assert iou.max() == 0
    counts = points_in_boxes(p_far[p_far[:, 3] > 0], b_far).sum(axis=0)
    assert (counts >= 5).all() and np.median(counts) < 400 * (25 / 40) ** 2


def _wrap(a):
    return limit_period(a, 0.5, 2 * math.pi)


def fov_ground(rng, half_angle_deg=40.0, n=20000):
    """Flat ground cropped to azimuths within ``half_angle_deg`` of +x (a camera-view crop)."""
    g = flat_ground(rng, n=n)
    return g[np.abs(np.degrees(np.arctan2(g[:, 1], g[:, 0]))) <= half_angle_deg]


def test_view_edges_of_a_crop_of_a_full_sweep_and_across_the_back():
    rng = np.random.default_rng(5)
    start, end = view_edges(fov_ground(rng))
    assert math.degrees(start) == pytest.approx(-40.0, abs=0.5) and math.degrees(end) == pytest.approx(40.0, abs=0.5)
    a = rng.uniform(-math.pi, math.pi, 5000)
    sweep = np.column_stack([20 * np.cos(a), 20 * np.sin(a)])
    assert view_edges(sweep) is None and view_edges(sweep[:1]) is None
    back = sweep[np.abs(_wrap(a - math.pi)) <= math.radians(50)]  # a rear camera: the span crosses +-pi
    start, end = view_edges(back)
    assert math.degrees(_wrap(start - math.pi)) == pytest.approx(-50, abs=1.0)
    assert math.degrees(_wrap(end - math.pi)) == pytest.approx(50, abs=1.0)
    near = np.array([[math.cos(end + d), math.sin(end + d)] for d in (-0.1, 0.1)]) * 20  # just inside, just beyond
    assert inside_view(near, end, 1).tolist() == [True, False] and inside_view(near, end, -1).tolist() == [False, True]


def test_place_far_at_the_edge_cuts_the_object_and_keeps_its_whole_box():
    rng = np.random.default_rng(6)
    ground = fov_ground(rng)
    edges = view_edges(ground)
    far = FarPlacement(1.0, (25.0, 45.0), BOUNDS, edge_share=1.0)
    box, rel = car_at(12.0, 2.0, n=3000)
    cut_shares = []
    for _ in range(30):
        moved = place_far(box, rel, ground, rng, far, edges)
        assert moved is not None
        new, pts = moved
        a = math.degrees(math.atan2(new[1], new[0]))
        assert 36.0 <= abs(a) <= 44.0 and 25.0 <= math.hypot(new[0], new[1]) <= 45.0  # centre near an edge
        assert new[3:6].tolist() == box[3:6].tolist()  # the whole box is the target
        az = np.degrees(np.arctan2(pts[:, 1] + new[1], pts[:, 0] + new[0]))
        assert (np.abs(az) <= 40.0 + 1e-3).all()  # no point beyond the crop
        cut_shares.append(1 - len(pts) / (len(rel) * (math.hypot(12, 2) / math.hypot(new[0], new[1])) ** 2))
    assert 0.15 < float(np.median(cut_shares)) < 0.85  # about half of it cut, on average
    assert angular_half_width(np.array([20, 0, 0, 4, 2, 1.5, 0.0])) == pytest.approx(math.atan2(1, 18))
    # through the sampler: every sampled car lies across an edge, none of its points beyond it
    boxes, rels = zip(*(car_at(float(x), float(y), rng=rng) for x, y in zip(rng.uniform(8, 20, 40), rng.uniform(-4, 4, 40))))
    db = GTDatabase.from_objects(["Car"] * 40, np.stack(boxes), [r + np.r_[b[:3], 0] for b, r in zip(boxes, rels)])
    pts, out, _ = GTSampler(db, {"Car": 8}, far)(ground, np.zeros((0, 7), np.float32), np.zeros(0, "<U16"), rng)
    assert len(out) >= 6 and (np.abs(np.degrees(np.arctan2(out[:, 1], out[:, 0]))) >= 36).all()  # collisions are re-placed
    iou = iou_bev(out, out)
    np.fill_diagonal(iou, 0)
    assert iou.max() == 0
    assert (np.abs(np.degrees(np.arctan2(pts[:, 1], pts[:, 0]))) <= 40.0 + 1e-3).all()
    # without edges the same placement is the plain far one (the draws are unchanged)
    a, b = place_far(box, rel, ground, np.random.default_rng(7), FarPlacement(1.0, (25.0, 45.0), BOUNDS)), \
        place_far(box, rel, ground, np.random.default_rng(7), far)
    np.testing.assert_array_equal(a[0], b[0])


def test_far_car_with_ten_points_gets_a_positive_anchor(kitti_config):
    """Anchor matching is by box geometry alone: a car 60 m away is a positive however few points it has."""
    gt = np.array([[60.0, 12.0, -0.9, 3.9, 1.6, 1.56, 0.2], [65.0, -20.0, -0.9, 4.2, 1.7, 1.5, 1.4]], np.float32)
    t = TargetAssigner(kitti_config)(gt, np.zeros(2, np.int64))
    assert set(t.matched_gt.tolist()) == {0, 1} and t.num_positive >= 2
