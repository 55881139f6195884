"""The host executor: CPU voxelization -> a network backend (torch on CPU/CUDA, ONNX Runtime,
TensorRT) -> CPU post-processing, one frame at a time, with numpy arrays between the stages so
that every backend is compared on identical pillars and decoded by the same code."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..config import PointPillarsConfig
from ..network import Backend
from ..options import HostOptions
from ..postprocess import PostProcessor
from ..voxelize import make_voxelizer
from .base import Executor, FrameResult, PillarCounts


class HostExecutor(Executor):
    """``voxelizer -> backend -> post-processor``; ``backend`` is activated on first use."""

    def __init__(self, config: PointPillarsConfig, backend: Backend, options: HostOptions = HostOptions()) -> None:
        self.config, self.backend, self.options = config, backend, options
        self.max_pillars = min(config.voxel.max_pillars, backend.max_pillars)
        self.voxelizer = make_voxelizer(config.voxel, str(options.voxelizer), max_pillars=self.max_pillars)
        self.postprocess = PostProcessor(config)

    @property
    def description(self) -> str:
        device = getattr(self.backend, "device", "cpu")
        return f"host: {self.voxelizer.name} voxelizer -> {self.backend.name} network ({device}) -> numpy post-processing"

    def run(self, clouds: Sequence[np.ndarray], score_threshold: float | None = None) -> list[FrameResult]:
        return [self._frame(pts, score_threshold) for pts in clouds]

    def _frame(self, pts: np.ndarray, score_threshold: float | None) -> FrameResult:
        t0 = time.perf_counter()
        pillars = self.voxelizer(pts)
        counts = PillarCounts(int(pts.shape[0]), pillars.num_pillars, pillars.num_pillars + pillars.num_dropped_pillars,
                              pillars.num_dropped_pillars, pillars.num_dropped_points)
        t1 = time.perf_counter()
        timings = {"voxelize": (t1 - t0) * 1e3}
        if pillars.num_pillars == 0:  # nothing for the network: the facade returns an empty result
            return FrameResult(np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), counts, timings)
        out = self.backend.infer({"features": pillars.features, "num_points": pillars.num_points, "coords": pillars.coords})
        t2 = time.perf_counter()
        timings.update(self.backend.last_timings_ms)
        timings["network"] = (t2 - t1) * 1e3
        raw = self.postprocess(out["cls"], out["box"], out["dir"], score_threshold)
        t3 = time.perf_counter()
        timings["postprocess"] = (t3 - t2) * 1e3
        timings["total"] = (t3 - t0) * 1e3
        return FrameResult(raw.boxes.astype(np.float32), raw.scores.astype(np.float32), raw.labels, counts, timings)

    def close(self) -> None:
        self.backend.deactivate()


__all__ = ["HostExecutor"]
