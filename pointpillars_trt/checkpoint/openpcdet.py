"""OpenPCDet (``tools/cfgs/kitti_models/pointpillar.yaml``, e.g. ``pointpillar_7728.pth``).

* Container: ``{"model_state": ..., "epoch": ..., "it": ..., "optimizer_state": ..., "version": ...}``.
* PFN ``vfe.pfn_layers.0.linear.weight [64, 10]`` already has the native input layout
  (x, y, z, r, offsets from the pillar's point mean, offsets from the pillar centre).
* Backbone blocks start with ``ZeroPad2d`` at index 0, so convolutions sit at 1, 4, 7, ... and
  BatchNorms at 2, 5, 8, ...; the native blocks (padding inside the conv) have them at 0, 3, 6, ...
* Classes Car, Pedestrian, Cyclist; anchors from the range corners (``align_center`` False);
  direction bins with ``DIR_OFFSET 0.78539``, ``DIR_LIMIT_OFFSET 0``.
"""

from __future__ import annotations

import torch

from .layout import SourceLayout
from .rename import Rule

RULES = (
    Rule("vfe.pfn_layers.0.linear.", "pfn.linear."),
    Rule("vfe.pfn_layers.0.norm.", "pfn.norm."),
    Rule("backbone_2d.blocks.{i}.{k}.", "rpn.blocks.{i}.{k}.", shift=-1),
    Rule("backbone_2d.deblocks.{i}.{k}.", "rpn.deblocks.{i}.{k}."),
    Rule("dense_head.conv_cls.", "rpn.conv_cls."),
    Rule("dense_head.conv_box.", "rpn.conv_box."),
    Rule("dense_head.conv_dir_cls.", "rpn.conv_dir."),
)

HEAD = {
    "anchor_align_center": False,
    "box_layout": "lwh_ccw",
    "dir_offset": 0.78539,
    "dir_limit_offset": 0.0,
    "num_dir_bins": 2,
}


def pfn_identity(weight: torch.Tensor) -> torch.Tensor:
    """OpenPCDet's PFN input layout is the native one."""
    return weight


def _global_step() -> dict[str, torch.Tensor]:
    return {"global_step": torch.zeros(1, dtype=torch.int64)}


LAYOUT = SourceLayout(
    name="openpcdet",
    rules=RULES,
    classes=("Car", "Pedestrian", "Cyclist"),
    head=HEAD,
    preset="openpcdet_kitti_3class",
    container="model_state",
    pfn_to_native=pfn_identity,
    pfn_from_native=pfn_identity,
    drop=frozenset({"global_step"}),
    extra_keys=_global_step,
)
