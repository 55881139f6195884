"""Exact rotated BEV / 3D IoU against closed forms and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pointpillars_trt.eval.iou import (
    camera_boxes_to_bev,
    image_box_overlap,
    image_box_overlap_frames,
    iou_3d_camera,
    rotated_iou_bev,
    rotated_iou_bev_frames,
)


def corners(box) -> np.ndarray:
    cx, cy, dx, dy, heading = box
    c, s = math.cos(heading), math.sin(heading)
    local = np.array([[dx, dy], [-dx, dy], [-dx, -dy], [dx, -dy]]) / 2
    return local @ np.array([[c, s], [-s, c]]) + [cx, cy]


def inside(points: np.ndarray, box) -> np.ndarray:
    cx, cy, dx, dy, heading = box
    c, s = math.cos(heading), math.sin(heading)
    rel = points - [cx, cy]
    u = rel[:, 0] * c + rel[:, 1] * s
    v = -rel[:, 0] * s + rel[:, 1] * c
    return (np.abs(u) <= dx / 2) & (np.abs(v) <= dy / 2)


def grid_iou(a, b, n: int = 300) -> float:
    """Brute-force IoU: count the cells of an ``n x n`` grid over both boxes' extent."""
    pts = np.concatenate([corners(a), corners(b)])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    xs = lo[0] + (np.arange(n) + 0.5) * (hi[0] - lo[0]) / n
    ys = lo[1] + (np.arange(n) + 0.5) * (hi[1] - lo[1]) / n
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    ia, ib = inside(grid, a), inside(grid, b)
    union = np.count_nonzero(ia | ib)
    return np.count_nonzero(ia & ib) / union if union else 0.0


def test_closed_forms():
    a = [0, 0, 2, 2, 0]
    others = [[0, 0, 2, 2, 0], [1, 0, 2, 2, 0], [0, 0, 2, 2, math.pi / 2], [0, 0, 2, 2, math.pi / 4], [3, 0, 2, 2, 0],
              [2, 0, 2, 2, 0], [0, 0, 1, 1, 0.3]]  # fmt: skip
    octagon = 8 * (math.sqrt(2) - 1)  # two 2x2 squares at 45 degrees
    expected = [1, 1 / 3, 1, octagon / (8 - octagon), 0, 0, 0.25]
    np.testing.assert_allclose(rotated_iou_bev([a], others)[0], expected, atol=1e-12)
    # a 4x2 box and the same box turned 90 degrees: a 2x2 overlap, union 12
    assert rotated_iou_bev([[0, 0, 4, 2, 0]], [[0, 0, 4, 2, math.pi / 2]])[0, 0] == pytest.approx(4 / 12)
    # criteria: 0 -> over the first box's area, 1 -> over the second's, 2 -> intersection area
    assert rotated_iou_bev([[0, 0, 2, 2, 0]], [[0, 0, 1, 1, 0]], criterion=0)[0, 0] == pytest.approx(0.25)
    assert rotated_iou_bev([[0, 0, 2, 2, 0]], [[0, 0, 1, 1, 0]], criterion=1)[0, 0] == pytest.approx(1.0)
    assert rotated_iou_bev([[0, 0, 2, 2, 0]], [[1, 1, 2, 2, 0]], criterion=2)[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="criterion"):
        rotated_iou_bev([a], [a], criterion=3)


def test_random_boxes_against_brute_force():
    rng = np.random.default_rng(0)
    n = 40
    boxes = np.column_stack([rng.uniform(-2, 2, (n, 2)), rng.uniform(0.5, 5, (n, 2)), rng.uniform(-np.pi, np.pi, n)])
    qboxes = np.column_stack([rng.uniform(-2, 2, (n, 2)), rng.uniform(0.5, 5, (n, 2)), rng.uniform(-np.pi, np.pi, n)])
    exact = rotated_iou_bev(boxes, qboxes)
    assert exact.shape == (n, n)
    np.testing.assert_allclose(exact, rotated_iou_bev(qboxes, boxes).T, atol=1e-12)  # symmetric
    assert exact.min() >= 0 and exact.max() <= 1 + 1e-12
    checked = [(i, j) for i in range(0, n, 5) for j in range(0, n, 4)]
    for i, j in checked:
        assert exact[i, j] == pytest.approx(grid_iou(boxes[i], qboxes[j]), abs=0.01)
    assert sum(exact[i, j] > 0.05 for i, j in checked) > len(checked) // 2  # mostly real overlaps
    # 180-degree turns and 360-degree wraps change nothing
    turned = boxes.copy()
    turned[:, 4] += np.pi * rng.integers(-3, 4, n)
    np.testing.assert_allclose(np.diag(rotated_iou_bev(boxes, turned)), 1.0, atol=1e-9)


def test_camera_iou_3d():
    # camera boxes (x, y, z, l, h, w, ry); y is the bottom, the box spans [y - h, y]
    box = [0.0, 1.5, 10.0, 4.0, 1.5, 2.0, 0.3]
    lifted = [0.0, 1.0, 10.0, 4.0, 1.5, 2.0, 0.3]  # 1.0 m of 1.5 m height shared
    shifted = [1.0, 1.5, 10.0, 4.0, 1.5, 2.0, 0.0]
    result = iou_3d_camera([box], [box, lifted, shifted, [0, 5.0, 10, 4, 1.5, 2, 0.3]])[0]
    assert result[0] == pytest.approx(1.0)
    assert result[1] == pytest.approx(1.0 / 2.0)  # 8*1.0 / (12 + 12 - 8)
    assert result[3] == 0.0
    bev = rotated_iou_bev(camera_boxes_to_bev([box]), camera_boxes_to_bev([shifted]))[0, 0]
    inter = bev * 16 / (1 + bev)  # bev = I / (8 + 8 - I)
    assert result[2] == pytest.approx(inter * 1.5 / (24 - inter * 1.5))


def test_camera_bev_heading_matches_the_camera_box_corners():
    """A long box turned by ry: its BEV footprint must be where the KITTI corner formula puts it."""
    from pointpillars_trt.io.kitti import camera_box_corners

    cam = np.array([[2.0, 1.0, 15.0, 6.0, 1.5, 1.0, 0.7]])
    foot = camera_box_corners(cam)[0, :4][:, [0, 2]]  # (x, z) of the bottom corners
    probe = np.column_stack([foot.mean(axis=0) + 0.9 * (foot - foot.mean(axis=0)), np.full((4, 2), 0.01), np.zeros(4)])
    ious = rotated_iou_bev(camera_boxes_to_bev(cam), probe, criterion=1)[0]  # fraction of each tiny probe inside
    np.testing.assert_allclose(ious, 1.0)
    mirrored = cam.copy()
    mirrored[0, 6] = -0.7
    assert rotated_iou_bev(camera_boxes_to_bev(mirrored), probe, criterion=1).max() < 1.0


def test_image_box_overlap():
    boxes = [[0, 0, 10, 10]]
    q = [[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [2, 2, 4, 4]]
    np.testing.assert_allclose(image_box_overlap(boxes, q)[0], [1 / 3, 1, 0, 0.04])
    np.testing.assert_allclose(image_box_overlap(boxes, q, criterion=1)[0], [0.5, 1, 0, 1])


def test_frames_layout():
    """Batched per-frame matrices, flattened frame after frame, row-major."""
    a = np.array([[0, 0, 10, 10], [0, 0, 5, 5], [0, 0, 2, 2]], dtype=float)
    q = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], dtype=float)
    flat = image_box_overlap_frames(a, [0, 2, 2, 3], q, [0, 1, 1, 2])
    np.testing.assert_allclose(flat, [1.0, 0.25, 4 / 50])
    bev = rotated_iou_bev_frames(np.zeros((0, 5)), [0, 0], np.ones((3, 5)), [0, 3])
    assert bev.shape == (0,)
    with pytest.raises(ValueError, match="offsets"):
        image_box_overlap_frames(a, [0, 2], q, [0, 2])
