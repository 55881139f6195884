"""PostProcessor on hand-made head maps."""

import numpy as np

from pointpillars_trt.postprocess import PostProcessor, generate_anchors


def empty_maps(cfg, fill=-10.0):
    nx, ny = cfg.feature_map_size
    ch = cfg.head_channels
    return (np.full((1, ch["cls"], ny, nx), fill, np.float32), np.zeros((1, ch["box"], ny, nx), np.float32),
            np.zeros((1, ch["dir"], ny, nx), np.float32))


def hot(cls, box, dirs, cfg, ix, iy, anchor, k, logit=3.0, delta=None, dir_bin=0):
    K, D = cfg.num_classes, cfg.head.num_dir_bins
    cls[0, anchor * K + k, iy, ix] = logit
    if delta is not None:
        box[0, anchor * 7:(anchor + 1) * 7, iy, ix] = delta
    dirs[0, anchor * D + dir_bin, iy, ix] = 5.0


def test_single_hot_anchor_decodes_to_its_box(kitti_config):
    cfg = kitti_config
    cls, box, dirs = empty_maps(cfg)
    delta = np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2], np.float32)
    hot(cls, box, dirs, cfg, ix=100, iy=124, anchor=1, k=0, delta=delta, dir_bin=1)
    out = PostProcessor(cfg)(cls, box, dirs)
    assert len(out.boxes) == 1 and out.labels[0] == 0
    assert out.scores[0] == np.float32(1 / (1 + np.exp(-3.0)))
    a = generate_anchors(cfg)[124, 100, 1]
    diag = np.hypot(a[3], a[4])
    np.testing.assert_allclose(out.boxes[0, :6], [a[0] + 0.1 * diag, a[1], a[2], a[3], a[4], a[5]], atol=1e-4)
    # yaw 1.57 + 0.2 = 1.77 is in bin 0 of OpenPCDet's period [pi/4, 5pi/4); bin 1 adds pi
    np.testing.assert_allclose(out.boxes[0, 6], 1.77 + np.pi, atol=1e-4)


def test_threshold_topk_and_class_agnostic_nms(kitti_config):
    cfg = kitti_config
    cls, box, dirs = empty_maps(cfg)
    hot(cls, box, dirs, cfg, 50, 50, 0, 0, logit=2.0)  # car
    hot(cls, box, dirs, cfg, 50, 50, 2, 1, logit=1.0)  # pedestrian at the same place: suppressed across classes
    hot(cls, box, dirs, cfg, 150, 50, 4, 2, logit=-2.5)  # cyclist below 0.1
    out = PostProcessor(cfg)(cls, box, dirs)
    assert list(out.labels) == [0]
    out = PostProcessor(cfg)(cls, box, dirs, score_threshold=0.05)
    assert list(out.labels) == [0, 2]


def test_class_aware_nms_keeps_overlapping_other_class(example_config):
    cfg = example_config
    cls, box, dirs = empty_maps(cfg)
    hot(cls, box, dirs, cfg, 100, 100, 0, 0, logit=2.0)
    hot(cls, box, dirs, cfg, 100, 100, 4, 1, logit=1.0)
    hot(cls, box, dirs, cfg, 100, 100, 1, 0, logit=1.5)  # same class, rotated: IoU > 0.1 -> suppressed
    out = PostProcessor(cfg)(cls, box, dirs)
    assert list(out.labels) == [0, 1]
    assert out.scores[0] > out.scores[1]


def test_sigmoid_of_very_negative_logits_is_zero_without_a_warning():
    import warnings

    from pointpillars_trt.postprocess.decode import _sigmoid

    x = np.array([-1000.0, -100.0, -88.0, 0.0, 100.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in exp" would raise here
        y = _sigmoid(x)
    assert y.dtype == np.float32 and y[0] == y[1] == 0.0 and y[3] == 0.5 and y[4] == 1.0
    np.testing.assert_allclose(y[2], 1.0 / (1.0 + np.exp(88.0)), rtol=1e-5)
