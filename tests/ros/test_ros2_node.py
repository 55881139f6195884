"""The rclpy shell cannot run here (no rclpy); check what can be checked without it."""

import importlib.util
import subprocess
import sys

import pytest

from pointpillars_trt.ros.processor import NodeParams

from .conftest import REPO


def test_module_imports_without_rclpy():
    from pointpillars_trt.ros import ros2_node

    assert ros2_node.private_topic("~latency_ms") == "~/latency_ms"
    assert ros2_node.private_topic("~/latency_ms") == "~/latency_ms"
    assert ros2_node.private_topic("/detections") == "/detections"


def test_tool_flags_become_params():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import ros_node
    finally:
        sys.path.remove(str(REPO / "tools"))
    args, rest = ros_node.parse_args([
        "--ros", "2", "--engine-dir", "engines", "--transform", "1", "0", "2", "0", "0", "0.5", "--frame-id", "base",
        "--score-thresh", "0.4", "--latency-topic", "/lat", "--ros-args", "-p", "warmup:=0",
    ])
    p = ros_node.params_from_args(args).check()
    assert rest == ["--ros-args", "-p", "warmup:=0"]
    assert p == NodeParams(engine_dir="engines", transform="1.0 0.0 2.0 0.0 0.0 0.5", frame_id="base", score_threshold=0.4, latency="/lat")
    assert p.transform_matrix()[2, 3] == 2.0


@pytest.mark.skipif(importlib.util.find_spec("rclpy") is not None, reason="rclpy is importable here")
def test_ros2_without_rclpy_exits_2_and_says_why():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "ros_node.py"), "--ros", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "cannot import rclpy (ROS 2)" in out.stderr and "setup.bash" in out.stderr
