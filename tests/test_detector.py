"""The whole CPU pipeline, on real KITTI frames and on a non-KITTI config."""

import warnings

import numpy as np
import pytest
import torch

from tests.helpers import random_cloud
from pointpillars_trt.network import create_backend
from pointpillars_trt.detector import Detections, Detector, PillarOverflowWarning
from pointpillars_trt.errors import ConfigError, PillarOverflowError, PointCloudError
from pointpillars_trt.model import build_model


def lively_state_dict(cfg, seed=0, target_fraction=0.01):
    """Random weights whose head scores about ``target_fraction`` of the anchors above 0.1 on a
    random cloud, so that post-processing sees a realistic number of candidates."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    pts = random_cloud(cfg, 20000, seed=seed)
    from pointpillars_trt.voxelize import make_voxelizer

    p = make_voxelizer(cfg.voxel)(pts)
    with torch.inference_mode():
        cls, _, _ = model(torch.from_numpy(p.features), torch.from_numpy(p.num_points), torch.from_numpy(p.coords))
    # shift so that the top `target_fraction` of logits (per channel) lie above logit(0.1)
    top = torch.quantile(cls[0].flatten(1), 1 - target_fraction, dim=1)
    spread = cls.std() + 1e-6
    with torch.no_grad():
        model.rpn.conv_cls.weight.div_(spread)
        model.rpn.conv_cls.bias.sub_(top).div_(spread).add_(-2.2)
    return model.state_dict()


@pytest.fixture(scope="module")
def kitti_detector(kitti_config):
    be = create_backend("torch", cfg=kitti_config, state_dict=lively_state_dict(kitti_config))
    return Detector(kitti_config, be)


def test_real_frames_give_deterministic_boxes(kitti_detector, kitti_frames):
    for path in kitti_frames[:3]:
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
        a = kitti_detector.detect(pts, source=str(path))
        b = kitti_detector.detect(pts.copy())
        assert isinstance(a, Detections) and 0 < len(a) <= kitti_detector.config.postprocess.nms_post_max
        np.testing.assert_array_equal(a.boxes, b.boxes)
        assert np.all(np.diff(a.scores) <= 0)
        assert {"voxelize", "pfn", "scatter", "rpn", "postprocess", "total"} <= set(a.timings_ms)
        assert a.num_pillars > 1000 and a.num_dropped_pillars == 0
        assert set(a.label_names) <= set(kitti_detector.config.classes)


def test_non_kitti_config_end_to_end(example_config):
    be = create_backend("torch", cfg=example_config, state_dict=lively_state_dict(example_config))
    det = Detector(example_config, be)
    pts = random_cloud(example_config, 12000, seed=5)
    out = det.detect(pts)
    assert len(out) > 0 and set(out.label_names) <= {"Vehicle", "Pedestrian"}
    r = example_config.voxel.point_cloud_range
    # anchors cover the whole 360-degree range, so boxes appear behind the sensor as well
    assert out.boxes[:, 0].min() < 0 < out.boxes[:, 0].max()
    assert np.all(np.abs(out.boxes[:, :2]) < max(abs(v) for v in r) + 10)


def test_overflow_warns_with_counts_or_fails(kitti_config, kitti_points):
    cfg = kitti_config.replace(voxel={"max_pillars": 500})
    be = create_backend("torch", cfg=cfg, state_dict=lively_state_dict(cfg))
    det = Detector(cfg, be)
    with pytest.warns(PillarOverflowWarning, match=r"dropped \d+ pillars holding \d+ points") as rec:
        out = det.detect(kitti_points, source="frame.bin")
    assert "frame.bin" in str(rec[0].message)
    assert out.num_pillars == 500 and out.num_dropped_pillars > 0 and out.num_dropped_points > 0
    strict = Detector(cfg, be, on_overflow="error")
    with pytest.raises(PillarOverflowError, match="exceed the maximum 500"):
        strict.detect(kitti_points, source="frame.bin")
    with pytest.raises(ConfigError):
        Detector(cfg, be, on_overflow="ignore")


def test_bad_clouds_are_rejected_with_the_source_named(kitti_detector, kitti_points):
    bad = kitti_points.copy()
    bad[10, 1] = np.nan
    bad[20, 0] = np.inf
    with pytest.raises(PointCloudError, match="cloud.bin.*2"):
        kitti_detector.detect(bad, source="cloud.bin")


def test_frames_without_a_usable_point_give_empty_results(kitti_detector):
    from pointpillars_trt.detector import EmptyFrameWarning

    for cloud in (np.zeros((0, 4), np.float32), np.array([[500.0, 0, 0, 0]], np.float32)):
        with pytest.warns(EmptyFrameWarning, match="far.bin: no point lies inside"):
            det = kitti_detector.detect(cloud, source="far.bin")
        assert len(det) == 0 and det.boxes.shape == (0, 7) and det.num_pillars == 0
        assert det.num_points == cloud.shape[0]


def test_nonfinite_drop_policy(kitti_config, kitti_points):
    be = create_backend("torch", cfg=kitti_config, state_dict=lively_state_dict(kitti_config))
    det = Detector(kitti_config, be, nonfinite="drop")
    bad = kitti_points.copy()
    bad[5] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = det.detect(bad)
    assert out.num_points == len(kitti_points) - 1


def test_demo_or_random_model_is_labelled():
    det = Detector.from_checkpoint(None)
    assert det.source.is_random or det.source.path.name == "demo_model.safetensors"
    assert ("RANDOM" in det.source.describe()) == det.source.is_random


def test_detector_from_exported_graphs_alone(tmp_path, kitti_config, kitti_points):
    """ONNX graphs carry their config: a detector needs nothing else; another config is refused."""
    from pointpillars_trt.exporter import export_onnx

    sd = lively_state_dict(kitti_config)
    export_onnx(sd, kitti_config, tmp_path)
    ort = Detector.from_engine_dir(tmp_path, backend="onnxruntime")
    ref = Detector(kitti_config, create_backend("torch", cfg=kitti_config, state_dict=sd))
    a, b = ort.detect(kitti_points), ref.detect(kitti_points)
    assert ort.config == kitti_config and len(a) == len(b) > 0
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
    same = Detector.from_checkpoint(None, engine_dir=tmp_path, backend="onnxruntime")
    assert same.source.path == tmp_path
    with pytest.raises(ConfigError, match="postprocess.score_threshold"):
        Detector.from_engine_dir(tmp_path, config=kitti_config.replace(postprocess={"score_threshold": 0.5}),
                                 backend="onnxruntime")
