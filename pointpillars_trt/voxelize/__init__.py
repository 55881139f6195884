"""Points -> pillars. ``make_voxelizer`` picks the CPU implementation."""

from __future__ import annotations

from ..config import VoxelConfig
from ..errors import ConfigError
from .decorate import decorate_pillars
from .numba_cpu import NumbaVoxelizer
from .pillars import Pillars

VOXELIZERS = ("auto", "numba", "spconv")


def make_voxelizer(cfg: VoxelConfig, kind: str = "auto", max_pillars: int | None = None):
    """``kind``: ``numba`` (ours), ``spconv`` (Point2VoxelCPU3d + our decoration) or ``auto``.

    ``auto`` is numba: measured faster than spconv on 20k and 120k point frames
    (``benchmarks/benchmark.py --stage voxelize``, docs/PERFORMANCE.md).
    """
    if kind in ("auto", "numba"):
        return NumbaVoxelizer(cfg, max_pillars)
    if kind == "spconv":
        from .spconv_cpu import SpconvVoxelizer

        return SpconvVoxelizer(cfg, max_pillars)
    raise ConfigError(f"voxelizer {kind!r} is not one of {VOXELIZERS}")


__all__ = ["NumbaVoxelizer", "Pillars", "VOXELIZERS", "decorate_pillars", "make_voxelizer"]
