"""Finding a system-wide ROS from the venv: sys.path order, and what it says when it fails."""

import importlib.util
import subprocess
import sys

import pytest

from pointpillars_trt.ros.env import RosUnavailableError, candidate_paths, import_ros


def test_candidates_follow_the_environment(tmp_path, monkeypatch):
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = tmp_path / "lib" / pyver / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    assert candidate_paths(2)[0] == str(site)
    ros1 = tmp_path / "noetic" / "lib" / "python3" / "dist-packages"
    ros1.mkdir(parents=True)
    monkeypatch.setenv("CMAKE_PREFIX_PATH", str(tmp_path / "noetic"))
    assert candidate_paths(1)[0] == str(ros1)


@pytest.mark.skipif(importlib.util.find_spec("rclpy") is not None, reason="rclpy is importable here")
def test_missing_rclpy_says_what_it_tried():
    before = list(sys.path)
    with pytest.raises(RosUnavailableError) as info:
        import_ros(2)
    msg = str(info.value)
    assert "cannot import rclpy (ROS 2)" in msg and "source /opt/ros/<distro>/setup.bash" in msg
    assert "plain import failed" in msg and "failed again" in msg
    assert sys.path == before  # the candidates it appended are removed again
    assert isinstance(info.value, ImportError)


def test_rospy_from_the_venv_keeps_the_venv_numpy():
    """A fresh venv interpreter (no PYTHONPATH) finds Debian's rospy; NumPy stays the venv's."""
    code = (
        "import sys; from pointpillars_trt.ros.env import import_ros, RosUnavailableError\n"
        "try:\n    rospy = import_ros(1)\nexcept RosUnavailableError as e:\n    print('SKIP', e); sys.exit(0)\n"
        "import numpy, sensor_msgs.msg\n"
        "print(rospy.__file__); print(numpy.__file__); print(sys.prefix)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    if lines[0].startswith("SKIP"):
        pytest.skip(lines[0])
    rospy_file, numpy_file, prefix = lines
    assert not rospy_file.startswith(prefix)
    assert numpy_file.startswith(prefix), f"numpy came from {numpy_file}, not the venv {prefix}"
