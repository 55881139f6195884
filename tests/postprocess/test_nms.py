"""Rotated IoU against a rasterised reference, and NMS at the threshold edge."""

import numpy as np
import pytest

from pointpillars_trt.postprocess import iou_bev, nms_bev


def raster_iou(a, b, res=0.01):
    """Reference BEV IoU by counting grid samples inside both rotated rectangles."""
    def inside(box, x, y):
        c, s = np.cos(box[6]), np.sin(box[6])
        u = (x - box[0]) * c + (y - box[1]) * s
        v = -(x - box[0]) * s + (y - box[1]) * c
        return (np.abs(u) <= box[3] / 2) & (np.abs(v) <= box[4] / 2)
    r = max(np.hypot(a[3], a[4]), np.hypot(b[3], b[4]))
    lo = min(a[0], b[0]) - r, min(a[1], b[1]) - r
    xs = np.arange(lo[0], max(a[0], b[0]) + r, res)
    ys = np.arange(lo[1], max(a[1], b[1]) + r, res)
    x, y = np.meshgrid(xs, ys)
    ia, ib = inside(a, x, y), inside(b, x, y)
    union = (ia | ib).sum()
    return (ia & ib).sum() / union if union else 0.0


def test_iou_against_raster_reference():
    rng = np.random.default_rng(0)
    for _ in range(25):
        a = np.r_[rng.normal(0, 1, 2), 0, rng.uniform(0.5, 4, 3), rng.uniform(-np.pi, np.pi)]
        b = np.r_[a[:2] + rng.normal(0, 1, 2), 0, rng.uniform(0.5, 4, 3), rng.uniform(-np.pi, np.pi)]
        assert iou_bev(a[None], b[None])[0, 0] == pytest.approx(raster_iou(a, b), abs=0.01)


def test_iou_exact_cases():
    a = np.array([[0, 0, 0, 2, 2, 1, 0]], np.float32)
    b = np.array([[1, 0, 0, 2, 2, 1, 0], [0, 0, 0, 2, 2, 1, np.pi / 4], [3, 0, 0, 2, 2, 1, 0], [0, 0, 0, 2, 2, 1, np.pi / 2]], np.float32)
    np.testing.assert_allclose(iou_bev(a, b)[0], [1 / 3, np.sqrt(2) / 2, 0.0, 1.0], atol=1e-6)


def test_nms_threshold_edge():
    # two 2x2 boxes shifted by d along x: IoU = (2 - d) / (2 + d); d = 1 gives exactly 1/3
    boxes = np.array([[0, 0, 0, 2, 2, 1, 0], [1, 0, 0, 2, 2, 1, 0], [10, 0, 0, 2, 2, 1, 0]], np.float32)
    scores = np.array([0.9, 0.8, 0.7])
    assert list(nms_bev(boxes, scores, 0.34)) == [0, 1, 2]  # 1/3 < 0.34: kept
    assert list(nms_bev(boxes, scores, 0.33)) == [0, 2]  # 1/3 > 0.33: suppressed
    assert list(nms_bev(boxes, scores, 0.33, max_keep=1)) == [0]


def test_nms_order_and_chains():
    # b suppresses nothing because a (higher score) removed it first; c survives (IoU with a is 0)
    boxes = np.array([[0, 0, 0, 2, 2, 1, 0], [1.5, 0, 0, 2, 2, 1, 0], [3, 0, 0, 2, 2, 1, 0]], np.float32)
    assert list(nms_bev(boxes, np.array([0.5, 0.9, 0.4]), 0.1)) == [1]
    assert list(nms_bev(boxes, np.array([0.9, 0.5, 0.4]), 0.1)) == [0, 2]
    assert nms_bev(np.zeros((0, 7)), np.zeros(0), 0.1).shape == (0,)


def test_suppress_rule_at_the_threshold_edge():
    """Identical boxes have IoU 1: ``above`` keeps both at threshold 1, ``at_least`` suppresses the second;
    disjoint boxes (IoU 0) are suppressed at threshold 0 only by ``at_least``."""
    from pointpillars_trt.config import Comparison

    same = np.array([[0, 0, 0, 2, 1, 1, 0.3], [0, 0, 0, 2, 1, 1, 0.3]], np.float32)
    scores = np.array([0.9, 0.8])
    assert list(nms_bev(same, scores, 1.0, rule=Comparison.ABOVE)) == [0, 1]
    assert list(nms_bev(same, scores, 1.0, rule=Comparison.AT_LEAST)) == [0]
    apart = np.array([[0, 0, 0, 2, 1, 1, 0], [50, 0, 0, 2, 1, 1, 0]], np.float32)
    assert list(nms_bev(apart, scores, 0.0, rule=Comparison.ABOVE)) == [0, 1]
    assert list(nms_bev(apart, scores, 0.0, rule=Comparison.AT_LEAST)) == [0]
