"""PostProcessor modes (config ``postprocess``): pre-NMS order, score rule, yaw range."""

import numpy as np
import pytest

from pointpillars_trt.config import Comparison, PreNmsOrder, YawRange
from pointpillars_trt.postprocess import PostProcessor
from pointpillars_trt.postprocess.box_coder import PI_F32, canonical_yaw
from tests.postprocess.test_decode import empty_maps, hot



def with_pp(cfg, **fields):
    return cfg.replace(postprocess=fields)


def random_maps(cfg, seed=0):
    rng = np.random.default_rng(seed)
    cls, box, dirs = empty_maps(cfg)
    cls[:] = rng.normal(-4.0, 1.5, cls.shape)
    box[:] = rng.normal(0.0, 0.3, box.shape)
    dirs[:] = rng.normal(0.0, 1.0, dirs.shape)
    return cls, box, dirs


@pytest.mark.parametrize("agnostic", [True, False])
@pytest.mark.parametrize("rule", list(Comparison))
def test_both_pre_nms_orders_give_the_same_detections(kitti_config, agnostic, rule):
    """The score rule is monotone in the top-k key (the best logit), so filtering and the top-k
    commute: OpenPCDet's order and mmdet3d's give the same boxes for the same numbers. What
    differs between the sources is the numbers (4096 vs 100 candidates), the rule and the NMS mode."""
    maps = random_maps(kitti_config)
    base = with_pp(kitti_config, nms_pre_max=300, class_agnostic_nms=agnostic, score_rule=rule)
    a = PostProcessor(with_pp(base, pre_nms_order=PreNmsOrder.THRESHOLD_THEN_TOPK))(*maps)
    b = PostProcessor(with_pp(base, pre_nms_order=PreNmsOrder.TOPK_THEN_THRESHOLD))(*maps)
    assert len(a.scores) > 10
    for x, y in zip((a.boxes, a.scores, a.labels), (b.boxes, b.scores, b.labels)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("agnostic", [True, False])
def test_score_rule_at_the_threshold(kitti_config, agnostic):
    cls, box, dirs = empty_maps(kitti_config)
    hot(cls, box, dirs, kitti_config, 100, 100, 0, 0, logit=1.0)
    hot(cls, box, dirs, kitti_config, 150, 100, 0, 0, logit=-1.0)
    thr = float((1.0 / (1.0 + np.exp(np.float32(1.0)))).astype(np.float32))  # exactly the second box's float32 score
    base = with_pp(kitti_config, class_agnostic_nms=agnostic, score_threshold=thr)
    assert len(PostProcessor(with_pp(base, score_rule=Comparison.AT_LEAST))(cls, box, dirs).scores) == 2
    assert len(PostProcessor(with_pp(base, score_rule=Comparison.ABOVE))(cls, box, dirs).scores) == 1


def test_canonical_yaw_range_and_values():
    y = np.array([0.0, 6.59, -4.0, np.pi, -np.pi, 3 * np.pi, 7.0, 1e-8, -PI_F32, PI_F32], np.float32)
    out = canonical_yaw(y)
    assert out.dtype == np.float32
    assert np.all(out >= -PI_F32) and np.all(out < PI_F32)
    np.testing.assert_allclose(np.cos(out), np.cos(y), atol=1e-5)
    np.testing.assert_allclose(np.sin(out), np.sin(y), atol=1e-5)


def test_yaw_range_option_wraps_openpcdet_yaw(kitti_config):
    """OpenPCDet's decoding gives [pi/4, pi/4 + 2 pi): yaw 1.77 + pi in bin 1; canonical gives 1.77 - pi."""
    cls, box, dirs = empty_maps(kitti_config)
    hot(cls, box, dirs, kitti_config, 100, 124, 1, 0, delta=np.array([0, 0, 0, 0, 0, 0, 0.2], np.float32), dir_bin=1)
    src = PostProcessor(kitti_config)(cls, box, dirs)
    can = PostProcessor(with_pp(kitti_config, yaw_range=YawRange.CANONICAL))(cls, box, dirs)
    np.testing.assert_allclose(src.boxes[0, 6], 1.77 + np.pi, atol=1e-4)
    np.testing.assert_allclose(can.boxes[0, 6], 1.77 - np.pi, atol=1e-4)
    np.testing.assert_array_equal(src.boxes[:, :6], can.boxes[:, :6])
