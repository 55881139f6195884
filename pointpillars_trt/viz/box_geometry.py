"""Corner geometry of canonical LiDAR boxes, shared by the 2-D and 3-D viewers.

Boxes are ``[M, 7]`` ``(x, y, z_center, dx, dy, dz, yaw)`` in the LiDAR frame: ``dx`` is the
length along the heading, ``dy`` the width, ``dz`` the height, ``yaw`` counter-clockwise from +x
about +z.
"""

from __future__ import annotations

import numpy as np

# Edges of the 8 corners returned by box_corners_3d: bottom ring, top ring, verticals.
BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))


def as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """Any ``[M, >=7]`` array-like (or None/empty) -> ``float64 [M, 7]``; extra columns are dropped."""
    if boxes is None:
        return np.zeros((0, 7))
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 7))
    if array.ndim != 2 or array.shape[1] < 7:
        raise ValueError(f"{name}: expected shape [M, 7], got {list(array.shape)}")
    return array[:, :7]


def box_corners_bev(boxes) -> np.ndarray:
    """``[M, 7]`` boxes -> ``[M, 4, 2]`` BEV corners ``(x, y)``.

    Order: front-left, rear-left, rear-right, front-right ("front" = +heading, "left" = +90 deg),
    i.e. counter-clockwise seen from above, with corners 0 and 3 on the front edge.
    """
    boxes = as_boxes(boxes)
    cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    half_l, half_w = boxes[:, 3] / 2, boxes[:, 4] / 2
    local = np.stack(
        [np.stack([half_l, half_w], -1), np.stack([-half_l, half_w], -1),
         np.stack([-half_l, -half_w], -1), np.stack([half_l, -half_w], -1)], axis=1,
    )  # fmt: skip  [M, 4, 2] in the box frame
    rot_x = local[..., 0] * cos[:, None] - local[..., 1] * sin[:, None]
    rot_y = local[..., 0] * sin[:, None] + local[..., 1] * cos[:, None]
    return np.stack([rot_x, rot_y], axis=-1) + boxes[:, None, 0:2]


def box_corners_3d(boxes) -> np.ndarray:
    """``[M, 7]`` boxes -> ``[M, 8, 3]`` corners: the 4 BEV corners at the bottom, then at the top."""
    boxes = as_boxes(boxes)
    bev = box_corners_bev(boxes)
    bottom = (boxes[:, 2] - boxes[:, 5] / 2)[:, None, None].repeat(4, axis=1)
    top = (boxes[:, 2] + boxes[:, 5] / 2)[:, None, None].repeat(4, axis=1)
    return np.concatenate([np.concatenate([bev, bottom], -1), np.concatenate([bev, top], -1)], axis=1)


def heading_segments(boxes) -> np.ndarray:
    """``[M, 7]`` boxes -> ``[M, 2, 2]`` BEV segments from the centre to the middle of the front edge."""
    boxes = as_boxes(boxes)
    front = boxes[:, 0:2] + (boxes[:, 3:4] / 2) * np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6])], -1)
    return np.stack([boxes[:, 0:2], front], axis=1)
