"""What a foreign checkpoint format is, and the generic conversion to and from native keys.

A :class:`SourceLayout` holds everything that differs between implementations: key renaming
rules, the PFN weight fold, the source's class order and decoding conventions. The format
modules (``openpcdet``, ``mmdet3d``, ``zhulf0804``) each define one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from ..errors import CheckpointError
from .head import apply_head_indices, head_indices, invert_index
from .rename import Rule, rename

PFN_WEIGHT = "pfn.linear.weight"
HEAD_PREFIX = "rpn."


@dataclass(frozen=True)
class SourceLayout:
    """One foreign checkpoint format.

    ``pfn_to_native`` maps the source's PFN weight to the native ``[C, 10]`` layout (or returns
    ``None`` if the tensor does not have the source's shape; the architecture check then reports
    it); ``pfn_from_native`` is its right inverse on the weights the source can express.
    ``head`` holds the :class:`~pointpillars_trt.config.HeadConfig` fields of the source's decoder.
    ``preset`` names the config in ``configs/`` with the source's test-time pipeline (point-range
    filter, post-processing): a converted checkpoint's config when the caller gives none.
    """

    name: str
    rules: tuple[Rule, ...]
    classes: tuple[str, ...]
    head: Mapping[str, Any]
    preset: str
    container: str  # "model_state", "state_dict" or "bare"
    pfn_to_native: Callable[[torch.Tensor], torch.Tensor | None]
    pfn_from_native: Callable[[torch.Tensor], torch.Tensor]
    swap_dir_bins: bool = False
    drop: frozenset[str] = frozenset()
    extra_keys: Callable[[], dict[str, torch.Tensor]] = field(default=dict)

    def owns(self, key: str) -> bool:
        """Whether ``key`` is one of this format's names (used by format detection)."""
        return key in self.drop or rename(key, self.rules) is not None

    def to_native(
        self,
        state_dict: Mapping[str, torch.Tensor],
        target_classes: Sequence[str],
        source_classes: Sequence[str] | None = None,
        where: str = "checkpoint",
    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Source state dict -> (native state dict, {native key: source key}).

        Keys no rule knows are kept under their own name so that the architecture check lists
        them as unexpected. The head is reordered from ``source_classes`` (default: the
        format's) to ``target_classes``.
        """
        out: dict[str, torch.Tensor] = {}
        origins: dict[str, str] = {}
        for key, tensor in state_dict.items():
            if key in self.drop:
                continue
            new = rename(key, self.rules) or key
            if new in out:
                raise CheckpointError(f"{where}: keys {origins[new]!r} and {key!r} both map to {new!r}")
            out[new] = tensor
            origins[new] = key
        if PFN_WEIGHT in out:
            folded = self.pfn_to_native(out[PFN_WEIGHT])
            if folded is not None:
                out[PFN_WEIGHT] = folded
        indices = head_indices(
            out, HEAD_PREFIX, source_classes or self.classes, target_classes, self.swap_dir_bins, where
        )
        if indices is not None:
            apply_head_indices(out, HEAD_PREFIX, indices)
        return out, origins

    def from_native(
        self,
        state_dict: Mapping[str, torch.Tensor],
        native_classes: Sequence[str],
        source_classes: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Native state dict -> this format's state dict (the inverse of :meth:`to_native`).

        Exact for every tensor except the PFN weight, of which the source can express only a
        subspace (see the format's ``pfn_from_native``); ``to_native(from_native(sd))`` equals
        ``sd`` with the PFN weight projected onto that subspace.
        """
        sd = dict(state_dict)
        sd[PFN_WEIGHT] = self.pfn_from_native(sd[PFN_WEIGHT])
        source_classes = source_classes or self.classes
        indices = head_indices(sd, HEAD_PREFIX, source_classes, native_classes, self.swap_dir_bins, self.name)
        if indices is None:
            raise CheckpointError(f"{self.name}: the native head does not fit {len(source_classes)} classes")
        apply_head_indices(sd, HEAD_PREFIX, {k: invert_index(v) for k, v in indices.items()})
        inverse = tuple(r.inverse() for r in self.rules)
        out = dict(self.extra_keys())
        for key, tensor in sd.items():
            new = rename(key, inverse)
            if new is None:
                raise CheckpointError(f"{self.name}: no source name for native key {key!r}")
            out[new] = tensor
        return out
