"""The ROS 2 (rclpy) node: the same as the ROS 1 node, as a thin shell over
:class:`~pointpillars_trt.ros.node_core.NodeCore`.

NOT RUN in this project's CI (there is no rclpy there); the per-message logic it calls
(``NodeCore``) and the ROS 2 message conversions are tested with CDR-serialized messages
through ``rosbags``.

* subscription: ``input`` with a sensor-data QoS of depth 1 (best effort, keep last 1: it
  matches reliable and best-effort publishers and never queues old clouds);
* publishers (reliable, depth 1): ``markers`` (``visualization_msgs/MarkerArray``), ``boxes``
  (``vision_msgs/Detection3DArray``, only when vision_msgs is installed) and ``~/latency_ms``
  (``std_msgs/Float32``); markers and boxes are built only while their topic has a subscriber
  (``Publisher.get_subscription_count``, in rclpy since Dashing);
* parameters: every :class:`~pointpillars_trt.ros.processor.NodeParams` name is declared with
  the command-line value as its default (``--ros-args -p name:=value`` or a launch file override it)
  and ``ParameterDescriptor(dynamic_typing=True)``: rclpy otherwise fixes each parameter's type
  from its default, so ``-p intensity_scale:=0.0039`` (declared from ``"1.0"``) or
  ``-p score_threshold:=1`` would raise ``InvalidParameterTypeException``. Values are coerced
  as on ROS 1 (``NodeParams.with_overrides``); a value of the wrong type is a ConfigError naming
  the parameter and the type it takes (``tools/ros_node.py`` exits 2 with it);
* clean shutdown on Ctrl-C (exit code 0).
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import PointPillarsError
from .env import import_ros
from .factories import RclpyFactory
from .node_core import NodeCore, Publishers, choose_box_type, describe_model, warm_up
from .processor import NodeParams, build_detector


def private_topic(name: str) -> str:
    """ROS 1's ``~name`` -> ROS 2's ``~/name``."""
    return "~/" + name[1:].lstrip("/") if name.startswith("~") else name


def read_parameters(node: Any, params: NodeParams, descriptor: Callable[..., Any]) -> NodeParams:
    """Declare every NodeParams name on ``node`` (an rclpy Node) with its current value as default,
    dynamically typed (``descriptor`` is ``rcl_interfaces.msg.ParameterDescriptor``), and return the
    params with the declared values (overrides from the command line or a launch file) coerced.

    Raises:
        ConfigError: a value of the wrong type, naming the parameter.
    """
    def declared(name: str, default: Any) -> Any:
        return node.declare_parameter(name, default, descriptor(dynamic_typing=True)).value

    return params.with_overrides(declared)


def start(node: Any, params: NodeParams) -> NodeCore:
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Float32
    from visualization_msgs.msg import MarkerArray

    logger = node.get_logger()
    info, warn, error = logger.info, logger.warning, logger.error
    params = params.check()
    factory = RclpyFactory()
    box_type = choose_box_type(factory, params.box_msg)
    if box_type is None and params.box_msg == "auto":
        warn("pointpillars: vision_msgs is not installed: publishing markers only (apt install ros-$ROS_DISTRO-vision-msgs)")
    detector = build_detector(params)
    describe_model(detector, info, warn)
    warm_up(detector, params.warmup, info)
    out_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
    in_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
    pub_markers = node.create_publisher(MarkerArray, params.markers, out_qos)
    pub_boxes = node.create_publisher(factory.cls(box_type), params.boxes, out_qos) if box_type else None
    pub_latency = node.create_publisher(Float32, private_topic(params.latency), out_qos)
    core = NodeCore(
        detector, params, factory,
        Publishers(pub_markers.publish, pub_latency.publish, pub_boxes.publish if pub_boxes else None,
                   markers_wanted=lambda: pub_markers.get_subscription_count() > 0,
                   boxes_wanted=lambda: pub_boxes is not None and pub_boxes.get_subscription_count() > 0),
        box_type, info, warn, error,
    )
    node.create_subscription(PointCloud2, params.input, core.handle, in_qos)
    info(f"pointpillars: listening on {params.input}; publishing {params.markers}, {params.boxes if box_type else '-'}")
    return core


def run(params: NodeParams, argv: list[str], node_name: str = "pointpillars") -> int:
    """Start the node and spin until Ctrl-C; returns the exit code (0)."""
    rclpy = import_ros(2)
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.node import Node

    rclpy.init(args=argv)
    node = Node(node_name)
    core = None
    try:
        params = read_parameters(node, params, ParameterDescriptor)
        core = start(node, params)
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    except PointPillarsError:
        raise
    except Exception as exc:  # rclpy's ExternalShutdownException (Humble+) ends the spin on shutdown
        if type(exc).__name__ != "ExternalShutdownException":
            raise
    finally:
        if core is not None:
            core.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
