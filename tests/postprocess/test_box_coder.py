import numpy as np

from pointpillars_trt.postprocess import apply_direction, decode_boxes, encode_boxes, limit_period, to_canonical
from pointpillars_trt.postprocess.nms import iou_bev


def test_decode_known_values():
    anchor = np.array([[10.0, 2.0, -1.0, 3.0, 4.0, 1.5, 0.3]], np.float32)
    delta = np.array([[0.1, -0.2, 0.5, np.log(2.0), 0.0, np.log(0.5), 0.25]], np.float32)
    box = decode_boxes(delta, anchor)[0]
    np.testing.assert_allclose(box, [10.5, 1.0, -0.25, 6.0, 4.0, 0.75, 0.55], atol=1e-5)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    anchors = np.column_stack([rng.normal(0, 10, (100, 3)), rng.uniform(0.5, 4, (100, 3)), rng.uniform(-3, 3, 100)]).astype(np.float32)
    boxes = np.column_stack([rng.normal(0, 10, (100, 3)), rng.uniform(0.5, 4, (100, 3)), rng.uniform(-3, 3, 100)]).astype(np.float32)
    np.testing.assert_allclose(decode_boxes(encode_boxes(boxes, anchors), anchors), boxes, atol=1e-4)


def test_limit_period_range():
    v = np.linspace(-10, 10, 1001)
    out = limit_period(v, 0.0, np.pi)
    assert out.min() >= 0 and out.max() < np.pi
    np.testing.assert_allclose(np.sin(2 * out), np.sin(2 * v), atol=1e-9)


def test_direction_bins_pick_the_half_turn():
    # OpenPCDet: offset pi/4, 2 bins. Bin 0 is [pi/4, 5pi/4), bin 1 adds pi to it.
    yaw = np.array([0.1, 0.1, 3.0, -3.0], np.float32)
    bins = np.array([0, 1, 0, 1])
    out = apply_direction(yaw, bins, 0.78539, 0.0, 2)
    np.testing.assert_allclose(out, [0.1 + np.pi, 0.1 + 2 * np.pi, 3.0, -3.0 + 3 * np.pi], atol=1e-5)
    # zhulf0804 after the channel swap: offset 0, limit offset 1 -> bin 0 is [-pi, 0)
    out = apply_direction(yaw, bins, 0.0, 1.0, 2)
    np.testing.assert_allclose(out, [0.1 - np.pi, 0.1, 3.0 - np.pi, -3.0 + np.pi], atol=1e-5)


def test_wlh_layout_is_the_same_box():
    rng = np.random.default_rng(1)
    src = np.column_stack([rng.normal(0, 5, (20, 3)), rng.uniform(0.5, 5, (20, 3)), rng.uniform(-3, 3, 20)]).astype(np.float32)
    canon = to_canonical(src, "wlh_cw")
    np.testing.assert_allclose(canon[:, 3:5], src[:, [4, 3]])
    # same footprint: the (w, l) box rotated clockwise by r has IoU 1 with the canonical box
    cw = src.copy()
    cw[:, 6] = -src[:, 6]  # counter-clockwise angle of the clockwise yaw, with dx = w
    assert np.allclose(np.diag(iou_bev(canon, cw)), 1.0, atol=1e-5)
