"""FrameProcessor (decode, frame check, detect, plain outputs), NodeParams and the log filter."""

import array

import numpy as np
import pytest

from pointpillars_trt.errors import ConfigError, PointCloudError
from pointpillars_trt.ros.cloud import CloudData, Header, PointFieldData, Stamp, points_to_cloud
from pointpillars_trt.ros.markers import DELETEALL
from pointpillars_trt.ros.processor import FrameProcessor, NodeParams, RepeatFilter

from .conftest import SCORE_THRESHOLD

STAMP = Stamp(1234, 567)


def params(**kw):
    return NodeParams(score_threshold=SCORE_THRESHOLD, **kw)


def test_params_overrides_are_coerced():
    given = {"score_threshold": "0.5", "warmup": 3.0, "transform": [1, 2, 3, 0, 0, 0.5], "frame_id": None}
    p = NodeParams().with_overrides(lambda name, default: given.get(name, default))
    assert p.score_threshold == 0.5 and p.warmup == 3 and p.transform == "1 2 3 0 0 0.5" and p.frame_id == ""
    assert p.input == NodeParams().input
    with pytest.raises(ConfigError, match="warmup"):
        NodeParams().with_overrides(lambda n, d: "many" if n == "warmup" else d)


def test_params_check():
    with pytest.raises(ConfigError, match="needs frame_id"):
        NodeParams(transform="1 0 0 0 0 0").check()
    with pytest.raises(ConfigError, match="box_msg"):
        NodeParams(box_msg="json").check()
    with pytest.raises(ConfigError, match="intensity"):
        NodeParams(intensity_scale="loud").check()
    with pytest.raises(ConfigError, match="6 numbers"):
        NodeParams(frame_id="base", transform="1 2").check()
    np.testing.assert_allclose(NodeParams(frame_id="b", transform="[1, 2, 3, 0, 0, 0]").transform_matrix()[:3, 3], [1, 2, 3])


def test_process_matches_detector(ros_detector, frames, expected):
    proc = FrameProcessor(ros_detector, params())
    result = proc.process(points_to_cloud(frames[0], Header(STAMP, "velodyne")))
    det = result.detections
    assert result.header == Header(STAMP, "velodyne")
    assert result.num_points == len(frames[0]) and result.num_nonfinite == 0
    np.testing.assert_array_equal(det.boxes, expected[0].boxes)
    np.testing.assert_array_equal(det.scores, expected[0].scores)
    assert len(result.boxes) == len(det) > 0
    assert len(result.markers) == 1 + 2 * len(det) and result.markers[0].action == DELETEALL
    assert {"decode", "voxelize", "network", "postprocess", "markers"} <= set(result.timings_ms)


def test_bad_clouds_raise_with_stamp_and_frame(ros_detector):
    proc = FrameProcessor(ros_detector, params(frame_id="velodyne"))
    hdr = Header(STAMP, "velodyne")
    no_xyz = CloudData(hdr, 1, 3, (PointFieldData("range", 0, 7), PointFieldData("intensity", 4, 7)), False, 8, 24, bytes(24))
    with pytest.raises(PointCloudError, match=r"no field\(s\) \['x', 'y', 'z'\]"):
        proc.process(no_xyz)
    with pytest.raises(PointCloudError, match="frame 'camera'.*'velodyne'.*no transform"):
        proc.process(points_to_cloud(np.ones((5, 4), np.float32), Header(STAMP, "camera")))
    strict = FrameProcessor(ros_detector, params(nonfinite="error"))
    some_nan = np.ones((10, 4), np.float32)
    some_nan[3, 1] = np.nan
    with pytest.raises(PointCloudError, match="1 of 10 rows hold NaN"):
        strict.process(points_to_cloud(some_nan, hdr))


@pytest.mark.parametrize("points, num_nonfinite", [
    (np.zeros((0, 4), np.float32), 0),  # empty
    (np.full((10, 4), np.nan, np.float32), 10),  # every point NaN (nonfinite=drop)
    (np.array([[900.0, 0, 0, 0.5], [0, -900.0, 1, 0.2]], np.float32), 0),  # none in range
])
def test_a_cloud_without_a_usable_point_gives_an_empty_result(ros_detector, points, num_nonfinite):
    proc = FrameProcessor(ros_detector, params(frame_id="velodyne", transform="1 0 0 0 0 0"))
    hdr = Header(STAMP, "lidar")
    result = proc.process(points_to_cloud(points, hdr))
    assert result.header == Header(STAMP, "velodyne")  # the input's stamp, the detector frame
    assert len(result.detections) == 0 and result.boxes == []
    assert [m.action for m in result.markers] == [DELETEALL]
    assert result.num_nonfinite == num_nonfinite and result.num_points == len(points) - num_nonfinite
    assert any("the result is empty" in n for n in result.notes), result.notes


def test_transform_into_detector_frame(ros_detector):
    proc = FrameProcessor(ros_detector, params(frame_id="base_link", transform="1 0 -2 0 0 1.5707963267948966", transform_from="lidar"))
    pts = np.array([[1, 0, 0, 0.5], [0, 1, 1, 0.25]], np.float32)
    cloud = points_to_cloud(pts, Header(STAMP, "lidar"))
    before = pts.copy()
    out = proc.to_detector_frame(pts, cloud, "src")
    np.testing.assert_allclose(out, [[1, 1, -2, 0.5], [0, 0, -1, 0.25]], atol=1e-6)
    np.testing.assert_array_equal(pts, before)  # a new array unless out= is given
    buf = pts.copy()
    assert proc.to_detector_frame(buf, cloud, "src", out=buf) is buf
    np.testing.assert_array_equal(buf, out)
    assert proc.output_frame("lidar") == "base_link"
    # the detector frame itself passes unchanged; a third frame is rejected
    assert proc.to_detector_frame(pts, points_to_cloud(pts, Header(STAMP, "base_link")), "src") is pts
    with pytest.raises(PointCloudError, match="frame 'radar'.*transform from 'lidar'"):
        proc.to_detector_frame(pts, points_to_cloud(pts, Header(STAMP, "radar")), "src")
    # no frame_id: every cloud is taken in its own frame
    free = FrameProcessor(ros_detector, params())
    assert free.output_frame("anything") == "anything"


def test_results_carry_the_points_only_when_asked(ros_detector, frames):
    """The cloud is decoded into the detector's input buffer; a result keeps a copy of the points
    (moved into the detector frame) only from a processor with keep_points."""
    pts = frames[0]
    cloud = points_to_cloud(pts, Header(STAMP, "lidar"))
    p = params(frame_id="base_link", transform="1 0 -2 0 0 1.5707963267948966", transform_from="lidar")
    kept = FrameProcessor(ros_detector, p, keep_points=True).process(cloud)
    plain = FrameProcessor(ros_detector, p).process(cloud)
    np.testing.assert_allclose(kept.points, FrameProcessor(ros_detector, p).to_detector_frame(pts, cloud, "src"))
    assert plain.points.shape == (0, 4) and plain.num_points == kept.num_points == len(pts)
    np.testing.assert_array_equal(plain.detections.boxes, kept.detections.boxes)


def test_repeat_filter():
    now = [0.0]
    f = RepeatFilter(period_s=5.0, clock=lambda: now[0])
    assert f("cloud stamp 1.5: empty") == "cloud stamp 1.5: empty"
    assert f("cloud stamp 2.5: empty") is None
    assert f("cloud stamp 2.7: other problem") == "cloud stamp 2.7: other problem"
    now[0] = 6.0
    assert f("cloud stamp 9.5: empty") == "cloud stamp 9.5: empty (1 similar messages suppressed)"


# issue 14 item 14: ROS 2 gives dynamically typed values; ROS 1 gives YAML-typed ones; one coercion for both


@pytest.mark.parametrize(
    "name, given, expected",
    [
        ("intensity_scale", 0.0039, "0.0039"),
        ("intensity_scale", "1/255", "1/255"),
        ("transform", [1.2, 0.0, 1.8, 0.0, 0.0, 0.0], "1.2 0.0 1.8 0.0 0.0 0.0"),
        ("transform", array.array("d", [1.0, 2.0, 0.0, 0.0, 0.0, 0.5]), "1.0 2.0 0.0 0.0 0.0 0.5"),
        ("score_threshold", 1, 1.0),
        ("score_threshold", "0.4", 0.4),
        ("warmup", 3.0, 3),
        ("warmup", "0", 0),
        ("frame_id", 7, "7"),
        ("ckpt", None, ""),
    ],
)
def test_parameter_values_of_either_ros_are_coerced(name, given, expected):
    p = NodeParams(frame_id="base").with_overrides(lambda n, d: given if n == name else d)
    assert getattr(p, name) == expected and type(getattr(p, name)) is type(expected)


@pytest.mark.parametrize(
    "name, given, expects",
    [
        ("warmup", 2.5, "an integer"),
        ("warmup", True, "an integer"),
        ("warmup", "lots", "an integer"),
        ("score_threshold", "high", "a finite number"),
        ("score_threshold", float("nan"), "a finite number"),
        ("score_threshold", [0.1], "a finite number"),
        ("frame_id", True, "a string"),
        ("transform", [[1.0, 2.0]], "a string"),
        ("input", {"a": 1}, "a string"),
    ],
)
def test_parameter_of_the_wrong_type_names_it_and_its_type(name, given, expects):
    with pytest.raises(ConfigError, match=rf"parameter '{name}': expected {expects}.*, got .*\("):
        NodeParams().with_overrides(lambda n, d: given if n == name else d)


@pytest.mark.parametrize("name", ["intensity_scale", "intensity_auto_float_scale"])
@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1/255"])
def test_nan_or_non_positive_intensity_scale_is_refused(name, value):
    with pytest.raises(ConfigError, match=rf"parameter '{name}': intensity scale must be finite and positive"):
        NodeParams(**{name: value}).check()
    with pytest.raises(ConfigError, match="must be a number, not 'auto'"):
        NodeParams(intensity_auto_float_scale="auto").check()


def test_score_threshold_above_one_and_negative_warmup_are_refused():
    with pytest.raises(ConfigError, match=r"parameter 'score_threshold': must be in \[0, 1\]"):
        NodeParams(score_threshold=7.0).check()
    with pytest.raises(ConfigError, match=r"parameter 'score_threshold': must be in \[0, 1\]"):
        NodeParams(score_threshold=float("nan")).check()
    with pytest.raises(ConfigError, match=r"parameter 'warmup': must be >= 0"):
        NodeParams(warmup=-1).check()
