"""Plain data <-> ROS messages of any flavour, through a :class:`~pointpillars_trt.ros.factories.MessageFactory`.

Builders (plain data -> message): :func:`header_msg`, :func:`cloud_msg`, :func:`marker_array_msg`,
:func:`detection3d_array_msg` (``vision_msgs/Detection3DArray``, any of its layouts: 4.x with
``hypothesis.class_id``, 2.x/3.x with a string ``id``, ROS 1 with an integer ``id``),
:func:`box_array_msg` (``pointpillars_trt_msgs/BoxArray``) and :func:`float32_msg`.

Readers (message -> plain data, duck-typed): :func:`boxes_from_msg` (either box-array type) and
:func:`markers_from_msg`. Cloud reading is :func:`pointpillars_trt.ros.cloud.cloud_from_msg`.

Every number is passed as a Python ``int``/``float`` (rclpy's setters reject NumPy scalars).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .cloud import CloudData, Header, header_from_msg
from .factories import MessageFactory
from .markers import BoxData, MarkerData, quaternion_to_yaw
from .msgdefs import BOX_ARRAY_TYPE

DETECTION3D_ARRAY_TYPE = "vision_msgs/msg/Detection3DArray"
MARKER_ARRAY_TYPE = "visualization_msgs/msg/MarkerArray"
POINTCLOUD2_TYPE = "sensor_msgs/msg/PointCloud2"
FLOAT32_TYPE = "std_msgs/msg/Float32"


def header_msg(f: MessageFactory, header: Header) -> Any:
    fields: dict[str, Any] = {"stamp": f.time(header.stamp), "frame_id": str(header.frame_id)}
    if "seq" in f.field_types("std_msgs/msg/Header"):
        fields["seq"] = 0
    return f.new("std_msgs/msg/Header", **fields)


def _point(f: MessageFactory, xyz: Sequence[float]) -> Any:
    return f.new("geometry_msgs/msg/Point", x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _vector3(f: MessageFactory, xyz: Sequence[float]) -> Any:
    return f.new("geometry_msgs/msg/Vector3", x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _quaternion(f: MessageFactory, q: Sequence[float]) -> Any:
    return f.new("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def _pose(f: MessageFactory, position: Sequence[float], orientation: Sequence[float]) -> Any:
    return f.new("geometry_msgs/msg/Pose", position=_point(f, position), orientation=_quaternion(f, orientation))


def cloud_msg(f: MessageFactory, cloud: CloudData) -> Any:
    """:class:`CloudData` -> ``sensor_msgs/PointCloud2`` (the raw bytes are copied once)."""
    fields = [
        f.new("sensor_msgs/msg/PointField", name=p.name, offset=int(p.offset), datatype=int(p.datatype), count=int(p.count))
        for p in cloud.fields
    ]
    data = cloud.data.tobytes() if isinstance(cloud.data, np.ndarray) else bytes(cloud.data)
    return f.new(
        POINTCLOUD2_TYPE,
        header=header_msg(f, cloud.header),
        height=int(cloud.height),
        width=int(cloud.width),
        fields=fields,
        is_bigendian=bool(cloud.is_bigendian),
        point_step=int(cloud.point_step),
        row_step=int(cloud.row_step),
        data=f.uint8_array(data),
        is_dense=bool(cloud.is_dense),
    )


def marker_msg(f: MessageFactory, header: Any, m: MarkerData) -> Any:
    """One marker; ``header`` a header message (:func:`header_msg`), shared, not copied."""
    return f.new(
        "visualization_msgs/msg/Marker",
        header=header,
        ns=m.ns,
        id=int(m.id),
        type=int(m.type),
        action=int(m.action),
        pose=_pose(f, m.position, m.orientation),
        scale=_vector3(f, m.scale),
        color=f.new("std_msgs/msg/ColorRGBA", r=float(m.color[0]), g=float(m.color[1]), b=float(m.color[2]), a=float(m.color[3])),
        lifetime=f.duration(m.lifetime_s),
        points=f.points(np.asarray(m.points, dtype=np.float64).reshape(-1, 3).tolist()),
        text=m.text,
    )


def marker_array_msg(f: MessageFactory, header: Header, markers: Sequence[MarkerData]) -> Any:
    """Markers of one frame -> ``visualization_msgs/MarkerArray``; every marker carries ``header`` (one
    header message, shared: the array is built, published and dropped)."""
    h = header_msg(f, header)
    return f.new(MARKER_ARRAY_TYPE, markers=[marker_msg(f, h, m) for m in markers])


def _hypothesis(f: MessageFactory, box: BoxData) -> Any:
    """``ObjectHypothesisWithPose`` in whichever layout the installed vision_msgs has."""
    types = f.field_types("vision_msgs/msg/ObjectHypothesisWithPose")
    pose = f.new("geometry_msgs/msg/PoseWithCovariance", pose=_pose(f, box.center, box.orientation))
    if "hypothesis" in types:  # vision_msgs >= 3 (ROS 2 Galactic and later)
        hyp = f.new("vision_msgs/msg/ObjectHypothesis", class_id=box.class_name, score=float(box.score))
        return f.new("vision_msgs/msg/ObjectHypothesisWithPose", hypothesis=hyp, pose=pose)
    ident: Any = box.class_name if types.get("id") == "string" else int(box.label)
    return f.new("vision_msgs/msg/ObjectHypothesisWithPose", id=ident, score=float(box.score), pose=pose)


def detection3d_array_msg(f: MessageFactory, header: Header, boxes: Sequence[BoxData]) -> Any:
    """Boxes -> ``vision_msgs/Detection3DArray``: one ``Detection3D`` per box with one result
    (class name or index, score), ``bbox`` centre pose and size ``(dx, dy, dz)``."""
    h = header_msg(f, header)
    dets = []
    for box in boxes:
        bbox = f.new("vision_msgs/msg/BoundingBox3D", center=_pose(f, box.center, box.orientation), size=_vector3(f, box.size))
        dets.append(f.new("vision_msgs/msg/Detection3D", header=header_msg(f, header), results=[_hypothesis(f, box)], bbox=bbox))
    return f.new(DETECTION3D_ARRAY_TYPE, header=h, detections=dets)


def box_array_msg(f: MessageFactory, header: Header, boxes: Sequence[BoxData]) -> Any:
    """Boxes -> ``pointpillars_trt_msgs/BoxArray`` (see :mod:`~pointpillars_trt.ros.msgdefs`)."""
    items = [
        f.new(
            "pointpillars_trt_msgs/msg/Box3D",
            center=_point(f, b.center),
            size=_vector3(f, b.size),
            yaw=float(b.yaw),
            orientation=_quaternion(f, b.orientation),
            label=int(b.label),
            class_name=b.class_name,
            score=float(b.score),
        )
        for b in boxes
    ]
    return f.new(BOX_ARRAY_TYPE, header=header_msg(f, header), boxes=items)


def float32_msg(f: MessageFactory, value: float) -> Any:
    return f.new(FLOAT32_TYPE, data=float(value))


# --------------------------------------------------------------------------------------------------
# readers


def boxes_from_msg(msg: Any) -> tuple[Header, np.ndarray, np.ndarray, list[str]]:
    """A ``BoxArray`` or ``Detection3DArray`` -> ``(header, boxes [N, 7] float64, scores [N], names)``.

    For ``Detection3DArray`` the yaw comes from the bbox orientation, the class and score from
    the first result (the class as a string: ``class_id``, or ``id`` converted with ``str``).
    """
    header = header_from_msg(msg.header)
    rows, scores, names = [], [], []
    if hasattr(msg, "boxes"):
        for b in msg.boxes:
            rows.append([b.center.x, b.center.y, b.center.z, b.size.x, b.size.y, b.size.z, b.yaw])
            scores.append(b.score)
            names.append(str(b.class_name))
    else:
        for d in msg.detections:
            c, o, s = d.bbox.center.position, d.bbox.center.orientation, d.bbox.size
            yaw = float(quaternion_to_yaw([o.x, o.y, o.z, o.w])[0])
            rows.append([c.x, c.y, c.z, s.x, s.y, s.z, yaw])
            r = d.results[0] if len(d.results) else None
            hyp = getattr(r, "hypothesis", r)
            scores.append(getattr(hyp, "score", np.nan))
            names.append(str(getattr(hyp, "class_id", getattr(hyp, "id", ""))))
    boxes = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    return header, boxes, np.asarray(scores, dtype=np.float64), names


def markers_from_msg(msg: Any) -> tuple[list[Header], list[MarkerData]]:
    """A ``MarkerArray`` -> (one header per marker, the markers as :class:`MarkerData`)."""
    headers, out = [], []
    for m in msg.markers:
        headers.append(header_from_msg(m.header))
        p, q = m.pose.position, m.pose.orientation
        points = np.array([[pt.x, pt.y, pt.z] for pt in m.points], dtype=np.float64).reshape(-1, 3)
        out.append(
            MarkerData(
                ns=str(m.ns), id=int(m.id), type=int(m.type), action=int(m.action),
                position=(p.x, p.y, p.z), orientation=(q.x, q.y, q.z, q.w),
                scale=(m.scale.x, m.scale.y, m.scale.z), color=(m.color.r, m.color.g, m.color.b, m.color.a),
                points=points, text=str(m.text),
            )
        )
    return headers, out
