"""What every executor returns and the interface the :class:`~pointpillars_trt.detector.Detector`
facade drives. An executor runs validated clouds through voxelization, the network and
post-processing; the facade owns validation, the overflow and empty-frame policies and the lock."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..config import PointPillarsConfig


@dataclass(frozen=True)
class PillarCounts:
    """What voxelization kept and dropped: ``num_found`` pillars were seen, ``num_pillars`` kept
    (``num_found - num_dropped_pillars``); ``num_dropped_points`` points lay in dropped pillars.
    An executor that checks the points itself (``Executor.checks_points``) also reports the rows
    holding NaN/inf (``num_nonfinite``, included in ``num_points``) and the smallest and largest
    finite intensity (``intensity``; ``None`` when not measured)."""

    num_points: int
    num_pillars: int
    num_found: int
    num_dropped_pillars: int = 0
    num_dropped_points: int = 0
    num_nonfinite: int = 0
    intensity: tuple[float, float] | None = None

    @property
    def overflowed(self) -> bool:
        return self.num_dropped_pillars > 0


@dataclass(frozen=True)
class FrameResult:
    """One frame out of an executor: ``boxes`` float32 ``[n, 7]``, ``scores [n]``, ``labels [n]``
    int64 (best score first), the pillar counts and the timings in milliseconds."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    counts: PillarCounts
    timings_ms: dict[str, float] = field(default_factory=dict)


class Executor(abc.ABC):
    """Runs frames for one config; one caller at a time (the facade holds a lock around :meth:`run`)."""

    config: PointPillarsConfig
    #: most pillars one frame keeps (the config's, or less when an engine's profile is smaller)
    max_pillars: int
    #: most frames one step of :meth:`run` takes together (the host executor: 1)
    max_batch: int = 1
    #: True when :meth:`run` takes clouds whose rows were not checked for NaN/inf, treats such rows
    #: as out of range, and reports them and the intensity range in :class:`PillarCounts` (the
    #: device executor does both on the GPU; the facade then skips those host passes)
    checks_points: bool = False

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """One line naming the path: stages, runtime, device and precision."""

    @abc.abstractmethod
    def run(self, clouds: Sequence[np.ndarray], score_threshold: float | None = None) -> list[FrameResult]:
        """Detect in validated float32 ``[N_i, 4]`` clouds (``N_i >= 1``; rows may hold NaN/inf
        only when ``checks_points``); one result per cloud."""

    def input_buffer(self, num_points: int) -> np.ndarray | None:
        """A float32 ``[num_points, 4]`` array that :meth:`run` of that one cloud reads without
        copying it first (the device executor's pinned staging row), or None where there is none.
        One caller at a time, like :meth:`run`."""
        return None

    def close(self) -> None:
        """Release the runtime's resources (idempotent)."""


__all__ = ["Executor", "FrameResult", "PillarCounts"]
