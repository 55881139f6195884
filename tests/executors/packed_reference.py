"""The reference decoding of one packed output row, written plainly (fields one by one, through
:class:`~pointpillars_trt.voxelize.cuda.VoxelCounters`), that the fast views of
:class:`~pointpillars_trt.executors.buffers.PackedRows` are tested against."""

from __future__ import annotations

import numpy as np

from pointpillars_trt.executors.base import FrameResult
from pointpillars_trt.executors.buffers import PackedLayout, PackedRows
from pointpillars_trt.voxelize.cuda import NUM_COUNTERS, VoxelCounters


def unpack(layout: PackedLayout, row: np.ndarray):
    """``(boxes [n, 7], scores [n], labels [n] int64, VoxelCounters)`` of one packed row ``[words]``
    int32, copied."""
    n = min(max(int(row[layout.count]), 0), layout.post_max)
    f = row.view(np.float32)
    boxes = f[layout.boxes: layout.boxes + 7 * n].reshape(n, 7).copy()
    scores = f[layout.scores: layout.scores + n].copy()
    labels = row[layout.labels: layout.labels + n].astype(np.int64)
    return boxes, scores, labels, VoxelCounters.from_array(row[layout.counters: layout.counters + NUM_COUNTERS])


def frame_result(layout: PackedLayout, row: np.ndarray, timings_ms: dict[str, float]) -> FrameResult:
    """The fast path on a one-row buffer: :meth:`PackedRows.frame_result` of ``row[None]``."""
    return PackedRows(layout, row[None]).frame_result(0, timings_ms)
