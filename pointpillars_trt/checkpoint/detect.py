"""Which implementation wrote a state dict, judged from its key names."""

from __future__ import annotations

from typing import Iterable

from ..errors import CheckpointError
from ..options import CheckpointFormat
from . import mmdet3d, openpcdet, zhulf0804
from .layout import SourceLayout

FORMATS = CheckpointFormat.values()
LAYOUTS: dict[str, SourceLayout] = {
    "openpcdet": openpcdet.LAYOUT,
    "mmdet3d": mmdet3d.LAYOUT,
    "zhulf0804": zhulf0804.LAYOUT,
}
NATIVE_PREFIXES = ("pfn.", "rpn.")


def format_scores(keys: Iterable[str]) -> dict[str, int]:
    """For each format in :data:`FORMATS`, how many of ``keys`` are names of that format."""
    keys = list(keys)
    scores = {"native": sum(k.startswith(NATIVE_PREFIXES) for k in keys)}
    for name, layout in LAYOUTS.items():
        scores[name] = sum(layout.owns(k) for k in keys)
    return scores


def detect_format(keys: Iterable[str], where: str = "checkpoint") -> str:
    """The format (one of :data:`FORMATS`) most of ``keys`` belong to.

    Raises :class:`CheckpointError` listing a sample of the keys if no key belongs to any format.
    """
    keys = list(keys)
    scores = format_scores(keys)
    best = max(FORMATS, key=lambda f: scores[f])
    if scores[best] == 0:
        sample = ", ".join(keys[:8]) + (f", ... ({len(keys)} keys)" if len(keys) > 8 else "")
        raise CheckpointError(
            f"{where}: not a PointPillars checkpoint of a known format {FORMATS}; "
            f"none of its keys is a known name. Keys: [{sample}]"
        )
    return best


def check_forced_format(keys: Iterable[str], forced: str, where: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` if ``forced`` is unknown or none of ``keys`` belongs to it."""
    if forced not in FORMATS:
        raise CheckpointError(f"{where}: unknown checkpoint format {forced!r}; known formats are {FORMATS}")
    keys = list(keys)
    scores = format_scores(keys)
    if scores[forced] == 0:
        others = [f"{f} ({n} keys)" for f, n in scores.items() if n]
        looks = f"its keys look like {', '.join(others)}" if others else f"its keys start {keys[:5]}"
        raise CheckpointError(f"{where}: format={forced!r} was requested, but none of its keys is a {forced} name; {looks}")
