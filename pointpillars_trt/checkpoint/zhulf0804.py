"""zhulf0804/PointPillars (``pretrained/epoch_160.pth``).

* Container: a bare state dict.
* PFN ``pillar_encoder.conv.weight [64, 9, 1]`` (Conv1d) with the 9 inputs
  ``x - xc, y - yc, z, r, mean offsets (3), x - xc, y - yc``; folded exactly into the native
  10-input layout by :func:`fold_pfn`. BatchNorm ``pillar_encoder.bn``.
* Backbone ``backbone.multi_blocks`` (conv at 0, 3, 6, ...), neck ``neck.decoder_blocks``, head
  ``head.conv_cls/conv_reg/conv_dir_cls``.
* Classes Pedestrian, Cyclist, Car; anchors at cell centres; anchor sizes and box codes are
  ``(w, l, h)`` with a camera-style yaw (``box_layout = "wlh_cw"``).
* Direction: ``yaw = limit_period(r, 1, pi) + (1 - label) * pi``. With the two direction logits
  of every anchor swapped (``bin = 1 - label``) this is the generic rule with ``dir_offset 0``,
  ``dir_limit_offset 1``.
"""

from __future__ import annotations

import torch

from .layout import SourceLayout
from .rename import source_rules

RULES = source_rules("pillar_encoder.conv.", "pillar_encoder.bn.", "backbone.multi_blocks", "neck.decoder_blocks", "head")

HEAD = {
    "anchor_align_center": True,
    "box_layout": "wlh_cw",
    "dir_offset": 0.0,
    "dir_limit_offset": 1.0,
    "num_dir_bins": 2,
}

SOURCE_CHANNELS = 9
NATIVE_CHANNELS = 10


def fold_pfn(weight: torch.Tensor) -> torch.Tensor | None:
    """``[C, 9, 1]`` Conv1d weight -> native ``[C, 10]`` Linear weight.

    ``W'[:, 7] = W[:, 0] + W[:, 7]``, ``W'[:, 8] = W[:, 1] + W[:, 8]`` (inputs 0 and 7, 1 and 8 are
    both the centre offsets), ``W'[:, 2:7] = W[:, 2:7]``; columns 0, 1 (absolute x, y) and 9 (z
    offset from the centre) are zero. Returns ``None`` for any other shape.
    """
    if weight.dim() != 3 or tuple(weight.shape[1:]) != (SOURCE_CHANNELS, 1):
        return None
    w = weight[:, :, 0]
    out = w.new_zeros(w.shape[0], NATIVE_CHANNELS)
    out[:, 2:7] = w[:, 2:7]
    out[:, 7] = w[:, 0] + w[:, 7]
    out[:, 8] = w[:, 1] + w[:, 8]
    return out


def unfold_pfn(weight: torch.Tensor) -> torch.Tensor:
    """Right inverse of :func:`fold_pfn`: native ``[C, 10]`` -> ``[C, 9, 1]``.

    Inputs 0, 1 take ``W[:, 0]``, ``W[:, 1]``; inputs 7, 8 take ``W[:, 7] - W[:, 0]``,
    ``W[:, 8] - W[:, 1]``; ``W[:, 9]`` is dropped. Folding back yields ``W`` with columns 0, 1, 9 zeroed.
    """
    out = weight.new_zeros(weight.shape[0], SOURCE_CHANNELS)
    out[:, 0:7] = weight[:, 0:7]
    out[:, 7] = weight[:, 7] - weight[:, 0]
    out[:, 8] = weight[:, 8] - weight[:, 1]
    return out[:, :, None].contiguous()


LAYOUT = SourceLayout(
    name="zhulf0804",
    rules=RULES,
    classes=("Pedestrian", "Cyclist", "Car"),
    head=HEAD,
    preset="zhulf0804_kitti_3class",
    container="bare",
    pfn_to_native=fold_pfn,
    pfn_from_native=unfold_pfn,
    swap_dir_bins=True,
)
