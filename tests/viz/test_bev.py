"""BEV pictures: real KITTI frame with CUDA-PointPillars boxes, picture orientation, box geometry."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers import KITTI
from pointpillars_trt.errors import BackendUnavailableError
from pointpillars_trt.io.pointcloud import load_points
from pointpillars_trt.viz import render_bev, show_open3d
from pointpillars_trt.viz.box_geometry import box_corners_3d, box_corners_bev, heading_segments
from pointpillars_trt.viz.open3d_view import box_line_vertices
from pointpillars_trt.viz.style import CLASS_COLORS, class_color, hex_to_rgb

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

FRAMES = KITTI / "cuda_pointpillars"
CLASS_NAMES = ("Car", "Pedestrian", "Cyclist")  # class_id order of pred_velo/*.txt
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_predictions(frame: str):
    """``pred_velo/<frame>.txt`` -> (boxes [M, 7], labels, scores [M])."""
    table = np.loadtxt(FRAMES / "pred_velo" / f"{frame}.txt", ndmin=2)
    return table[:, :7], [CLASS_NAMES[int(c)] for c in table[:, 7]], table[:, 8]


def color_mask(image: np.ndarray, color: str, tol: float = 4 / 255) -> np.ndarray:
    """``[H, W]`` bool: pixels whose RGB is within ``tol`` of ``color``."""
    return (np.abs(image[..., :3] - np.array(hex_to_rgb(color))) <= tol).all(axis=-1)


@pytest.fixture(scope="module")
def frame0():
    path = FRAMES / "velodyne_reduced" / "000000.bin"
    if not path.is_file() or not (FRAMES / "pred_velo" / "000000.txt").is_file():
        pytest.skip(f"real KITTI frame not found under {FRAMES}")
    return load_points(path), *read_predictions("000000")


def test_render_real_kitti_frame(tmp_path, frame0):
    points, boxes, labels, scores = frame0
    out = render_bev(points, boxes, labels, scores, tmp_path / "bev.png", title="KITTI 000000")
    assert out == tmp_path / "bev.png"
    assert out.read_bytes()[:8] == PNG_MAGIC
    image = imread(out)
    height, width = image.shape[:2]
    assert 400 <= width <= 4000 and 400 <= height <= 4000
    for name in set(labels):  # frame 0 holds Pedestrian and Cyclist predictions
        assert color_mask(image, class_color(name)).sum() > 30, name

    # negative control: the point colour map alone produces none of the box colours
    bare = imread(render_bev(points, np.zeros((0, 7)), [], None, tmp_path / "new" / "dir" / "bare.png"))  # folders made
    for name in CLASS_COLORS:
        assert color_mask(bare, CLASS_COLORS[name]).sum() == 0, name


def test_picture_orientation_forward_up_left_left(tmp_path):
    """A Car at x=35 (far forward), y=+15 (left) must be drawn in the top-left of the picture."""
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform([0, -20, -2], [40, 20, 0], (2000, 3)), np.ones((2000, 1))], 1)
    boxes = np.array([[35.0, 15.0, -1.0, 4.0, 1.8, 1.5, 0.3]])
    image = imread(render_bev(points.astype(np.float32), boxes, ["Car"], [0.9], tmp_path / "o.png",
                              xlim=(0, 40), ylim=(-20, 20)))  # fmt: skip
    rows, cols = np.nonzero(color_mask(image, class_color("Car")))
    assert len(rows) > 30
    assert rows.mean() < 0.35 * image.shape[0]  # forward = up
    assert cols.mean() < 0.35 * image.shape[1]  # left = left


def test_reference_boxes_intensity_colouring_and_no_scores(tmp_path, frame0):
    points, boxes, labels, scores = frame0
    cars = np.array([[10.0, 0.0, -1.0, 4.0, 1.7, 1.5, 0.0]])
    out = render_bev(points, boxes[:1], labels[:1], None, tmp_path / "ref.png", color_by="intensity",
                     reference_boxes=cars, reference_labels=["Car"], reference_name="OpenPCDet")  # fmt: skip
    assert color_mask(imread(out), class_color("Car")).sum() > 10
    render_bev(points, boxes, labels, scores, tmp_path / "ref2.png", reference_boxes=boxes)  # grey, dashed


def test_render_rejects_bad_inputs(tmp_path):
    points = np.zeros((5, 4), np.float32)
    box = np.zeros((1, 7))
    with pytest.raises(ValueError, match="1 labels for 0 boxes|0 labels for 1 boxes"):
        render_bev(points, box, [], None, tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 scores for 1 boxes"):
        render_bev(points, box, ["Car"], [0.1, 0.2], tmp_path / "x.png")
    with pytest.raises(ValueError, match="color_by"):
        render_bev(points, box, ["Car"], None, tmp_path / "x.png", color_by="range")
    with pytest.raises(ValueError, match=r"boxes: expected shape \[M, 7\]"):
        render_bev(points, np.zeros((1, 5)), ["Car"], None, tmp_path / "x.png")


def test_render_without_matplotlib_raises_backend_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(BackendUnavailableError, match="pip install matplotlib"):
        render_bev(np.zeros((1, 4), np.float32), np.zeros((0, 7)), [], None, tmp_path / "x.png")


def test_show_open3d_without_open3d_names_pip_command():
    try:
        import open3d  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailableError, match="pip install open3d"):
            show_open3d(np.zeros((1, 4), np.float32), np.zeros((0, 7)), [])
    else:
        pytest.skip("open3d is installed; the window itself is not tested")


def test_box_geometry():
    boxes = np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 4.0, 2.0, 2.0, np.pi / 2]])
    bev = box_corners_bev(boxes)
    np.testing.assert_allclose(bev[0], [[3, 3], [-1, 3], [-1, 1], [3, 1]])
    # yaw 90 deg: the length runs along +y, the front edge is at y = +2
    np.testing.assert_allclose(bev[1], [[-1, 2], [-1, -2], [1, -2], [1, 2]], atol=1e-12)
    np.testing.assert_allclose(heading_segments(boxes)[1], [[0, 0], [0, 2]], atol=1e-12)
    corners = box_corners_3d(boxes)
    assert corners.shape == (2, 8, 3)
    np.testing.assert_allclose(corners[0, :4, 2], 0.0)
    np.testing.assert_allclose(corners[0, 4:, 2], 1.0)
    vertices, lines = box_line_vertices(boxes)
    assert vertices.shape == (20, 3) and lines.shape == (26, 2) and lines.max() == 19
