"""Detections of one frame as plain data: RViz markers and a box list (no ROS imports).

:func:`detections_to_markers` gives what a ``visualization_msgs/MarkerArray`` holds:

* first a ``DELETEALL`` marker (clears the previous frame's boxes in RViz / Foxglove),
* per box a ``LINE_LIST`` (namespace ``<ns>/boxes``, id = box index) with the 12 edges of the box
  plus one heading segment from the box centre to the centre of its front face (+x of the box),
* per box a ``TEXT_VIEW_FACING`` (namespace ``<ns>/labels``, same id) above the box:
  ``"<class> <score>"``.

:func:`detections_to_boxes` gives one :class:`BoxData` per box for the box-array message.
Boxes are canonical ``[N, 7]`` ``(x, y, z centre, dx, dy, dz, yaw)`` (yaw CCW about +z).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..io.kitti import box_corners_3d

# visualization_msgs/Marker constants (identical in ROS 1 and ROS 2)
LINE_LIST = 5
TEXT_VIEW_FACING = 9
ADD = 0
DELETEALL = 3

# corner order of io.kitti.box_corners_3d: bottom (+,+) (+,-) (-,-) (-,+), then top in the same order
BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]], dtype=np.int64
)

# one colour per class index (cycled): RGB in [0, 1]
PALETTE = (
    (0.10, 0.85, 0.25),
    (1.00, 0.55, 0.05),
    (0.20, 0.55, 1.00),
    (0.95, 0.20, 0.60),
    (0.95, 0.90, 0.10),
    (0.55, 0.30, 0.95),
    (0.10, 0.90, 0.90),
    (0.85, 0.85, 0.85),
)


NO_POINTS = np.zeros((0, 3))  # the points of a marker that has none: one read-only array for all of them
NO_POINTS.flags.writeable = False


@dataclass(frozen=True)
class MarkerData:
    """One ``visualization_msgs/Marker``; ``points`` ``float64 [K, 3]``, ``color`` RGBA in [0, 1]."""

    ns: str
    id: int
    type: int
    action: int = ADD
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    points: np.ndarray = field(default_factory=lambda: NO_POINTS, repr=False)
    text: str = ""
    lifetime_s: float = 0.0


@dataclass(frozen=True)
class BoxData:
    """One detected box: centre, size ``(dx, dy, dz)``, yaw (and the same as a quaternion
    ``(x, y, z, w)``), class index and name, score."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float
    orientation: tuple[float, float, float, float]
    label: int
    class_name: str
    score: float

    @property
    def box7(self) -> np.ndarray:
        return np.array([*self.center, *self.size, self.yaw], dtype=np.float64)


def yaw_to_quaternion(yaw: np.ndarray) -> np.ndarray:
    """Yaw ``[N]`` (about +z) -> quaternions ``[N, 4]`` ``(x, y, z, w)``."""
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    q = np.zeros((yaw.size, 4))
    q[:, 2] = np.sin(yaw / 2.0)
    q[:, 3] = np.cos(yaw / 2.0)
    return q


def quaternion_to_yaw(q: np.ndarray) -> np.ndarray:
    """Quaternions ``[N, 4]`` ``(x, y, z, w)`` -> yaw ``[N]`` (rotation about +z, in ``(-pi, pi]``)."""
    q = np.asarray(q, dtype=np.float64).reshape(-1, 4)
    x, y, z, w = q.T
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def box_line_segments(boxes: np.ndarray) -> np.ndarray:
    """Boxes ``[N, 7]`` -> line-list points ``float64 [N, 26, 3]``: the 12 edges (24 points), then the
    heading segment from the box centre to the centre of its front face."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    corners = box_corners_3d(boxes)  # [N, 8, 3]
    edges = corners[:, BOX_EDGES.reshape(-1), :]  # [N, 24, 3]
    front = corners[:, [0, 1, 4, 5], :].mean(axis=1)  # +x face
    heading = np.stack([boxes[:, 0:3], front], axis=1)  # [N, 2, 3]
    return np.concatenate([edges, heading], axis=1)


def class_color(label: int, alpha: float = 1.0) -> tuple[float, float, float, float]:
    r, g, b = PALETTE[int(label) % len(PALETTE)]
    return (r, g, b, alpha)


def detections_to_markers(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    ns: str = "pointpillars",
    line_width: float = 0.05,
    text_size: float = 0.5,
    lifetime_s: float = 0.0,
) -> list[MarkerData]:
    """Boxes ``[N, 7]``, scores ``[N]``, class indices ``[N]`` into ``class_names`` -> ``1 + 2N`` markers
    (``DELETEALL``, then ``N`` line lists, then ``N`` texts; see the module docstring)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    out = [MarkerData(ns=ns, id=0, type=LINE_LIST, action=DELETEALL)]
    segments = box_line_segments(boxes)
    # Python numbers once per frame (tolist), not numpy scalars per box: ~7x faster for 50 boxes
    rows, score_list, label_list = boxes.tolist(), scores.tolist(), labels.tolist()
    colors = [class_color(label) for label in label_list]
    box_ns, label_ns, width, text_scale = f"{ns}/boxes", f"{ns}/labels", (line_width, 0.0, 0.0), (0.0, 0.0, text_size)
    lines = [MarkerData(ns=box_ns, id=i, type=LINE_LIST, scale=width, color=colors[i], points=segments[i], lifetime_s=lifetime_s)
             for i in range(len(rows))]
    texts = [MarkerData(ns=label_ns, id=i, type=TEXT_VIEW_FACING, position=(r[0], r[1], r[2] + r[5] / 2.0 + text_size),
                        scale=text_scale, color=colors[i], text=f"{class_names[label]} {score:.2f}", lifetime_s=lifetime_s)
             for i, (r, score, label) in enumerate(zip(rows, score_list, label_list))]
    return out + lines + texts


def detections_to_boxes(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> list[BoxData]:
    """Boxes ``[N, 7]``, scores ``[N]``, class indices ``[N]`` -> ``N`` :class:`BoxData`, in order."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    quats = yaw_to_quaternion(boxes[:, 6]).tolist()
    labels = np.asarray(labels).reshape(-1).tolist()
    return [
        BoxData(center=(r[0], r[1], r[2]), size=(r[3], r[4], r[5]), yaw=r[6], orientation=tuple(q), label=int(label),
                class_name=str(class_names[label]), score=score)
        for r, q, label, score in zip(boxes.tolist(), quats, labels, np.asarray(scores, dtype=np.float64).reshape(-1).tolist())
    ]
