"""KITTI calibration, labels and LiDAR <-> camera conversions (checked on the real frames in ../shared)."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from tests.fuzzing import FUZZ, near, reads_or_typed_error
from pointpillars_trt.errors import CalibrationError, InputWarning, LabelError
from pointpillars_trt.io.kitti import (
    Calibration,
    KittiObject,
    box_corners_3d,
    boxes_camera_to_lidar,
    boxes_lidar_to_camera,
    camera_box_corners,
    crop_to_fov,
    detections_to_kitti_objects,
    kitti_objects_to_camera_boxes,
    project_boxes_to_image,
    read_image_shape,
    read_label,
    write_label,
)

ZHULF = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "kitti_frames" / "zhulf0804"


@pytest.fixture(scope="module")
def zhulf() -> Path:
    if not (ZHULF / "label_2" / "000134.txt").is_file():
        pytest.skip(f"KITTI frames not found under {ZHULF}")
    return ZHULF


@pytest.fixture(scope="module")
def calib134(zhulf) -> Calibration:
    return Calibration.from_file(zhulf / "calib" / "000134.txt")


@pytest.fixture(scope="module")
def objects134(zhulf) -> list[KittiObject]:
    return read_label(zhulf / "label_2" / "000134.txt")


def synthetic_calibration() -> Calibration:
    """Camera at the LiDAR origin looking along +x (rect x = -y_lidar, y = -z_lidar, z = x_lidar)."""
    p2 = np.array([[700.0, 0, 600.0, 40.0], [0, 700.0, 180.0, 0.2], [0, 0, 1.0, 0.005]])
    velo_to_cam = np.array([[0, -1.0, 0, 0.1], [0, 0, -1.0, -0.05], [1.0, 0, 0, -0.3]])
    return Calibration(P2=p2, R0_rect=np.eye(3), Tr_velo_to_cam=velo_to_cam)


def tiny_png(height: int, width: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


# -- calibration -------------------------------------------------------------------------------------


def test_calibration_reads_the_kitti_file(calib134):
    assert calib134.P2.shape == (3, 4) and calib134.R0_rect.shape == (3, 3)
    assert calib134.Tr_velo_to_cam.shape == (3, 4)
    assert calib134.P2[0, 0] == pytest.approx(7.070493e02)
    assert calib134.Tr_velo_to_cam[2, 3] == pytest.approx(-3.321029e-01)
    assert not calib134.P2.flags.writeable


def test_calibration_write_read_is_exact(calib134, tmp_path):
    path = calib134.write(tmp_path / "calib.txt")
    keys = [line.split(":")[0] for line in path.read_text().splitlines()]
    assert keys == ["P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"]
    again = Calibration.from_file(path)
    for name in ("P2", "R0_rect", "Tr_velo_to_cam"):
        np.testing.assert_array_equal(getattr(again, name), getattr(calib134, name))


def test_calibration_errors_name_file_and_line(tmp_path, calib134):
    good = calib134.write(tmp_path / "good.txt").read_text().splitlines()
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(good[:4] + ["R0_rect: 1 0 0 0 1 0 0 0"] + good[5:]) + "\n")
    with pytest.raises(CalibrationError, match=r"bad\.txt:5: R0_rect: expected 9 numbers, got 8"):
        Calibration.from_file(bad)
    bad.write_text("\n".join(good[:2] + ["P2: 1 2 x"] + good[3:]) + "\n")
    with pytest.raises(CalibrationError, match=r"bad\.txt:3: P2: values are not all numbers"):
        Calibration.from_file(bad)
    bad.write_text("\n".join(good[:5]) + "\n")
    with pytest.raises(CalibrationError, match=r"bad\.txt: missing calibration key\(s\) \['Tr_velo_to_cam'\]"):
        Calibration.from_file(bad)
    bad.write_text("garbage line\n")
    with pytest.raises(CalibrationError, match=r"bad\.txt:1: expected 'KEY: v1 v2 \.\.\.'"):
        Calibration.from_file(bad)
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.from_file(tmp_path / "absent.txt")


def test_point_transforms_round_trip(calib134):
    rng = np.random.default_rng(0)
    pts = rng.uniform([0, -40, -3], [70, 40, 1], size=(1000, 3))
    rect = calib134.lidar_to_rect(pts)
    np.testing.assert_allclose(calib134.rect_to_lidar(rect), pts, atol=1e-9)
    # the camera looks along LiDAR +x: depth ~ x, image x grows to the right (LiDAR -y)
    np.testing.assert_allclose(rect[:, 2], pts[:, 0], atol=0.5)
    uv, depth = calib134.rect_to_image(rect)
    np.testing.assert_allclose(depth, rect[:, 2], atol=1e-12)
    left = rect_to_u(calib134, [[20.0, 5.0, -1.0]])
    right = rect_to_u(calib134, [[20.0, -5.0, -1.0]])
    assert left < right


def rect_to_u(calib, pts):
    return calib.rect_to_image(calib.lidar_to_rect(np.asarray(pts)))[0][0, 0]


# -- boxes ---------------------------------------------------------------------------------------------


def test_label_boxes_lidar_camera_round_trip(calib134, objects134):
    cam = kitti_objects_to_camera_boxes([o for o in objects134 if o.type != "DontCare"])
    lidar = boxes_camera_to_lidar(cam, calib134)
    np.testing.assert_allclose(boxes_lidar_to_camera(lidar, calib134), cam, atol=1e-9)
    # first Car: h 1.50 w 1.78 l 3.69 at camera (-3.29, 1.46, 12.65), ry -1.57
    car = lidar[0]
    assert car[3:6] == pytest.approx([3.69, 1.78, 1.50])
    assert car[0] == pytest.approx(12.65 + 0.27, abs=0.3)  # LiDAR x ~ camera z (+ lever arm)
    assert car[1] == pytest.approx(3.29, abs=0.1)  # LiDAR y (left) ~ -camera x
    assert car[6] == pytest.approx(-(-1.57 + math.pi / 2), abs=1e-9)  # yaw = -(ry + pi/2) ~ 0: along +x


def test_box_conversion_is_exact_inverse_on_random_boxes():
    calib = synthetic_calibration()
    rng = np.random.default_rng(1)
    boxes = np.column_stack(
        [rng.uniform(0, 60, 50), rng.uniform(-30, 30, 50), rng.uniform(-2, 1, 50), rng.uniform(0.5, 5, (50, 3)),
         rng.uniform(-np.pi, np.pi, 50)]
    )  # fmt: skip
    cam = boxes_lidar_to_camera(boxes, calib)
    np.testing.assert_allclose(cam[:, 6], -boxes[:, 6] - np.pi / 2)
    np.testing.assert_allclose(cam[:, 3:6], boxes[:, [3, 5, 4]])
    np.testing.assert_allclose(boxes_camera_to_lidar(cam, calib), boxes, atol=1e-9)
    assert boxes_lidar_to_camera(np.zeros((0, 7)), calib).shape == (0, 7)


def test_box_corners_lidar_and_camera_agree(calib134):
    box = np.array([[10.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.0]])
    corners = box_corners_3d(box)[0]
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners.min(axis=0), [8.0, 1.0, -1.75])
    np.testing.assert_allclose(corners.max(axis=0), [12.0, 3.0, -0.25])
    turned = box_corners_3d(np.array([[0, 0, 0, 4.0, 2.0, 1.0, np.pi / 2]]))[0]
    np.testing.assert_allclose(turned.max(axis=0), [1.0, 2.0, 0.5], atol=1e-12)
    rng = np.random.default_rng(2)
    boxes = np.column_stack([rng.uniform(5, 40, (20, 3)) * [1, 0.5, 0.05], rng.uniform(0.5, 4, (20, 3)),
                             rng.uniform(-3, 3, 20)])  # fmt: skip
    from_lidar = calib134.lidar_to_rect(box_corners_3d(boxes).reshape(-1, 3)).reshape(-1, 8, 3)
    from_camera = camera_box_corners(boxes_lidar_to_camera(boxes, calib134))
    # same corner set (order may differ): heights run along LiDAR z in one and camera -y in the other,
    # axes that this calibration tilts by 0.8 degrees against each other, so corners differ by a few cm
    for a, b, size in zip(from_lidar, from_camera, boxes[:, 3:6]):
        dist = np.linalg.norm(a[:, None] - b[None], axis=-1).min(axis=1)
        assert dist.max() < np.radians(1.0) * np.linalg.norm(size)


def test_projected_gt_boxes_match_label_2d_boxes(zhulf, calib134, objects134):
    objects = [o for o in objects134 if o.type != "DontCare"]
    shape = read_image_shape(zhulf / "image_2" / "000134.png")
    assert shape == (370, 1224)
    lidar = boxes_camera_to_lidar(kitti_objects_to_camera_boxes(objects), calib134)
    projected = project_boxes_to_image(lidar, calib134, shape)
    labelled = np.array([o.bbox for o in objects])
    error = np.abs(projected - labelled)
    assert np.median(error) < 1.0  # 3D boxes of pedestrians are wider than their 2D boxes: a few px
    assert error.max() < 15.0
    assert projected[:, [0, 2]].min() >= 0 and projected[:, [0, 2]].max() <= shape[1] - 1
    unclipped = project_boxes_to_image(lidar, calib134)
    np.testing.assert_allclose(unclipped[:, 1], projected[:, 1])


def test_crop_to_fov_keeps_velodyne_reduced(zhulf):
    for frame in ("000134", "000002"):
        points = np.fromfile(zhulf / "velodyne_reduced" / f"{frame}.bin", dtype=np.float32).reshape(-1, 4)
        calib = Calibration.from_file(zhulf / "calib" / f"{frame}.txt")
        shape = read_image_shape(zhulf / "image_2" / f"{frame}.png")
        kept = crop_to_fov(points, calib, shape)
        assert kept.dtype == np.float32 and kept.shape[1] == 4
        assert len(kept) >= 0.995 * len(points)


def test_crop_to_fov_drops_points_behind_and_beside_the_camera(calib134):
    points = np.array([[20, 0, -1, 0.5], [-20, 0, -1, 0.5], [5, 30, -1, 0.5], [20, 0, 50, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(crop_to_fov(points, calib134, (375, 1242)), points[:1])


def test_read_image_shape(tmp_path):
    png = tmp_path / "img.png"
    png.write_bytes(tiny_png(7, 13))
    assert read_image_shape(png) == (7, 13)
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40)
    with pytest.raises(CalibrationError, match="not a PNG"):
        read_image_shape(tmp_path / "x.jpg")


# -- labels -------------------------------------------------------------------------------------------


def test_read_label(objects134):
    assert len(objects134) == 17
    car = objects134[0]
    assert car.type == "Car" and car.truncated == 0.0 and car.occluded == 0
    assert car.bbox == (333.28, 177.65, 489.60, 277.55)
    assert car.dimensions == (1.50, 1.78, 3.69) and car.location == (-3.29, 1.46, 12.65)
    assert car.rotation_y == -1.57 and car.alpha == -1.33 and car.score is None
    assert car.height_px == pytest.approx(99.9)
    assert [o.type for o in objects134].count("DontCare") == 2


def test_label_round_trip_is_exact(zhulf, objects134, tmp_path):
    path = write_label(tmp_path / "000134.txt", objects134)
    assert read_label(path) == objects134
    # the written file reads like the original KITTI file
    original = [line.split() for line in (zhulf / "label_2" / "000134.txt").read_text().splitlines() if line.strip()]
    written = [line.split() for line in path.read_text().splitlines()]
    assert [[float(v) for v in w[1:]] for w in written] == [[float(v) for v in o[1:]] for o in original]

    rng = np.random.default_rng(3)
    objects = [
        KittiObject("Pedestrian", rng.random(), int(rng.integers(0, 3)), rng.normal(), np.sort(rng.random(4) * 500),
                    rng.random(3) * 3, rng.normal(size=3) * 20, rng.normal(), score=None if k % 2 else rng.random())
        for k in range(20)
    ]  # fmt: skip
    path = write_label(tmp_path / "random.txt", objects)
    assert read_label(path) == objects
    fields = [len(line.split()) for line in path.read_text().splitlines()]
    assert fields == [16 if k % 2 == 0 else 15 for k in range(20)]


def test_write_label_fixed_decimals(tmp_path, objects134):
    path = write_label(tmp_path / "l.txt", objects134[:1], decimals=2)
    assert path.read_text() == "Car 0.00 0 -1.33 333.28 177.65 489.60 277.55 1.50 1.78 3.69 -3.29 1.46 12.65 -1.57\n"


@pytest.mark.parametrize(
    "line, message",
    [
        ("Car 0 0 -1.3 1 2 3 4 1.5 1.7 3.6 1 2 10", r"expected 15 or 16 fields .* got 14"),
        ("Car 0 0 -1.3 1 2 3 4 1.5 1.7 3.6 1 2 10 0.1 0.9 7", r".*got 17"),
        ("Car 0 0 -1.3 1 2 3 four 1.5 1.7 3.6 1 2 10 0.1", r"field 'y2' is not a number: 'four'"),
        ("Car 0 0.5 -1.3 1 2 3 4 1.5 1.7 3.6 1 2 10 0.1", r"field 'occluded' must be an integer"),
        ("Car 0 0 -1.3 1 2 3 4 1.5 1.7 3.6 1 2 nan 0.1", r"field 'z' is not finite"),
        ("Car 0 0 -1.3 10 2 3 4 1.5 1.7 3.6 1 2 10 0.1", r"2D box has x2 < x1"),
    ],
)
def test_read_label_errors_name_file_line_and_problem(tmp_path, line, message):
    path = tmp_path / "000007.txt"
    good = "Van 0.00 0 -1.33 333.28 177.65 489.60 277.55 1.50 1.78 3.69 -3.29 1.46 12.65 -1.57"
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(LabelError, match=r"000007\.txt:3: " + message):
        read_label(path)


def test_read_label_missing_file_is_a_label_error(tmp_path):
    with pytest.raises(LabelError, match="cannot read label file"):
        read_label(tmp_path / "nope.txt")


def test_detections_to_kitti_objects_reproduce_the_label(zhulf, calib134, objects134):
    objects = [o for o in objects134 if o.type != "DontCare"]
    shape = read_image_shape(zhulf / "image_2" / "000134.png")
    lidar = boxes_camera_to_lidar(kitti_objects_to_camera_boxes(objects), calib134)
    scores = np.linspace(0.9, 0.2, len(objects))
    dets = detections_to_kitti_objects(lidar, [o.type for o in objects], scores, calib134, shape)
    assert len(dets) == len(objects)
    for det, gt, score in zip(dets, objects, scores):
        assert det.type == gt.type and det.score == pytest.approx(score)
        assert det.truncated == 0.0 and det.occluded == 0
        np.testing.assert_allclose(det.location, gt.location, atol=1e-9)
        np.testing.assert_allclose(det.dimensions, gt.dimensions, atol=1e-9)
        assert math.cos(det.rotation_y - gt.rotation_y) == pytest.approx(1.0)
        assert -math.pi <= det.rotation_y < math.pi and -math.pi <= det.alpha < math.pi
        assert math.cos(det.alpha - gt.alpha) == pytest.approx(1.0, abs=1e-4)  # OpenPCDet's alpha ~ KITTI's
    assert detections_to_kitti_objects(np.zeros((0, 7)), [], np.zeros(0), calib134) == []
    with pytest.raises(ValueError, match="2 boxes, 1 class names"):
        detections_to_kitti_objects(lidar[:2], ["Car"], scores[:2], calib134)


# -- issue 14 item 12: silent misreads of KITTI files, and property tests ------------------------------


def test_label_with_utf8_bom_reads_its_first_object(tmp_path, objects134, zhulf):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + (zhulf / "label_2" / "000134.txt").read_bytes())
    with pytest.warns(InputWarning, match=r"bom\.txt: label file starts with a UTF-8 byte order mark"):
        objects = read_label(path)
    assert objects == objects134 and objects[0].type == objects134[0].type


def test_calibration_with_bom_reads_and_a_second_p2_is_an_error(tmp_path, calib134):
    path = calib134.write(tmp_path / "c.txt")
    text = path.read_text()
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    with pytest.warns(InputWarning, match="byte order mark"):
        np.testing.assert_array_equal(Calibration.from_file(path).P2, calib134.P2)
    path.write_text(text + "P2: " + " ".join(["1"] * 12) + "\n")
    with pytest.raises(CalibrationError, match=r"c\.txt:8: P2 given a second time \(first on line 3\)"):
        Calibration.from_file(path)


def test_all_zero_p2_is_an_error(tmp_path, calib134):
    path = calib134.write(tmp_path / "c.txt")
    lines = path.read_text().splitlines()
    lines[2] = "P2: " + " ".join(["0"] * 12)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CalibrationError, match=r"c\.txt: Calibration\.P2: all zeros"):
        Calibration.from_file(path)


def test_any_bytes_give_objects_or_a_label_error(tmp_path, zhulf):
    seed = (zhulf / "label_2" / "000134.txt").read_bytes()

    @FUZZ
    @given(near(seed))
    def check(data):
        objects = reads_or_typed_error(read_label, tmp_path / "l.txt", data)
        assert objects is None or all(isinstance(o, KittiObject) for o in objects)

    check()


def test_any_bytes_give_a_calibration_or_a_calibration_error(tmp_path, zhulf):
    seed = (zhulf / "calib" / "000134.txt").read_bytes()

    @FUZZ
    @given(near(seed))
    def check(data):
        calib = reads_or_typed_error(Calibration.from_file, tmp_path / "c.txt", data)
        assert calib is None or np.isfinite(calib.P2).all()

    check()
