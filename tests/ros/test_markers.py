"""Detections -> marker / box plain data."""

import numpy as np

from pointpillars_trt.io.kitti import box_corners_3d
from pointpillars_trt.ros.markers import (
    DELETEALL,
    LINE_LIST,
    TEXT_VIEW_FACING,
    box_line_segments,
    detections_to_boxes,
    detections_to_markers,
    quaternion_to_yaw,
    yaw_to_quaternion,
)

BOXES = np.array([[10.0, 2.0, -1.0, 4.0, 1.8, 1.5, 0.3], [5.0, -3.0, -0.8, 0.8, 0.6, 1.7, -2.5]], np.float32)
SCORES = np.array([0.9, 0.45], np.float32)
LABELS = np.array([0, 1])
NAMES = ("Car", "Pedestrian", "Cyclist")


def test_quaternion_round_trip():
    yaw = np.array([0.0, 0.3, -2.5, np.pi - 1e-6, -np.pi / 2])
    q = yaw_to_quaternion(yaw)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0)
    np.testing.assert_allclose(quaternion_to_yaw(q), yaw, atol=1e-9)


def test_line_segments_are_the_box_edges_and_heading():
    seg = box_line_segments(BOXES)
    assert seg.shape == (2, 26, 3)
    corners = box_corners_3d(BOXES.astype(np.float64))
    # every edge endpoint is a corner; every edge has the length of dx, dy or dz
    lengths = np.linalg.norm(seg[:, 0:24:2] - seg[:, 1:24:2], axis=-1)
    for i in range(2):
        assert all(np.isclose(corners[i], p).all(axis=1).any() for p in seg[i, :24])
        np.testing.assert_allclose(np.sort(lengths[i]), np.sort(np.repeat(BOXES[i, 3:6], 4)), rtol=1e-5)
    # heading: from the centre, dx/2 along yaw
    head = seg[:, 25] - seg[:, 24]
    np.testing.assert_allclose(seg[:, 24], BOXES[:, :3], rtol=1e-6)
    np.testing.assert_allclose(np.arctan2(head[:, 1], head[:, 0]), BOXES[:, 6], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(head, axis=1), BOXES[:, 3] / 2, rtol=1e-5)


def test_markers_layout():
    markers = detections_to_markers(BOXES, SCORES, LABELS, NAMES, ns="pp", text_size=0.5)
    assert len(markers) == 1 + 2 * len(BOXES)
    assert markers[0].action == DELETEALL
    lines, texts = markers[1:3], markers[3:]
    assert [m.type for m in lines] == [LINE_LIST] * 2 and [m.type for m in texts] == [TEXT_VIEW_FACING] * 2
    assert [m.id for m in lines] == [0, 1] and {m.ns for m in lines} == {"pp/boxes"} and {m.ns for m in texts} == {"pp/labels"}
    assert texts[0].text == "Car 0.90" and texts[1].text == "Pedestrian 0.45"
    assert texts[0].position[2] > BOXES[0, 2] + BOXES[0, 5] / 2
    assert lines[0].color != lines[1].color
    np.testing.assert_allclose(lines[1].points, box_line_segments(BOXES)[1])


def test_markers_without_points_share_one_read_only_empty_array():
    """Text and DELETEALL markers hold no points: one read-only ``[0, 3]`` array for all of them (no
    allocation per marker), which nobody can fill by mistake."""
    markers = detections_to_markers(BOXES, SCORES, LABELS, NAMES)
    empty = [m.points for m in markers if m.type != LINE_LIST or m.action == DELETEALL]
    assert len(empty) == 1 + len(BOXES) and all(p is empty[0] for p in empty)
    assert empty[0].shape == (0, 3) and empty[0].dtype == np.float64 and not empty[0].flags.writeable
    assert all(m.points.flags.writeable and m.points.shape == (26, 3) for m in markers[1:1 + len(BOXES)])


def test_no_boxes():
    markers = detections_to_markers(np.zeros((0, 7)), np.zeros(0), np.zeros(0, int), NAMES)
    assert len(markers) == 1 and markers[0].action == DELETEALL
    assert detections_to_boxes(np.zeros((0, 7)), np.zeros(0), np.zeros(0, int), NAMES) == []


def test_boxes():
    boxes = detections_to_boxes(BOXES, SCORES, LABELS, NAMES)
    assert [b.class_name for b in boxes] == ["Car", "Pedestrian"] and [b.label for b in boxes] == [0, 1]
    np.testing.assert_allclose(np.stack([b.box7 for b in boxes]), BOXES, rtol=1e-6)
    assert isinstance(boxes[0].score, float) and abs(boxes[1].score - 0.45) < 1e-6
    np.testing.assert_allclose(quaternion_to_yaw(np.array([b.orientation for b in boxes])), BOXES[:, 6], atol=1e-6)
