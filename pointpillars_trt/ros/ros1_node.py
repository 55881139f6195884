"""The ROS 1 (rospy) node: ``sensor_msgs/PointCloud2`` in, markers + boxes + latency out.

A thin shell over :class:`~pointpillars_trt.ros.node_core.NodeCore`:

* subscribes ``input`` with queue size 1 (an old cloud is dropped rather than queued) and a
  large TCP buffer (rospy's default buffer adds latency for big messages);
* publishes ``markers`` (``visualization_msgs/MarkerArray``), ``boxes`` (``vision_msgs/
  Detection3DArray`` when installed, else ``pointpillars_trt_msgs/BoxArray`` generated at run time)
  and ``~latency_ms`` (``std_msgs/Float32``, callback entry to last publish), all stamped with
  the input's stamp; markers and boxes are built only while their topic has a subscriber (the
  latency always);
* runs the detector's warm-up before it subscribes, so the first cloud is not slow;
* logs each frame's latency, and each bad cloud as an error - the node keeps running;
* shuts down cleanly on SIGINT / ``rosnode kill`` (exit code 0).

ROS parameters ``~<name>`` (names of :class:`~pointpillars_trt.ros.processor.NodeParams`)
override the command-line flags.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..errors import PointPillarsError
from .env import RosMasterError, import_ros
from .factories import GenpyFactory
from .node_core import NodeCore, Publishers, choose_box_type, describe_model, warm_up
from .processor import NodeParams, build_detector

BUFF_SIZE = 1 << 26


def start(rospy: Any, params: NodeParams) -> NodeCore:
    """Build the detector, warm it up, then create the publishers and the subscriber."""
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Float32
    from visualization_msgs.msg import MarkerArray

    info, warn, error = rospy.loginfo, rospy.logwarn, rospy.logerr
    params = params.check()
    factory = GenpyFactory()
    box_type = choose_box_type(factory, params.box_msg)
    info(f"pointpillars: loading the model ({params.ckpt or 'demo/random weights'}, backend {params.backend})")
    detector = build_detector(params)
    describe_model(detector, info, warn)
    warm_up(detector, params.warmup, info)
    pub_markers = rospy.Publisher(params.markers, MarkerArray, queue_size=1)
    pub_boxes = rospy.Publisher(params.boxes, factory.cls(box_type), queue_size=1) if box_type else None
    pub_latency = rospy.Publisher(params.latency, Float32, queue_size=1)
    core = NodeCore(
        detector, params, factory,
        Publishers(pub_markers.publish, pub_latency.publish, pub_boxes.publish if pub_boxes else None,
                   markers_wanted=lambda: pub_markers.get_num_connections() > 0,
                   boxes_wanted=lambda: pub_boxes is not None and pub_boxes.get_num_connections() > 0),
        box_type, info, warn, error,
    )
    sub = rospy.Subscriber(params.input, PointCloud2, core.handle, queue_size=1, buff_size=BUFF_SIZE, tcp_nodelay=True)
    info(
        f"pointpillars: listening on {sub.resolved_name}; publishing {pub_markers.resolved_name} (MarkerArray), "
        f"{pub_boxes.resolved_name if pub_boxes else '-'} ({box_type or 'no box message'}), "
        f"{pub_latency.resolved_name} (Float32)"
    )

    def shutdown() -> None:
        sub.unregister()
        core.close()

    rospy.on_shutdown(shutdown)
    return core


def wait_for_master(rospy: Any, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for the master at ``ROS_MASTER_URI`` (raises :class:`RosMasterError`)."""
    import rosgraph

    deadline = time.monotonic() + timeout_s
    uri = rosgraph.get_master_uri()
    said = False
    while not rosgraph.is_master_online(uri):
        if time.monotonic() >= deadline:
            raise RosMasterError(
                f"no ROS master answers at {uri} after {timeout_s:.0f} s (ROS_MASTER_URI="
                f"{os.environ.get('ROS_MASTER_URI', '<unset>')}); start roscore or set ROS_MASTER_URI / ROS_IP"
            )
        if not said:
            print(f"pointpillars: waiting for the ROS master at {uri} ...", flush=True)
            said = True
        time.sleep(0.5)


def run(params: NodeParams, argv: list[str], node_name: str = "pointpillars", master_timeout_s: float = 30.0) -> int:
    """Start the node and spin until shutdown; returns the exit code (0)."""
    rospy = import_ros(1)
    wait_for_master(rospy, master_timeout_s)
    rospy.init_node(node_name, argv=argv)
    try:
        params = params.with_overrides(lambda name, default: rospy.get_param("~" + name, default))
        start(rospy, params)
    except PointPillarsError as exc:
        rospy.signal_shutdown(str(exc))
        raise
    rospy.spin()
    return 0
