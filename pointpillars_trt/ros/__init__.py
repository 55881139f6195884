"""ROS integration: PointCloud2 decoding, marker / box messages, detector nodes, bag replay.

The core (``cloud``, ``markers``, ``transform``, ``processor``, ``node_core``, ``messages``) has no
ROS import: messages are read by attribute names and built through a message factory
(``factories``: rosbags, genpy/rospy, rclpy). The node shells are ``ros1_node`` (rospy) and
``ros2_node`` (rclpy); ``env.import_ros`` finds a system-wide ROS from a virtualenv; ``bag``
replays rosbag1 / rosbag2 / MCAP files through the detector. See docs/ROS.md.
"""

from .cloud import CloudData, Header, PointFieldData, Stamp, cloud_from_msg, cloud_to_points, points_to_cloud
from .markers import BoxData, MarkerData, detections_to_boxes, detections_to_markers
from .processor import FrameProcessor, FrameResult, NodeParams
from .transform import apply_transform, parse_transform

__all__ = [
    "BoxData",
    "CloudData",
    "FrameProcessor",
    "FrameResult",
    "Header",
    "MarkerData",
    "NodeParams",
    "PointFieldData",
    "Stamp",
    "apply_transform",
    "cloud_from_msg",
    "cloud_to_points",
    "detections_to_boxes",
    "detections_to_markers",
    "parse_transform",
    "points_to_cloud",
]
