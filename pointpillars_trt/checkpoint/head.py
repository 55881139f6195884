"""Reordering the 1x1 head convolutions between class orders.

All supported sources and the native model lay the anchors of one BEV location out class-major:
anchor ``a = c * n + r`` for class ``c`` and per-class anchor ``r`` (size x rotation, ``n`` of
them). Output channel ``a * C + j`` is channel ``j`` of anchor ``a``, with ``C`` = number of
classes for the class logits, 7 for the box codes and the number of bins for direction logits.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import CheckpointError


def class_permutation(source: Sequence[str], target: Sequence[str], where: str = "checkpoint") -> list[int]:
    """``perm`` with ``target[i] == source[perm[i]]``, matching classes by name.

    Raises :class:`CheckpointError` if the two lists do not hold the same class names.
    """
    if sorted(source) != sorted(target) or len(set(source)) != len(source):
        raise CheckpointError(
            f"{where}: the checkpoint's classes {list(source)} are not the config's classes {list(target)}; "
            "a converted head can only be reordered, not re-purposed"
        )
    return [list(source).index(name) for name in target]


def head_channel_index(
    class_perm: Sequence[int],
    anchors_per_class: int,
    channels_per_anchor: int,
    inner: Sequence[int] | None = None,
) -> torch.Tensor:
    """Gather index for one head convolution: ``target = source[index]`` along the output channels.

    Target anchor ``t * n + r`` (class ``t`` of the target order) comes from source anchor
    ``class_perm[t] * n + r``; within an anchor, target channel ``j`` comes from source channel
    ``inner[j]`` (identity if ``None``). For the class logits ``inner = class_perm`` (the logits
    inside each anchor follow the class order too); for zhulf0804's direction logits
    ``inner = [1, 0]`` swaps the two bins.

    Returns an int64 tensor of length ``len(class_perm) * anchors_per_class * channels_per_anchor``.
    """
    inner = list(range(channels_per_anchor)) if inner is None else list(inner)
    if sorted(inner) != list(range(channels_per_anchor)):
        raise ValueError(f"inner {inner} is not a permutation of range({channels_per_anchor})")
    index = []
    for t_cls in range(len(class_perm)):
        for r in range(anchors_per_class):
            src_anchor = class_perm[t_cls] * anchors_per_class + r
            index += [src_anchor * channels_per_anchor + j for j in inner]
    return torch.tensor(index, dtype=torch.int64)


def invert_index(index: torch.Tensor) -> torch.Tensor:
    """The inverse gather: if ``b = a[index]`` then ``a = b[invert_index(index)]``."""
    inv = torch.empty_like(index)
    inv[index] = torch.arange(len(index), dtype=index.dtype)
    return inv


def head_indices(
    state_dict: dict[str, torch.Tensor],
    prefix: str,
    source_classes: Sequence[str],
    target_classes: Sequence[str],
    swap_dir_bins: bool,
    where: str,
) -> dict[str, torch.Tensor] | None:
    """Gather indices for ``{prefix}conv_cls``, ``conv_box`` and ``conv_dir`` (native names).

    Returns ``None`` if the head's channel counts do not fit ``len(source_classes)`` classes with
    the same number of anchors per class (the architecture check then reports the shapes).
    """
    perm = class_permutation(source_classes, target_classes, where)
    k = len(perm)
    try:
        n_cls = state_dict[prefix + "conv_cls.weight"].shape[0]
        n_box = state_dict[prefix + "conv_box.weight"].shape[0]
        n_dir = state_dict[prefix + "conv_dir.weight"].shape[0]
    except KeyError:
        return None
    if n_cls % (k * k):
        return None
    n = n_cls // (k * k)  # anchors per class
    num_anchors = n * k
    if n_box % num_anchors or n_dir % num_anchors:
        return None
    code, bins = n_box // num_anchors, n_dir // num_anchors
    dir_inner = list(reversed(range(bins))) if swap_dir_bins else None
    if swap_dir_bins and bins != 2:
        return None
    return {
        "conv_cls": head_channel_index(perm, n, k, inner=perm),
        "conv_box": head_channel_index(perm, n, code),
        "conv_dir": head_channel_index(perm, n, bins, inner=dir_inner),
    }


def apply_head_indices(state_dict: dict[str, torch.Tensor], prefix: str, indices: dict[str, torch.Tensor]) -> None:
    """Gather the output channels (dim 0) of each head conv's weight and bias in place."""
    for conv, index in indices.items():
        for leaf in ("weight", "bias"):
            key = f"{prefix}{conv}.{leaf}"
            if key in state_dict and state_dict[key].shape[0] == len(index):
                state_dict[key] = state_dict[key].index_select(0, index)
