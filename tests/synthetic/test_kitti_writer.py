"""KITTI label fields of synthetic frames: calibration, truncation, 2D boxes, occlusion, DontCare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pointpillars_trt.io.kitti import Calibration, boxes_camera_to_lidar, kitti_objects_to_camera_boxes
from pointpillars_trt.synthetic import generate_frame
from pointpillars_trt.synthetic.frame import points_in_boxes
from pointpillars_trt.synthetic.kitti_writer import (
    IMAGE_SHAPE,
    frame_objects,
    image_extent,
    kitti_calibration,
    occlusion_level,
)

KITTI_CALIB = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "kitti_frames" / "zhulf0804" / "calib" / "000134.txt"


def test_calibration_is_kitti_frame_000134():
    if not KITTI_CALIB.exists():
        pytest.skip(f"{KITTI_CALIB} not found")
    real = Calibration.from_file(KITTI_CALIB)
    ours = kitti_calibration()
    for name in ("P2", "R0_rect", "Tr_velo_to_cam"):
        assert np.array_equal(getattr(ours, name), getattr(real, name)), name


def test_occlusion_levels():
    assert occlusion_level(np.array([0.0, 0.19, 0.2, 0.69, 0.7, 1.0])).tolist() == [0, 0, 1, 1, 2, 2]


def test_image_extent_in_view_truncated_and_behind():
    calib = kitti_calibration()
    boxes = np.array(
        [
            [20.0, 0.0, -0.95, 3.9, 1.6, 1.56, 0.0],  # straight ahead
            [-20.0, 0.0, -0.95, 3.9, 1.6, 1.56, 0.0],  # behind
            [6.0, 6.0, -0.95, 3.9, 1.6, 1.56, 0.0],  # at the left image border, partly outside
            [5.0, 40.0, -0.95, 3.9, 1.6, 1.56, 0.0],  # far to the left, out of view
        ]
    )
    in_view, trunc, bbox = image_extent(boxes, calib)
    assert in_view.tolist() == [True, False, True, False]
    assert trunc[0] == 0.0 and trunc[1] == 1.0 and 0.05 < trunc[2] < 0.95
    h, w = IMAGE_SHAPE
    assert 0 < bbox[0, 0] < bbox[0, 2] < w - 1 and 0 < bbox[0, 1] < bbox[0, 3] < h - 1
    # the car ahead at 20 m: about 707 px * 1.56 m / 20 m tall, centred near the principal point
    assert bbox[0, 3] - bbox[0, 1] == pytest.approx(707.05 * 1.56 / 18.0, rel=0.15)
    assert bbox[2, 0] == 0.0  # clipped at the left border


@pytest.fixture(scope="module")
def frame_and_objects():
    f = generate_frame(21, 0)
    return f, frame_objects(f, kitti_calibration())


def test_labelled_objects_have_points_and_valid_fields(frame_and_objects):
    f, objects = frame_and_objects
    calib = kitti_calibration()
    real = [o for o in objects if o.type != "DontCare"]
    assert real, "no labelled object in the camera view"
    types = [o.type for o in objects]
    assert types == sorted(types, key=lambda t: t == "DontCare")  # DontCare last
    lidar = boxes_camera_to_lidar(kitti_objects_to_camera_boxes(real), calib)
    counts = points_in_boxes(f.points, lidar).sum(axis=0)
    assert np.all(counts > 0)
    h, w = IMAGE_SHAPE
    for o in real:
        assert o.type in ("Car", "Pedestrian", "Cyclist")
        assert 0.0 <= o.truncated <= 1.0 and o.occluded in (0, 1, 2)
        assert -np.pi <= o.alpha <= np.pi and -np.pi <= o.rotation_y <= np.pi
        x1, y1, x2, y2 = o.bbox
        assert 0 <= x1 <= x2 <= w - 1 and 0 <= y1 <= y2 <= h - 1
        assert o.location[2] > 0  # in front of the camera
        assert all(v == round(v, 2) for v in (*o.dimensions, *o.location, o.rotation_y))
    for o in objects:
        if o.type == "DontCare":
            assert o.dimensions == (-1.0, -1.0, -1.0) and o.location == (-1000.0, -1000.0, -1000.0)


def test_objects_outside_the_view_are_not_labelled_but_are_in_the_cloud(frame_and_objects):
    f, objects = frame_and_objects
    in_view, _, _ = image_extent(f.boxes, kitti_calibration())
    assert len(objects) == int(in_view.sum())
    outside = np.flatnonzero(~in_view & (f.num_points > 0))
    assert len(outside) > 0
    assert all(np.any(f.point_object == k) for k in outside)
