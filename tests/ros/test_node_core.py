"""The node's per-message logic with ROS 2 (CDR) messages from rosbags: publish, skip, close."""

import numpy as np
import pytest

from pointpillars_trt.errors import ConfigError
from pointpillars_trt.ros.cloud import CloudData, Header, PointFieldData, Stamp, points_to_cloud
from pointpillars_trt.ros.factories import RosbagsFactory
from pointpillars_trt.ros.markers import DELETEALL, box_line_segments
from pointpillars_trt.ros.messages import DETECTION3D_ARRAY_TYPE, boxes_from_msg, cloud_msg, markers_from_msg
from pointpillars_trt.ros.msgdefs import BOX_ARRAY_TYPE, register_types
from pointpillars_trt.ros.node_core import NodeCore, Publishers, choose_box_type
from pointpillars_trt.ros.processor import NodeParams

from .conftest import SCORE_THRESHOLD, assert_boxes_close

typesys = pytest.importorskip("rosbags.typesys")


def store(ros1: bool, vision: bool = True):
    ts = typesys.get_typestore(typesys.Stores.ROS1_NOETIC if ros1 else typesys.Stores.ROS2_HUMBLE)
    if ros1 or vision:
        register_types(ts, ros1=ros1)
    return ts, RosbagsFactory(ts, 1 if ros1 else 2)


def test_choose_box_type():
    _, with_vision = store(False)
    _, without = store(False, vision=False)
    _, ros1 = store(True)
    assert choose_box_type(with_vision, "auto") == DETECTION3D_ARRAY_TYPE
    assert choose_box_type(without, "auto") is None
    assert choose_box_type(ros1, "auto") == BOX_ARRAY_TYPE
    assert choose_box_type(ros1, "pointpillars") == BOX_ARRAY_TYPE and choose_box_type(with_vision, "none") is None
    with pytest.raises(ConfigError, match="ROS 1 only"):
        choose_box_type(without, "pointpillars")
    with pytest.raises(ConfigError, match="not installed"):
        choose_box_type(without, "vision_msgs")


def test_node_core_with_cdr_messages(ros_ckpt, frames, expected):
    from pointpillars_trt.detector import Detector

    ts, f = store(False)
    sent = {"markers": [], "boxes": [], "latency": []}
    logs = {"info": [], "warn": [], "error": []}
    order = []  # topics in the order they were published

    def publish(topic, typename):
        return lambda msg: (order.append(topic),
                            sent[topic].append(ts.deserialize_cdr(bytes(ts.serialize_cdr(msg, typename)), typename)))

    core = NodeCore(
        Detector.from_checkpoint(ros_ckpt), NodeParams(score_threshold=SCORE_THRESHOLD, frame_id="velodyne"), f,
        Publishers(publish("markers", "visualization_msgs/msg/MarkerArray"), publish("latency", "std_msgs/msg/Float32"),
                   publish("boxes", DETECTION3D_ARRAY_TYPE)),
        DETECTION3D_ARRAY_TYPE, logs["info"].append, logs["warn"].append, logs["error"].append,
    )
    hdr = Header(Stamp(77, 88), "velodyne")

    def incoming(cloud):  # as a subscriber receives it: CDR bytes deserialized
        return ts.deserialize_cdr(bytes(ts.serialize_cdr(cloud_msg(f, cloud), "sensor_msgs/msg/PointCloud2")), "sensor_msgs/msg/PointCloud2")

    # a bad cloud first: logged, nothing published, the core keeps going
    no_xyz = CloudData(hdr, 1, 2, (PointFieldData("a", 0, 7),), False, 4, 8, bytes(8))
    assert core.handle(incoming(no_xyz)) is None
    assert sent == {"markers": [], "boxes": [], "latency": []} and len(logs["error"]) == 1
    assert "no field(s)" in logs["error"][0]

    # clouds without a usable point: published as "no objects" with the input's stamp
    empty_hdr = Header(Stamp(70, 1), "velodyne")
    for i, pts in enumerate([np.zeros((0, 4), np.float32), np.full((5, 4), np.nan, np.float32),
                             np.array([[900.0, 900.0, 0.0, 0.1]], np.float32)]):
        result = core.handle(incoming(points_to_cloud(pts, empty_hdr)))
        assert result is not None and len(result.boxes) == 0
        header, boxes, _, _ = boxes_from_msg(sent["boxes"][i])
        assert header == empty_hdr and boxes.shape == (0, 7)
        headers, markers = markers_from_msg(sent["markers"][i])
        assert headers == [empty_hdr] and [m.action for m in markers] == [DELETEALL]
    assert any("the result is empty" in w for w in logs["warn"])
    for v in sent.values():
        v.clear()

    result = core.handle(incoming(points_to_cloud(frames[1], hdr)))
    assert result is not None and result.num_nonfinite == 0
    assert [len(v) for v in sent.values()] == [1, 1, 1]
    want = expected[1]
    header, boxes, scores, names = boxes_from_msg(sent["boxes"][0])
    assert header == hdr and names == want.label_names
    assert_boxes_close(boxes, want.boxes)
    np.testing.assert_allclose(scores, want.scores, rtol=1e-6)
    headers, markers = markers_from_msg(sent["markers"][0])
    assert set(headers) == {hdr} and len(markers) == 1 + 2 * len(want)
    np.testing.assert_allclose(markers[1].points, box_line_segments(want.boxes)[0], atol=1e-5)
    assert sent["latency"][0].data > 0 and "latency" in logs["info"][-1]
    assert order[-3:] == ["boxes", "markers", "latency"]  # the boxes do not wait for the markers

    core.close()
    assert core.handle(incoming(points_to_cloud(frames[1], hdr))) is None  # closed: ignored
    assert "shut down after 4 frames (1 clouds skipped)" in logs["info"][-1]


def test_outputs_nobody_subscribes_to_are_not_built(ros_ckpt, frames, expected):
    """With no marker subscriber the frame's markers are neither built nor published; the boxes likewise."""
    from pointpillars_trt.detector import Detector

    ts, f = store(False)
    sent = {"markers": [], "boxes": [], "latency": []}
    listening = {"markers": False, "boxes": True}
    logs = []
    core = NodeCore(
        Detector.from_checkpoint(ros_ckpt), NodeParams(score_threshold=SCORE_THRESHOLD), f,
        Publishers(sent["markers"].append, sent["latency"].append, sent["boxes"].append,
                   markers_wanted=lambda: listening["markers"], boxes_wanted=lambda: listening["boxes"]),
        DETECTION3D_ARRAY_TYPE, logs.append, logs.append, logs.append,
    )
    hdr = Header(Stamp(5, 6), "velodyne")
    result = core.handle(cloud_msg(f, points_to_cloud(frames[1], hdr)))
    assert result is not None and result.markers == [] and len(result.boxes) == len(expected[1]) > 0
    assert [len(v) for v in sent.values()] == [0, 1, 1]
    assert f"-> {len(expected[1])} boxes (no marker subscriber), latency" in logs[-1]
    _, boxes, _, _ = boxes_from_msg(sent["boxes"][0])
    assert_boxes_close(boxes, expected[1].boxes)

    listening.update(markers=True, boxes=False)  # RViz opened, the box consumer gone
    result = core.handle(cloud_msg(f, points_to_cloud(frames[1], hdr)))
    assert [len(v) for v in sent.values()] == [1, 1, 2]
    _, markers = markers_from_msg(sent["markers"][0])
    assert len(markers) == len(result.markers) == 1 + 2 * len(expected[1])
    assert "(no marker subscriber)" not in logs[-1]
    core.close()
