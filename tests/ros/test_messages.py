"""Plain data <-> real serialized messages: ROS 2 CDR and ROS 1 through rosbags, ROS 1 through genpy."""

import io

import numpy as np
import pytest

from pointpillars_trt.ros.cloud import Header, PointFieldData, Stamp, cloud_from_msg, cloud_to_points, points_to_cloud
from pointpillars_trt.ros.factories import RosbagsFactory
from pointpillars_trt.ros.markers import DELETEALL, detections_to_boxes, detections_to_markers
from pointpillars_trt.ros.messages import (
    box_array_msg,
    boxes_from_msg,
    cloud_msg,
    detection3d_array_msg,
    float32_msg,
    marker_array_msg,
    markers_from_msg,
)
from pointpillars_trt.ros.msgdefs import BOX_ARRAY_TYPE, register_types

rosbags_typesys = pytest.importorskip("rosbags.typesys")
Stores, get_typestore = rosbags_typesys.Stores, rosbags_typesys.get_typestore

HDR = Header(Stamp(1_700_000_000, 123_456_789), "velodyne")
BOXES = np.array([[10.0, 2.0, -1.0, 4.0, 1.8, 1.5, 0.3], [5.0, -3.0, -0.8, 0.8, 0.6, 1.7, -2.5]], np.float32)
SCORES = np.array([0.9, 0.45], np.float32)
LABELS = np.array([0, 2])
NAMES = ("Car", "Pedestrian", "Cyclist")


@pytest.fixture(scope="module")
def ros2():
    ts = get_typestore(Stores.ROS2_HUMBLE)
    register_types(ts, ros1=False)
    return ts, RosbagsFactory(ts, 2)


@pytest.fixture(scope="module")
def ros1():
    ts = get_typestore(Stores.ROS1_NOETIC)
    register_types(ts, ros1=True)
    return ts, RosbagsFactory(ts, 1)


def cdr_round_trip(ts, msg, typename):
    raw = ts.serialize_cdr(msg, typename)
    assert isinstance(raw, (bytes, bytearray, memoryview, np.ndarray)) and len(raw) > 0
    return ts.deserialize_cdr(bytes(raw), typename)


def ros1_round_trip(ts, msg, typename):
    return ts.deserialize_ros1(bytes(ts.serialize_ros1(msg, typename)), typename)


def test_kitti_cloud_cdr_round_trip(ros2, frames):
    ts, f = ros2
    pts = frames[0]
    msg = cdr_round_trip(ts, cloud_msg(f, points_to_cloud(pts, HDR)), "sensor_msgs/msg/PointCloud2")
    cloud = cloud_from_msg(msg)
    assert cloud.header == HDR and cloud.num_points == len(pts) and cloud.field_names == ["x", "y", "z", "intensity"]
    np.testing.assert_array_equal(cloud_to_points(cloud), pts)


def test_driver_cloud_built_with_rosbags_types(ros2):
    """A cloud made directly from rosbags' classes (not our builders): organized, padded, uint8 intensity."""
    ts, _ = ros2
    T = ts.types
    rng = np.random.default_rng(1)
    h, w, step = 2, 5, 24
    pts = rng.uniform(-5, 5, (h * w, 3)).astype(np.float32)
    inten = rng.integers(0, 256, h * w).astype(np.uint8)
    rec = np.zeros(h * w, dtype=np.dtype({"names": ["i", "x", "y", "z"], "formats": ["u1", "<f4", "<f4", "<f4"],
                                          "offsets": [0, 4, 8, 12], "itemsize": step}))
    rec["i"], rec["x"], rec["y"], rec["z"] = inten, pts[:, 0], pts[:, 1], pts[:, 2]
    rows = np.concatenate([rec.view(np.uint8).reshape(h, w * step), np.zeros((h, 8), np.uint8)], axis=1)
    PF = T["sensor_msgs/msg/PointField"]
    msg = T["sensor_msgs/msg/PointCloud2"](
        header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=5, nanosec=6), frame_id="os_sensor"),
        height=h, width=w,
        fields=[PF(name="intensity", offset=0, datatype=PF.UINT8, count=1), PF(name="x", offset=4, datatype=PF.FLOAT32, count=1),
                PF(name="y", offset=8, datatype=PF.FLOAT32, count=1), PF(name="z", offset=12, datatype=PF.FLOAT32, count=1)],
        is_bigendian=False, point_step=step, row_step=w * step + 8, data=rows.reshape(-1), is_dense=True,
    )
    cloud = cloud_from_msg(cdr_round_trip(ts, msg, "sensor_msgs/msg/PointCloud2"))
    assert cloud.header == Header(Stamp(5, 6), "os_sensor")
    out = cloud_to_points(cloud, intensity_scale=1 / 255)
    np.testing.assert_array_equal(out[:, :3], pts)
    np.testing.assert_allclose(out[:, 3], inten / 255.0, rtol=1e-6)


def check_markers(msg):
    headers, markers = markers_from_msg(msg)
    expected = detections_to_markers(BOXES, SCORES, LABELS, NAMES)
    assert headers == [HDR] * len(expected)
    assert markers[0].action == DELETEALL
    for got, want in zip(markers, expected):
        assert (got.ns, got.id, got.type, got.action, got.text) == (want.ns, want.id, want.type, want.action, want.text)
        np.testing.assert_allclose(got.points, want.points)
        np.testing.assert_allclose(got.color, want.color, rtol=1e-6)
        np.testing.assert_allclose(got.position, want.position)


def check_boxes(msg):
    header, boxes, scores, names = boxes_from_msg(msg)
    assert header == HDR and names == ["Car", "Cyclist"]
    np.testing.assert_allclose(boxes, BOXES, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scores, SCORES, rtol=1e-6)


def test_marker_array_cdr_round_trip(ros2):
    ts, f = ros2
    msg = marker_array_msg(f, HDR, detections_to_markers(BOXES, SCORES, LABELS, NAMES))
    check_markers(cdr_round_trip(ts, msg, "visualization_msgs/msg/MarkerArray"))


def test_detection3d_array_cdr_round_trip(ros2):
    ts, f = ros2
    msg = detection3d_array_msg(f, HDR, detections_to_boxes(BOXES, SCORES, LABELS, NAMES))
    back = cdr_round_trip(ts, msg, "vision_msgs/msg/Detection3DArray")
    check_boxes(back)
    d = back.detections[1]
    assert d.results[0].hypothesis.class_id == "Cyclist" and d.header.stamp.nanosec == HDR.stamp.nsec
    np.testing.assert_allclose([d.bbox.size.x, d.bbox.size.y, d.bbox.size.z], BOXES[1, 3:6], rtol=1e-6)


def test_rosbags_factory_fills_zeros_and_refuses_unknown_fields(ros2):
    ts, f = ros2
    a, b = (f.new("visualization_msgs/msg/Marker", ns="x") for _ in range(2))
    assert a.ns == "x" and a.id == 0 and a.text == "" and a.pose.orientation.w == 0.0 and a.colors == []
    assert a.colors is not b.colors and a.pose is not b.pose  # zero values made per message, never shared
    assert cdr_round_trip(ts, a, "visualization_msgs/msg/Marker").ns == "x"
    with pytest.raises(TypeError, match=r"Marker has no field\(s\) \['nss'\]"):
        f.new("visualization_msgs/msg/Marker", nss="x")
    assert [(p.x, p.y, p.z) for p in f.points([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])] == [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)]


def test_float32_cdr(ros2):
    ts, f = ros2
    assert cdr_round_trip(ts, float32_msg(f, 12.5), "std_msgs/msg/Float32").data == 12.5


def test_ros1_serialization_through_rosbags(ros1, frames):
    ts, f = ros1
    cloud = cloud_from_msg(ros1_round_trip(ts, cloud_msg(f, points_to_cloud(frames[0], HDR)), "sensor_msgs/msg/PointCloud2"))
    np.testing.assert_array_equal(cloud_to_points(cloud), frames[0])
    check_markers(ros1_round_trip(ts, marker_array_msg(f, HDR, detections_to_markers(BOXES, SCORES, LABELS, NAMES)),
                                  "visualization_msgs/msg/MarkerArray"))
    check_boxes(ros1_round_trip(ts, box_array_msg(f, HDR, detections_to_boxes(BOXES, SCORES, LABELS, NAMES)), BOX_ARRAY_TYPE))


# ------------------------------------------------------------------ ROS 1 genpy (Debian's rospy)


@pytest.fixture(scope="module")
def genpy_factory():
    from pointpillars_trt.ros.env import RosUnavailableError, import_ros

    try:
        import_ros(1)
    except RosUnavailableError as exc:
        pytest.skip(f"rospy not installed: {exc}")
    from pointpillars_trt.ros.factories import GenpyFactory

    return GenpyFactory()


def genpy_bytes(msg) -> bytes:
    buf = io.BytesIO()
    msg.serialize(buf)
    return buf.getvalue()


def test_genpy_and_rosbags_agree(genpy_factory, ros1):
    """Messages built with genpy deserialize in rosbags (and back); BoxArray md5 sums agree."""
    ts, f = ros1
    g = genpy_factory
    box_cls = g.cls(BOX_ARRAY_TYPE)
    assert box_cls._md5sum == ts.generate_msgdef(BOX_ARRAY_TYPE)[1]
    assert box_cls._type == "pointpillars_trt_msgs/BoxArray"
    check_boxes(ts.deserialize_ros1(genpy_bytes(box_array_msg(g, HDR, detections_to_boxes(BOXES, SCORES, LABELS, NAMES))), BOX_ARRAY_TYPE))
    check_markers(ts.deserialize_ros1(
        genpy_bytes(marker_array_msg(g, HDR, detections_to_markers(BOXES, SCORES, LABELS, NAMES))), "visualization_msgs/msg/MarkerArray"
    ))
    # rosbags bytes -> genpy message -> our reader
    raw = bytes(ts.serialize_ros1(box_array_msg(f, HDR, detections_to_boxes(BOXES, SCORES, LABELS, NAMES)), BOX_ARRAY_TYPE))
    check_boxes(box_cls().deserialize(raw))


def test_genpy_bytes_equal_rosbags_bytes(genpy_factory, ros1, frames):
    """genpy's messages (argument-free constructor + setattr, the point list built the fast way, one
    header shared by the markers) serialize to exactly the bytes of rosbags' ROS 1 serializer."""
    ts, f = ros1
    g = genpy_factory
    markers = detections_to_markers(BOXES, SCORES, LABELS, NAMES)
    boxes = detections_to_boxes(BOXES, SCORES, LABELS, NAMES)
    cloud = points_to_cloud(frames[0], HDR)
    for build, data, typename in ((marker_array_msg, markers, "visualization_msgs/msg/MarkerArray"),
                                  (box_array_msg, boxes, BOX_ARRAY_TYPE)):
        assert genpy_bytes(build(g, HDR, data)) == bytes(ts.serialize_ros1(build(f, HDR, data), typename)), typename
    assert genpy_bytes(cloud_msg(g, cloud)) == bytes(ts.serialize_ros1(cloud_msg(f, cloud), "sensor_msgs/msg/PointCloud2"))


def test_genpy_new_refuses_a_field_the_type_lacks(genpy_factory):
    assert genpy_factory.new("geometry_msgs/msg/Point", x=1.5).z == 0.0  # the rest keep their defaults
    with pytest.raises(AttributeError):
        genpy_factory.new("geometry_msgs/msg/Point", x=1.0, w=2.0)


def test_genpy_cloud_with_bigendian_layout(genpy_factory):
    g = genpy_factory
    pts = np.random.default_rng(0).uniform(-9, 9, (30, 4)).astype(np.float32)
    fields = (PointFieldData("y", 0, 8), PointFieldData("x", 8, 8), PointFieldData("intensity", 16, 7), PointFieldData("z", 20, 7))
    msg = cloud_msg(g, points_to_cloud(pts, HDR, fields, point_step=28, is_bigendian=True))
    cls = g.cls("sensor_msgs/msg/PointCloud2")
    back = cls().deserialize(genpy_bytes(msg))
    assert back.header.stamp.secs == HDR.stamp.sec and back.header.stamp.nsecs == HDR.stamp.nsec
    np.testing.assert_allclose(cloud_to_points(cloud_from_msg(back)), pts, rtol=1e-7)
