"""The whole CPU pipeline, on real KITTI frames and on a non-KITTI config."""

import warnings

import numpy as np
import pytest

from tests.helpers import jittered_million, lively_state_dict, random_cloud, share_between_threads
from pointpillars_trt.network import create_backend
from pointpillars_trt.detector import Detections, Detector, PillarOverflowWarning, build_detector
from pointpillars_trt.errors import ConfigError, PillarOverflowError, PointCloudError


@pytest.fixture(scope="module")
def kitti_detector(kitti_config):
    be = create_backend("torch", cfg=kitti_config, state_dict=lively_state_dict(kitti_config))
    return Detector.from_backend(kitti_config, be)


def test_real_frames_give_deterministic_boxes(kitti_detector, kitti_frames):
    for path in kitti_frames[:3]:
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
        a = kitti_detector.detect(pts, source=str(path))
        b = kitti_detector.detect(pts.copy())
        assert isinstance(a, Detections) and 0 < len(a) <= kitti_detector.config.postprocess.nms_post_max
        np.testing.assert_array_equal(a.boxes, b.boxes)
        assert np.all(np.diff(a.scores) <= 0)
        assert {"validate", "voxelize", "pfn", "scatter", "rpn", "postprocess", "total"} <= set(a.timings_ms)
        assert a.num_pillars > 1000 and a.num_dropped_pillars == 0
        assert set(a.label_names) <= set(kitti_detector.config.classes)


def test_non_kitti_config_end_to_end(example_config):
    be = create_backend("torch", cfg=example_config, state_dict=lively_state_dict(example_config))
    det = Detector.from_backend(example_config, be)
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
    det = Detector.from_backend(cfg, be)
    with pytest.warns(PillarOverflowWarning, match=r"dropped \d+ pillars holding \d+ points") as rec:
        out = det.detect(kitti_points, source="frame.bin")
    assert "frame.bin" in str(rec[0].message)
    assert out.num_pillars == 500 and out.num_dropped_pillars > 0 and out.num_dropped_points > 0
    strict = Detector.from_backend(cfg, be, on_overflow="error")
    with pytest.raises(PillarOverflowError, match="exceed the maximum 500"):
        strict.detect(kitti_points, source="frame.bin")
    with pytest.raises(ConfigError):
        Detector.from_backend(cfg, be, on_overflow="ignore")


def test_bad_clouds_are_rejected_with_the_source_named(kitti_detector, kitti_points):
    bad = kitti_points.copy()
    bad[10, 1] = np.nan
    bad[20, 0] = np.inf
    with pytest.raises(PointCloudError, match="cloud.bin.*2"):
        kitti_detector.detect(bad, source="cloud.bin")


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), "0.3"])
def test_a_score_threshold_outside_zero_one_is_a_config_error(kitti_detector, kitti_points, threshold):
    with pytest.raises(ConfigError, match="score_threshold"):
        kitti_detector.detect(kitti_points, score_threshold=threshold)
    with pytest.raises(ConfigError, match="score_threshold"):
        kitti_detector.detect_batch([kitti_points], score_threshold=threshold)


def test_frames_without_a_usable_point_give_empty_results(kitti_detector):
    from pointpillars_trt.detector import EmptyFrameWarning

    for cloud in (np.zeros((0, 4), np.float32), np.array([[500.0, 0, 0, 0]], np.float32)):
        with pytest.warns(EmptyFrameWarning, match="far.bin: no point lies inside"):
            det = kitti_detector.detect(cloud, source="far.bin")
        assert len(det) == 0 and det.boxes.shape == (0, 7) and det.num_pillars == 0
        assert det.num_points == cloud.shape[0]


def test_nonfinite_drop_policy(kitti_config, kitti_points):
    be = create_backend("torch", cfg=kitti_config, state_dict=lively_state_dict(kitti_config))
    det = Detector.from_backend(kitti_config, be, nonfinite="drop")
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
    ref = Detector.from_backend(kitti_config, create_backend("torch", cfg=kitti_config, state_dict=sd))
    a, b = ort.detect(kitti_points), ref.detect(kitti_points)
    assert ort.config == kitti_config and len(a) == len(b) > 0
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
    same = build_detector(None, tmp_path, backend="onnxruntime")
    assert same.source.path == tmp_path
    with pytest.raises(ConfigError, match="postprocess.score_threshold"):
        Detector.from_engine_dir(tmp_path, config=kitti_config.replace(postprocess={"score_threshold": 0.5}),
                                 backend="onnxruntime")


def test_a_misspelled_option_fails_naming_it_and_the_valid_ones(kitti_config):
    with pytest.raises(ConfigError, match=r"'precison' \(did you mean 'precision'\?\).*valid options: .*precision"):
        Detector.from_checkpoint(None, backend="torch_cuda", precison="fp16")
    with pytest.raises(ConfigError, match="option 'precision' does not apply to backend torch"):
        Detector.from_checkpoint(None, backend="torch", precision="fp16")
    with pytest.raises(ConfigError, match="'fp8' is not one of"):
        Detector.from_checkpoint(None, backend="onnxruntime", precision="fp8")
    with pytest.raises(ConfigError, match="unknown option"):
        create_backend("torch", kitti_config, devise="cpu")
    with pytest.raises(ConfigError, match="'sideways' is not one of"):
        Detector.from_checkpoint(None, backend="sideways")


def test_auto_picks_the_fastest_path_this_machine_has(tmp_path):
    from pointpillars_trt.factory import choose_backend, cuda_unavailable_reason
    from pointpillars_trt.options import Backend

    chosen, why = choose_backend("auto")
    if cuda_unavailable_reason() is None:
        assert chosen == Backend.GPU
    else:  # CI: no GPU, ONNX Runtime installed
        assert chosen == Backend.ONNXRUNTIME and "ONNX Runtime" in why
    assert choose_backend("auto", device="cpu")[0] == Backend.ONNXRUNTIME
    assert choose_backend("torch") == (Backend.TORCH, "requested")
    det = Detector.from_checkpoint(None, device="cpu")
    assert det.backend == Backend.ONNXRUNTIME and det.path.startswith("host:") and "onnxruntime" in det.path


def test_detect_batch_equals_detect(kitti_detector, kitti_frames):
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:3]]
    empty = np.zeros((0, 4), np.float32)
    with pytest.warns(Warning, match="no point lies inside"):
        batched = kitti_detector.detect_batch([clouds[0], empty, *clouds[1:]], sources=["a", "b", "c", "d"])
    assert len(batched[1]) == 0
    for pts, got in zip(clouds, [batched[0], *batched[2:]]):
        np.testing.assert_array_equal(kitti_detector.detect(pts).boxes, got.boxes)
    with pytest.raises(PointCloudError, match="<cloud 1>"):  # every cloud is validated before any runs
        kitti_detector.detect_batch([clouds[0], np.zeros((3, 3), np.float32)])


def small_network(cfg):
    """The same geometry with a tiny RPN, so that many frames run in seconds on a CPU."""
    import dataclasses

    bb = dataclasses.replace(cfg.network.backbone, layer_nums=(1, 1, 1), num_filters=(16, 16, 16), num_upsample_filters=(16, 16, 16))
    return cfg.replace(network={"pfn_channels": 16, "backbone": bb})


def test_one_detector_shared_by_two_threads_gives_the_sequential_results(kitti_config, kitti_frames):
    cfg = small_network(kitti_config)
    det = Detector.from_backend(cfg, create_backend("torch", cfg, state_dict=lively_state_dict(cfg)))
    real = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames]
    clouds = real + [jittered_million(real[:5], seed=s) for s in range(2)]
    want = [det.detect(c) for c in clouds]
    rounds = 50
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PillarOverflowWarning)  # the 1M-point frames overflow: counted, same each time
        got, errors = share_between_threads(lambda i, r: det.detect(clouds[i]), len(clouds), rounds)
        after = [det.detect(c) for c in clouds]
    assert not errors and len(got) == 2 * rounds
    for i, d in got.values():
        np.testing.assert_array_equal(d.boxes, want[i].boxes)
        assert (d.num_pillars, d.num_dropped_points) == (want[i].num_pillars, want[i].num_dropped_points)
    for a, w in zip(after, want):
        np.testing.assert_array_equal(a.boxes, w.boxes)



def test_input_buffer_holds_the_detector_and_detects_what_was_written(kitti_config, kitti_frames):
    import threading

    from pointpillars_trt.errors import PointCloudError

    cfg = small_network(kitti_config)
    det = Detector.from_backend(cfg, create_backend("torch", cfg, state_dict=lively_state_dict(cfg)))
    cloud = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)
    want = det.detect(cloud)
    free = []
    with det.input_buffer(len(cloud)) as buf:
        assert buf.shape == cloud.shape and buf.dtype == np.float32
        buf[:] = cloud
        got = det.detect(buf)  # the same thread re-enters the detector's lock
        t = threading.Thread(target=lambda: free.append(det._lock.acquire(blocking=False)))
        t.start(), t.join()
    assert free == [False]  # another thread could not take the detector inside the block
    np.testing.assert_array_equal(got.boxes, want.boxes)
    from pointpillars_trt.detector import EmptyFrameWarning

    with det.input_buffer(0) as empty, pytest.warns(EmptyFrameWarning, match="no point lies inside"):
        assert det.detect(empty).num_pillars == 0
    for bad in (-1, 2.5):
        with pytest.raises(PointCloudError, match="whole number"), det.input_buffer(bad):
            pass


def test_intensities_outside_the_model_range_warn_once_per_period_and_no_box_is_non_finite(kitti_detector, kitti_points):
    from pointpillars_trt.errors import IntensityRangeWarning

    raw = kitti_points.copy()
    raw[:, 3] *= 65535  # a uint16 driver's intensities, unscaled
    monitor = kitti_detector._intensity
    saved = monitor.period_s, monitor._last
    monitor.period_s, monitor._last = 3600.0, -float("inf")  # a quiet period no loaded test machine outlasts
    try:
        with pytest.warns(IntensityRangeWarning, match=r"cloud\.bin: intensities up to .* intensity_scale=1/65535") as rec:
            out = kitti_detector.detect(raw, source="cloud.bin")
        assert len([w for w in rec if issubclass(w.category, IntensityRangeWarning)]) == 1
        assert np.isfinite(out.boxes).all() and np.isfinite(out.scores).all()  # non-finite decoded boxes are dropped
        with warnings.catch_warnings():
            warnings.simplefilter("error", IntensityRangeWarning)  # inside the quiet period: counted, not repeated
            kitti_detector.detect(raw, source="cloud.bin")
        with warnings.catch_warnings():
            warnings.simplefilter("error", IntensityRangeWarning)  # in range: no warning
            kitti_detector.detect(kitti_points, source="ok.bin")
    finally:
        monitor.period_s, monitor._last = saved
