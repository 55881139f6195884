"""Message definitions the package brings along, as ``.msg`` text.

* ``pointpillars_trt_msgs/BoxArray`` (ROS 1): the box array the ROS 1 node publishes when no
  detection-message package is installed. It is turned into Python classes at run time with
  ``genpy`` (:func:`pointpillars_trt.ros.factories.ros1_box_array_classes`) and written into
  rosbag1 files with its full definition, so any reader can decode it without the package.
* ``vision_msgs`` 4.x (ROS 2 Humble and later): ``Detection3DArray`` and the types it uses, for
  writing rosbag2 / MCAP files with ``rosbags`` (whose bundled type stores lack vision_msgs).
"""

from __future__ import annotations

SEPARATOR = "\n" + "=" * 80 + "\n"

BOX_ARRAY_TYPE = "pointpillars_trt_msgs/msg/BoxArray"
BOX3D_TYPE = "pointpillars_trt_msgs/msg/Box3D"

BOX_ARRAY_MSG = """\
# The boxes detected in one point cloud, best score first.
# header: the stamp of the input cloud and the frame the boxes are expressed in.
Header header
pointpillars_trt_msgs/Box3D[] boxes
"""

BOX3D_MSG = """\
# One detected box in the frame of the BoxArray header (PointPillars' canonical box):
# center: box centre; size: x = length along the heading, y = width, z = height (metres);
# yaw: heading, counter-clockwise about +z from +x (radians); orientation: the same as a quaternion.
geometry_msgs/Point center
geometry_msgs/Vector3 size
float64 yaw
geometry_msgs/Quaternion orientation
int32 label
string class_name
float32 score
"""

_ROS1_DEPS = {
    "std_msgs/Header": "uint32 seq\ntime stamp\nstring frame_id\n",
    "geometry_msgs/Point": "float64 x\nfloat64 y\nfloat64 z\n",
    "geometry_msgs/Vector3": "float64 x\nfloat64 y\nfloat64 z\n",
    "geometry_msgs/Quaternion": "float64 x\nfloat64 y\nfloat64 z\nfloat64 w\n",
}


def box_array_msg_cat() -> str:
    """The full ``BoxArray`` definition with its dependencies, as ``gendeps --cat`` / rosbag1 store it."""
    parts = [BOX_ARRAY_MSG, f"MSG: pointpillars_trt_msgs/Box3D\n{BOX3D_MSG}"]
    parts += [f"MSG: {name}\n{text}" for name, text in _ROS1_DEPS.items()]
    return SEPARATOR.join(parts)


VISION_MSGS_ROS2 = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox3D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
}


def register_types(typestore, ros1: bool) -> None:
    """Add the box types to a ``rosbags`` type store: ``BoxArray``/``Box3D`` for ROS 1 stores,
    ``vision_msgs`` 4.x for ROS 2 stores. Types the store has already are left alone."""
    from rosbags.typesys import get_types_from_msg

    if ros1:
        found = get_types_from_msg(box_array_msg_cat(), BOX_ARRAY_TYPE)
        wanted = {k: v for k, v in found.items() if k.startswith("pointpillars_trt_msgs/") and k not in typestore.fielddefs}
    else:
        wanted = {}
        for name, text in VISION_MSGS_ROS2.items():
            if name not in typestore.fielddefs:
                wanted.update(get_types_from_msg(text, name))
    if wanted:
        typestore.register(wanted)
