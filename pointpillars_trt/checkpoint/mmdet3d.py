"""mmdetection3d 1.x ``hv_pointpillars_secfpn`` (KITTI 3-class).

* Container: ``{"state_dict": ..., "meta": {...}}``; ``meta`` may name the classes
  (``dataset_meta.classes`` in 1.x, ``CLASSES`` in 0.x), which then override the default order.
* PFN in *legacy* mode (mmdet3d's default, used by the published KITTI models): the decorated
  point's x, y, z are overwritten in place by the offsets from the pillar centre, so its 10
  inputs are ``xp, yp, zp, r, mean offsets (3), xp, yp, zp``. Folded exactly into the native
  layout by :func:`fold_legacy_pfn`.
* Backbone ``backbone.blocks`` (conv at 0, 3, 6, ...), neck ``neck.deblocks``, head
  ``bbox_head.conv_cls/conv_reg/conv_dir_cls``.
* Classes Pedestrian, Cyclist, Car; anchors at cell centres; ``dir_offset = -pi / 2``,
  ``dir_limit_offset = 0``.
"""

from __future__ import annotations

import math

import torch

from .layout import SourceLayout
from .rename import source_rules

RULES = source_rules(
    "voxel_encoder.pfn_layers.0.linear.", "voxel_encoder.pfn_layers.0.norm.", "backbone.blocks", "neck.deblocks", "bbox_head"
)

HEAD = {
    "anchor_align_center": True,
    "box_layout": "lwh_ccw",
    "dir_offset": -math.pi / 2,
    "dir_limit_offset": 0.0,
    "num_dir_bins": 2,
}


def fold_legacy_pfn(weight: torch.Tensor) -> torch.Tensor | None:
    """``[C, 10]`` legacy weight -> native ``[C, 10]``: ``W'[:, 7:10] = W[:, 7:10] + W[:, 0:3]``, ``W'[:, 0:3] = 0``.

    Exact: the legacy inputs 0:3 equal inputs 7:10 (both are the centre offsets).
    Returns ``None`` for any other shape.
    """
    if weight.dim() != 2 or weight.shape[1] != 10:
        return None
    out = weight.clone()
    out[:, 7:10] = weight[:, 7:10] + weight[:, 0:3]
    out[:, 0:3] = 0
    return out


def unfold_legacy_pfn(weight: torch.Tensor) -> torch.Tensor:
    """Right inverse of :func:`fold_legacy_pfn`: keeps ``W[:, 0:3]`` as the legacy x, y, z weights
    and gives ``W[:, 7:10] - W[:, 0:3]`` to inputs 7:10, so folding back yields ``W`` with columns
    0:3 (absolute x, y, z, which legacy mode cannot see) zeroed."""
    out = weight.clone()
    out[:, 7:10] = weight[:, 7:10] - weight[:, 0:3]
    return out


LAYOUT = SourceLayout(
    name="mmdet3d",
    rules=RULES,
    classes=("Pedestrian", "Cyclist", "Car"),
    head=HEAD,
    preset="mmdet3d_kitti_3class",
    container="state_dict",
    pfn_to_native=fold_legacy_pfn,
    pfn_from_native=unfold_legacy_pfn,
)
