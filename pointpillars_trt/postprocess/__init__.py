"""Anchors, box decoding and rotated NMS (CPU reference implementations)."""

from .anchors import anchor_positions, generate_anchors
from .box_coder import apply_direction, decode_boxes, encode_boxes, limit_period, to_canonical
from .decode import PostProcessor, RawDetections, flatten_head
from .nms import iou_bev, nms_bev

__all__ = [
    "PostProcessor", "RawDetections", "anchor_positions", "apply_direction", "decode_boxes", "encode_boxes",
    "flatten_head", "generate_anchors", "iou_bev", "limit_period", "nms_bev", "to_canonical",
]
