"""The Open3D viewer for real: a window on an Xvfb display, its pixels read back from a screenshot.

Skips when Xvfb (Debian's ``xvfb``; tools/install_test_extras_debian.sh installs it) or open3d
(``pip install open3d``, about 900 MB) is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pointpillars_trt.viz.open3d_view import height_colors
from pointpillars_trt.viz.style import CLASS_COLORS, class_color, hex_to_rgb
from tests.helpers import KITTI

from .test_bev import FRAMES, read_predictions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _open3d_imports() -> bool:
    """open3d is installed and its libraries load (in a subprocess: a failed import is not cached)."""
    proc = subprocess.run([sys.executable, "-c", "import open3d"], capture_output=True, timeout=120)
    return proc.returncode == 0


@pytest.fixture(scope="module")
def display():
    """A fresh Xvfb display (``:N``); the server is stopped afterwards."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (apt-get install xvfb, or bash tools/install_test_extras_debian.sh)")
    if not _open3d_imports():
        pytest.skip("open3d not installed or does not load (pip install open3d)")
    proc = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1600x900x24", "-nolisten", "tcp"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        number = proc.stdout.readline().strip()
        if not number.isdigit():
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from pointpillars_trt.io.pointcloud import load_points
    from pointpillars_trt.viz import show_open3d
    points = load_points(sys.argv[1])
    boxes = np.load(sys.argv[2])
    show_open3d(points, boxes, sys.argv[4].split(",") if sys.argv[4] else [], screenshot=sys.argv[3], size=(1280, 720))
""")


def screenshot(display, tmp_path, boxes, labels, name):
    """Run show_open3d in a subprocess on ``display``; returns the screenshot as float RGB ``[H, W, 3]``."""
    from matplotlib.image import imread

    np.save(tmp_path / f"{name}.npy", np.asarray(boxes, np.float32).reshape(-1, 7))
    out = tmp_path / f"{name}.png"
    env = {**os.environ, "DISPLAY": display, "PYTHONPATH": REPO, "XDG_RUNTIME_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(FRAMES / "velodyne_reduced" / "000000.bin"), str(tmp_path / f"{name}.npy"),
         str(out), ",".join(labels)], capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return imread(out)[..., :3]


def near(image: np.ndarray, rgb, tol: float = 24 / 255) -> int:
    return int((np.abs(image - np.asarray(rgb)) <= tol).all(axis=-1).sum())


@pytest.mark.slow
def test_window_shows_the_cloud_and_the_boxes(display, tmp_path):
    if not (FRAMES / "velodyne_reduced" / "000000.bin").is_file():
        pytest.skip(f"real KITTI frame not found under {KITTI}")
    boxes, labels, _ = read_predictions("000000")
    image = screenshot(display, tmp_path, boxes, labels, "with_boxes")
    assert image.shape == (720, 1280, 3)
    low, high = height_colors(np.array([-10.0, 10.0]))  # the two ends of the point colour map
    cloud_pixels = near(image, low) + near(image, high)
    assert cloud_pixels > 1000, cloud_pixels
    for name in set(labels):
        assert near(image, hex_to_rgb(class_color(name))) > 30, name

    # negative control: the cloud alone draws none of the box colours
    bare = screenshot(display, tmp_path, np.zeros((0, 7)), [], "bare")
    assert near(bare, low) + near(bare, high) > 1000
    for name in CLASS_COLORS:
        assert near(bare, hex_to_rgb(CLASS_COLORS[name])) == 0, name
