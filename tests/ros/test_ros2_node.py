"""The rclpy shell cannot run here (no rclpy); check what can be checked without it."""

import array
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


class _Descriptor:
    """Stand-in for rcl_interfaces.msg.ParameterDescriptor (rclpy is not installed here)."""

    def __init__(self, dynamic_typing=False):
        self.dynamic_typing = dynamic_typing


class _Node:
    """Stand-in for an rclpy Node: records declarations, returns the command-line overrides as rclpy
    parses them (``-p intensity_scale:=0.0039`` is a double, ``transform:="[...]"`` a double array)."""

    def __init__(self, overrides):
        self.overrides, self.declared = overrides, {}

    def declare_parameter(self, name, value, descriptor):
        self.declared[name] = (value, descriptor)
        return type("Parameter", (), {"value": self.overrides.get(name, value)})()


def test_parameters_are_declared_dynamically_typed_and_coerced():
    from pointpillars_trt.ros.ros2_node import read_parameters

    node = _Node({"intensity_scale": 0.0039, "transform": array.array("d", [1.2, 0.0, 1.8, 0.0, 0.0, 0.0]),
                  "score_threshold": 1, "frame_id": "base"})  # fmt: skip
    p = read_parameters(node, NodeParams(), _Descriptor).check()
    assert set(node.declared) == set(NodeParams.names())
    assert all(d.dynamic_typing for _, d in node.declared.values())
    assert node.declared["intensity_scale"][0] == "1.0"  # the default is the flag's value
    assert (p.intensity_scale, p.transform, p.score_threshold) == ("0.0039", "1.2 0.0 1.8 0.0 0.0 0.0", 1.0)
    assert p.transform_matrix()[0, 3] == pytest.approx(1.2)


def test_a_parameter_of_the_wrong_type_is_a_config_error_naming_it():
    from pointpillars_trt.errors import ConfigError
    from pointpillars_trt.ros.ros2_node import read_parameters

    with pytest.raises(ConfigError, match=r"parameter 'warmup': expected an integer, got 'two' \(str\)"):
        read_parameters(_Node({"warmup": "two"}), NodeParams(), _Descriptor)
