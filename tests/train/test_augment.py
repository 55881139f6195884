"""Augmentations keep points and boxes consistent; GT sampling creates no BEV overlap."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.postprocess import iou_bev
from pointpillars_trt.train import GTDatabase, GTSampler, flip_x, object_noise, points_in_boxes, rotate, scale


def scene(rng, n_boxes=4):
    boxes = np.array(
        [[10.0, 2.0, -0.9, 4.0, 1.7, 1.5, 0.4], [20.0, -6.0, -0.9, 3.8, 1.6, 1.6, -2.0], [15.0, 8.0, -0.8, 0.8, 0.6, 1.7, 1.0],
         [30.0, 0.0, -0.8, 1.8, 0.6, 1.7, 2.5]], dtype=np.float32)[:n_boxes]
    inside = []
    for b in boxes:
        local = rng.uniform(-0.45, 0.45, size=(50, 3)) * b[3:6]
        c, s = np.cos(b[6]), np.sin(b[6])
        xy = np.stack([local[:, 0] * c - local[:, 1] * s, local[:, 0] * s + local[:, 1] * c], 1) + b[:2]
        inside.append(np.column_stack([xy, local[:, 2] + b[2], np.ones(50)]))
    outside = np.column_stack([rng.uniform(0, 40, 500), rng.uniform(-20, 20, 500), np.full(500, -1.7), np.zeros(500)])
    pts = np.concatenate(inside + [outside]).astype(np.float32)
    return pts, boxes


@pytest.mark.parametrize("op", ["flip", "rotate", "scale", "noise"])
def test_points_stay_in_their_boxes(op):
    rng = np.random.default_rng(1)
    pts, boxes = scene(rng)
    before = points_in_boxes(pts, boxes)
    if op == "flip":
        p2, b2 = flip_x(pts, boxes)
    elif op == "rotate":
        p2, b2 = rotate(pts, boxes, 0.6)
    elif op == "scale":
        p2, b2 = scale(pts, boxes, 1.04)
    else:
        p2, b2 = object_noise(pts, boxes, rng)
        assert not np.allclose(b2, boxes)
    assert p2.shape == pts.shape and b2.shape == boxes.shape
    after = points_in_boxes(p2, b2)
    if op == "noise":  # a moved box may also take in background points
        assert after[before].all()
    else:
        np.testing.assert_array_equal(after, before)


def test_flip_and_rotate_geometry():
    pts, boxes = scene(np.random.default_rng(0), 1)
    p, b = flip_x(pts, boxes)
    np.testing.assert_allclose(p[:, 1], -pts[:, 1])
    assert b[0, 6] == pytest.approx(-boxes[0, 6])
    p, b = rotate(pts, boxes, np.pi / 2)
    np.testing.assert_allclose(p[:, 0], -pts[:, 1], atol=1e-5)
    assert b[0, 6] == pytest.approx(boxes[0, 6] + np.pi / 2)


def test_gt_sampling_creates_no_overlap_and_clears_points():
    rng = np.random.default_rng(2)
    pts, boxes = scene(rng)
    names = np.array(["Car", "Car", "Pedestrian", "Cyclist"])
    # a database of many overlapping candidates around the existing objects
    n = 120
    db_boxes = np.column_stack([
        rng.uniform(5, 35, n), rng.uniform(-12, 12, n), np.full(n, -0.9),
        np.full(n, 4.0), np.full(n, 1.7), np.full(n, 1.5), rng.uniform(-np.pi, np.pi, n),
    ]).astype(np.float32)
    db_points = [np.column_stack([b[:3] + rng.uniform(-0.3, 0.3, (20, 3)), np.full(20, 0.7)]) for b in db_boxes]
    db = GTDatabase.from_objects(["Car"] * n, db_boxes, db_points)
    sampler = GTSampler(db, {"Car": 15})
    p2, b2, n2 = sampler(pts, boxes, names, rng)
    assert len(b2) > len(boxes) and len(b2) == len(n2)
    iou = iou_bev(b2, b2)
    np.fill_diagonal(iou, 0)
    assert iou.max() == 0
    new = b2[len(boxes):]
    # inside the sampled boxes only the database's points remain (intensity 0.7)
    inside_new = points_in_boxes(p2, new).any(axis=1)
    assert np.all(p2[inside_new, 3] == np.float32(0.7))
    assert (n2[len(boxes):] == "Car").all()
    np.testing.assert_array_equal(b2[: len(boxes)], boxes)


def test_robustness_augmentations_thin_points_and_keep_columns():
    from pointpillars_trt.train.augment import jitter_intensity, random_beam_dropout, random_point_dropout, sparsify_objects

    rng = np.random.default_rng(3)
    pts, boxes = scene(rng)
    pts[:, 3] = rng.uniform(0.0, 0.5, len(pts)).round(2)
    for fn in (lambda p: random_point_dropout(p, rng, 0.0), lambda p: random_beam_dropout(p, rng, 0.0),
               lambda p: jitter_intensity(p, rng, 0.0), lambda p: sparsify_objects(p, boxes, rng, 0.0)):
        assert fn(pts) is pts  # off: untouched, no copies
    fewer = random_point_dropout(pts, np.random.default_rng(0), 0.9)
    assert 0 < len(fewer) < len(pts) and fewer.shape[1] == 4
    banded = random_beam_dropout(pts, np.random.default_rng(0), 0.5)
    el = lambda p: np.round(np.degrees(np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1]))) / 0.42)  # noqa: E731
    assert 0 < len(banded) < len(pts) and len(np.unique(el(banded))) < len(np.unique(el(pts)))
    j = jitter_intensity(pts, np.random.default_rng(0), 0.3)
    assert j.shape == pts.shape and np.array_equal(j[:, :3], pts[:, :3]) and j[:, 3].min() >= 0 and j[:, 3].max() <= 1
    assert not np.array_equal(j[:, 3], pts[:, 3]) and np.allclose(j[:, 3], np.round(j[:, 3], 2))
    thin = sparsify_objects(pts, boxes, np.random.default_rng(0), 1.0)
    before, after = points_in_boxes(pts, boxes).sum(0), points_in_boxes(thin, boxes).sum(0)
    assert np.all(after <= before) and after.sum() < before.sum() and np.all(after >= 5)
    assert len(pts) - len(thin) == before.sum() - after.sum()  # background untouched


def car_and_few(rng, xy, length, yaw, n):
    """``(points, boxes, u, background)``: ``n`` points spread through a car box of ``length`` at ``xy`` turned by
    ``yaw`` (``u``: their offsets along its length), a second box at (30, -5) holding 2 points (too few to cut),
    and one background point."""
    boxes = np.array([[*xy, -1.0, length, 1.8, 1.5, yaw], [30.0, -5.0, -1.0, 4.0, 1.8, 1.5, 0.0]])
    u = rng.uniform(-(length / 2 - 0.05), length / 2 - 0.05, n)
    v = rng.uniform(-0.85, 0.85, n)
    car = np.stack([xy[0] + u * np.cos(yaw) - v * np.sin(yaw), xy[1] + u * np.sin(yaw) + v * np.cos(yaw), rng.uniform(-1.7, -0.3, n),
                    rng.uniform(0, 1, n)], 1)
    few = np.array([[30.0, -5.0, -1.0, 0.5], [31.0, -5.0, -1.0, 0.5]])
    background = np.array([[0.0, 0.0, 0.0, 0.1]])
    return np.concatenate([car, few, background]).astype(np.float32), boxes, u, background


def test_keep_object_ends_keeps_one_end_and_the_box():
    from pointpillars_trt.train.augment import keep_object_ends

    yaw = 0.7
    pts, boxes, _, background = car_and_few(np.random.default_rng(3), (10.0, 5.0), 4.0, yaw, 400)
    state = np.random.default_rng(9).bit_generator.state
    r = np.random.default_rng(9)
    assert keep_object_ends(pts, boxes, r, 0.0) is pts and r.bit_generator.state == state  # off: no draw at all
    for seed in range(6):
        out = keep_object_ends(pts, boxes, np.random.default_rng(seed), 1.0)
        inside = points_in_boxes(out, boxes)
        kept = out[inside[:, 0]]
        along = (kept[:, 0] - 10) * np.cos(yaw) + (kept[:, 1] - 5) * np.sin(yaw)
        span = along.max() - along.min()
        assert 3 <= len(kept) < 400 and span <= 0.5 * 4.0 + 1e-4  # one end, at most half the length
        assert (along >= -1e-4).all() or (along <= 1e-4).all()  # the end kept is 15-50 % of the length: one side of the centre
        assert inside[:, 1].sum() == 2 and (out[~inside.any(1)] == background.astype(np.float32)).all()  # too few to cut; the rest untouched


def test_keep_object_runs_keeps_one_run_of_the_length_and_the_box():
    from pointpillars_trt.train.augment import keep_object_runs

    yaw = -1.2
    pts, boxes, u, background = car_and_few(np.random.default_rng(4), (12.0, -6.0), 4.2, yaw, 500)
    state = np.random.default_rng(9).bit_generator.state
    r = np.random.default_rng(9)
    assert keep_object_runs(pts, boxes, r, 0.0) is pts and r.bit_generator.state == state  # off: no draw at all
    centres = []
    for seed in range(8):
        out = keep_object_runs(pts, boxes, np.random.default_rng(seed), 1.0)
        inside = points_in_boxes(out, boxes)
        kept = out[inside[:, 0]]
        along = (kept[:, 0] - 12) * np.cos(yaw) + (kept[:, 1] + 6) * np.sin(yaw)
        assert 3 <= len(kept) < 500 and 0.5 < along.max() - along.min() <= 2.0 + 1e-4  # one run of 0.8-2 m
        assert len(kept) == ((u >= along.min() - 1e-4) & (u <= along.max() + 1e-4)).sum()  # every point of the run kept
        centres.append(along.mean())
        assert inside[:, 1].sum() == 2 and (out[~inside.any(1)] == background.astype(np.float32)).all()  # too few to cut; the rest untouched
    assert min(centres) < -0.5 and max(centres) > 0.5  # anywhere along the length, not only at the ends


def test_tilt_pitches_and_rolls_about_the_sensor():
    from pointpillars_trt.train.augment import random_tilt, tilt

    pitch = np.radians(2.0)
    pts = np.array([[30.0, 0.0, -1.73, 0.5], [0.0, 20.0, -1.73, 0.5], [0.0, 0.0, 0.0, 0.2]], dtype=np.float32)
    boxes = np.array([[30.0, 0.0, -0.9, 4.0, 1.7, 1.5, 0.4]], dtype=np.float32)
    p, b = tilt(pts, boxes, pitch, 0.0)
    # positive pitch: a point 30 m ahead drops by about 30 * sin(2 deg) = 1.05 m; the sensor origin stays put
    assert p[0, 2] == pytest.approx(-1.73 * np.cos(pitch) - 30 * np.sin(pitch), abs=1e-4) and np.allclose(p[2], pts[2])
    assert p[1, 2] == pytest.approx(-1.73 * np.cos(pitch), abs=1e-4)  # on the y axis: only the cos term
    assert np.array_equal(p[:, 3], pts[:, 3]) and np.array_equal(b[:, 3:], boxes[:, 3:])  # intensity, size and yaw kept
    assert np.linalg.norm(b[0, :3]) == pytest.approx(np.linalg.norm(boxes[0, :3]), rel=1e-5)
    _, rolled = tilt(pts, np.array([[0.0, 20.0, 0.0, 4, 1.7, 1.5, 0]], np.float32), 0.0, np.radians(2.0))
    assert rolled[0, 2] == pytest.approx(20 * np.sin(np.radians(2.0)), abs=1e-4)  # positive roll: +y goes up
    # a car's points stay in its box to within centimetres: count them with the box 3 cm larger
    rng = np.random.default_rng(2)
    p0, b0 = scene(rng)
    p1, b1 = tilt(p0, b0, np.radians(2.0), np.radians(-2.0))
    grown = b1.copy()
    grown[:, 3:6] += 0.06
    own = np.repeat(np.eye(len(b0), dtype=bool), 50, axis=0)  # scene(): 50 points per box first, then the ground
    assert np.array_equal(points_in_boxes(p0[:len(own)], b0), own) and np.array_equal(points_in_boxes(p1[:len(own)], grown), own)
    # off: no draw at all, so recipes without --tilt draw as before
    state = np.random.default_rng(4).bit_generator.state
    r = np.random.default_rng(4)
    out = random_tilt(pts, boxes, r, 0.0)
    assert out[0] is pts and out[1] is boxes and r.bit_generator.state == state
    angles = [random_tilt(pts[:1], boxes, np.random.default_rng(s), np.radians(1.0))[0][0, 2] for s in range(200)]
    drop = np.degrees(np.arcsin(np.clip((-1.73 - np.array(angles)) / 30.0, -1, 1)))
    assert np.abs(drop).max() <= 2.5 + 0.1 and 0.6 < np.std(drop) < 1.3  # about N(0, 1 deg), clipped at 2.5 sigma
