"""Error statistics of one array against a reference (head outputs, intermediates, any tensor).

The one relative-error definition of the package (tools/parity.py, tools/check_tensorrt.py and
the tests all use it)::

    rel = |got - ref| / max(|ref|, REL_FLOOR * max|ref|)

Elements far below the tensor's own scale are measured against ``REL_FLOOR`` of that scale, so
zeros in the reference do not make the ratio meaningless, and no absolute unit is assumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

REL_FLOOR = 1e-3  # fraction of max|ref| below which |ref| is not trusted as the scale of an element


@dataclass(frozen=True)
class ErrorStats:
    """Error of ``got`` against ``ref`` over ``count`` elements (all float64 arithmetic).

    ``max_abs`` = max |got - ref|; ``mean_abs`` = mean |got - ref|; ``max_rel`` = max of the
    relative error of the module docstring (floor ``REL_FLOOR * ref_max``); ``ref_max`` = max |ref|.
    An empty array gives zeros and ``count == 0``."""

    max_abs: float
    mean_abs: float
    max_rel: float
    ref_max: float
    count: int

    def merge(self, other: "ErrorStats") -> "ErrorStats":
        """The stats of both arrays together (maxima of the maxima, count-weighted mean).

        ``max_rel`` keeps each part's own floor: it is the max over the parts, not a recomputation."""
        n = self.count + other.count
        mean = (self.mean_abs * self.count + other.mean_abs * other.count) / n if n else 0.0
        return ErrorStats(max(self.max_abs, other.max_abs), mean, max(self.max_rel, other.max_rel),
                          max(self.ref_max, other.ref_max), n)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def array_errors(ref: np.ndarray, got: np.ndarray) -> ErrorStats:
    """:class:`ErrorStats` of ``got`` against ``ref``.

    Args:
        ref: reference array, any shape and real dtype.
        got: array of the same shape.

    Returns:
        ErrorStats over all elements.

    Raises:
        ValueError: the shapes differ.
    """
    r = np.asarray(ref, dtype=np.float64)
    g = np.asarray(got, dtype=np.float64)
    if r.shape != g.shape:
        raise ValueError(f"shapes differ: reference {r.shape}, got {g.shape}")
    if r.size == 0:
        return ErrorStats(0.0, 0.0, 0.0, 0.0, 0)
    diff = np.abs(g - r)
    scale = float(np.abs(r).max())
    floor = max(REL_FLOOR * scale, 1e-30)
    rel = diff / np.maximum(np.abs(r), floor)
    return ErrorStats(float(diff.max()), float(diff.mean()), float(rel.max()), scale, int(r.size))


def merge_stats(stats: Mapping[str, ErrorStats], into: dict[str, ErrorStats]) -> dict[str, ErrorStats]:
    """Fold one input's stats (by output name) into running stats; ``into`` is updated and returned."""
    for k, s in stats.items():
        into[k] = into[k].merge(s) if k in into else s
    return into


def named_errors(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], names: tuple[str, ...],
                 prefix: str = "") -> dict[str, ErrorStats]:
    """``{prefix + name: array_errors(ref[name], got[name])}`` for each of ``names``."""
    return {prefix + k: array_errors(ref[k], got[k]) for k in names}
