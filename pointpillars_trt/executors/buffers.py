"""The device executor's per-frame buffers: points in, pillar indices, the packed output row.

Every batch lane of a buffer starts on a 256-byte boundary (what TensorRT's ``setTensorAddress``
requires, and what coalesced loads like), whatever ``max_pillars`` or the output size are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..cuda.memory import mapped_pointer
from ..errors import ConfigError, CudaError
from ..postprocess.cuda import SideCopy
from ..voxelize.cuda import (DROPPED_PILLARS, DROPPED_POINTS, FOUND, INPUT, INTENSITY_MAX, INTENSITY_MIN, NONFINITE,
                             NUM_COUNTERS, PILLARS, MappedPoints, keys_to_floats)
from .base import FrameResult, PillarCounts
from .staging import SplitCopier, default_staging_threads

ALIGN_BYTES = 256


def aligned_count(count: int, itemsize: int) -> int:
    """``count`` elements of ``itemsize`` bytes rounded up so that they fill whole 256-byte blocks."""
    per = max(1, ALIGN_BYTES // np.gcd(ALIGN_BYTES, itemsize))
    return -(-int(count) // per) * per


def lane_tensor(batch: int, shape: Sequence[int], dtype: Any, device: Any = None, pin: bool = False):
    """Zeros ``[batch, *shape]`` whose lane ``b`` starts ``b * stride`` bytes in, with the stride
    rounded up to 256 bytes (a strided view of one allocation; ``tensor[b]`` is contiguous)."""
    import torch

    shape = tuple(int(s) for s in shape)
    inner = int(np.prod(shape)) if shape else 1
    itemsize = torch.empty((), dtype=dtype).element_size()
    stride = aligned_count(inner, itemsize)
    kw = {"pin_memory": True} if pin else {"device": device}
    slack = ALIGN_BYTES // itemsize  # the base itself is aligned too, whatever the allocator gives
    flat = torch.zeros(batch * stride + slack, dtype=dtype, **kw)
    offset = (-flat.data_ptr() % ALIGN_BYTES) // itemsize
    inner_strides = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
    return flat.as_strided((batch, *shape), (stride, *inner_strides), offset)


@dataclass(frozen=True)
class PackedLayout:
    """Offsets (in 4-byte words) inside one packed output row: ``boxes [post_max, 7]`` float32,
    ``scores [post_max]`` float32, ``labels [post_max]`` int32, ``count``, the voxelizer's
    ``NUM_COUNTERS`` counters."""

    post_max: int

    @property
    def boxes(self) -> int:
        return 0

    @property
    def scores(self) -> int:
        return self.post_max * 7

    @property
    def labels(self) -> int:
        return self.post_max * 8

    @property
    def count(self) -> int:
        return self.post_max * 9

    @property
    def counters(self) -> int:
        return self.post_max * 9 + 1

    @property
    def words(self) -> int:
        return aligned_count(self.post_max * 9 + 1 + NUM_COUNTERS, 4)


class PackedRows:
    """Numpy views, made once, into packed rows ``[B, words]`` int32 (the pinned output buffer):
    per lane the boxes ``[post_max, 7]`` float32, scores, labels int32 and the count followed by the
    voxelizer's counters, so that decoding a frame is a few slices and copies."""

    def __init__(self, layout: PackedLayout, rows: np.ndarray) -> None:
        p, f = layout.post_max, rows.view(np.float32)
        self.post_max = p
        self.boxes = f[:, layout.boxes: layout.boxes + 7 * p].reshape(rows.shape[0], p, 7)  # splits a contiguous axis: a view
        self.scores = f[:, layout.scores: layout.scores + p]
        self.labels = rows[:, layout.labels: layout.labels + p]
        self.head = rows[:, layout.count: layout.counters + INTENSITY_MAX + 1]

    def frame_result(self, b: int, timings_ms: dict[str, float]) -> FrameResult:
        """Lane ``b`` as a :class:`~pointpillars_trt.executors.base.FrameResult` (what
        tests/executors/packed_reference.py's ``unpack`` gives, copied once each): the count and the counters in one
        ``tolist()``, the intensity keys through :func:`~pointpillars_trt.voxelize.cuda.keys_to_floats`."""
        head = self.head[b].tolist()  # count, then the counters
        n = min(max(head[0], 0), self.post_max)
        c = head[1:]
        intensity = keys_to_floats(c[INTENSITY_MIN], c[INTENSITY_MAX])
        counts = PillarCounts(c[INPUT], c[PILLARS], c[FOUND], c[DROPPED_PILLARS], c[DROPPED_POINTS], c[NONFINITE], intensity)
        return FrameResult(self.boxes[b, :n].copy(), self.scores[b, :n].copy(), self.labels[b, :n].astype(np.int64),
                           counts, timings_ms)


def maps_host_memory(option: bool | None, batch: int) -> bool:
    """Whether a replay of ``batch`` frames reads its points from (``DeviceOptions.mapped_points``) or writes its
    results into (``mapped_output``) the pinned host rows directly, as mapped host memory, instead of through the
    copy engine (:class:`~pointpillars_trt.options.DeviceOptions`): True always, False never, None for single
    frames only (batches are faster through the copy engine)."""
    return bool(option) if option is not None else batch == 1


def _mapped_or_none(host_ptr: int, option: bool | None) -> int | None:
    """The device address of pinned ``host_ptr``, or None where the device cannot map it and ``option`` is None
    (the default then copies); ``option`` True raises the driver's reason."""
    try:
        return mapped_pointer(host_ptr)
    except CudaError:
        if option:
            raise
        return None


def point_bucket(n: int, min_bucket: int = 16384) -> int:
    """The copy size for ``n`` points: ``min_bucket`` times powers of 1.5, rounded up to 4096
    (few graphs, at most 50 % more bytes copied than needed).

    >>> [point_bucket(n) for n in (1, 16384, 16385, 120000)]
    [16384, 16384, 24576, 131072]
    """
    b = int(min_bucket)
    while b < n:
        b = -(-(b * 3 // 2) // 4096) * 4096
    return b


def tensor_ptr(tensor, b: int, word: int = 0) -> int:
    """Device address of element ``word`` of lane ``b`` of a ``[B, ...]`` tensor."""
    return tensor.data_ptr() + (b * tensor.stride(0) + word) * tensor.element_size()


class StagingRows:
    """The host side of the points of ``batch`` lanes: ``points`` float32 ``[batch, capacity, 4]``
    and ``counts`` int32 ``[batch]`` (pinned memory in the pipeline; any arrays here), filled by
    :meth:`stage` with numpy's assignment or ``copier``'s threads (a
    :class:`~.staging.SplitCopier`, or None: the caller's thread alone)."""

    def __init__(self, points: np.ndarray, counts: np.ndarray, copier: SplitCopier | None) -> None:
        self.points, self.counts, self.copier = points, counts, copier
        self.capacity = points.shape[1]
        self.addr = [int(points[b].ctypes.data) for b in range(points.shape[0])]

    def lane_row(self, b: int, n: int) -> np.ndarray:
        """Lane ``b``'s row as a float32 ``[n, 4]`` array (``0 <= n <= capacity``): a cloud written there
        and staged alone is not copied again."""
        if not 0 <= n <= self.capacity:
            raise ConfigError(f"StagingRows.lane_row: {n} points for rows of {self.capacity}")
        return self.points[b, :n]

    def holds(self, cloud: np.ndarray) -> bool:
        """True when ``cloud``'s memory overlaps the rows (a bounds test: ~0.3 us)."""
        return np.may_share_memory(cloud, self.points)

    def stage(self, clouds: Sequence[np.ndarray]) -> None:
        """Copy validated clouds (C-contiguous float32 ``[N_b, 4]``, ``N_b <= capacity``) into lanes
        ``0..len-1`` and their counts: numpy's assignment, or the copier's threads for a batch of two
        or more clouds large enough for more than one share. A single cloud is never split: rows written
        by several threads just before the host-to-device copy slow that copy by more than the threads
        save (benchmarks/bench_h2d.py; docs/PERFORMANCE.md, 2026-12-02, thirteenth run). A single cloud that starts at lane 0's row
        (:meth:`lane_row`) is not copied; a cloud elsewhere in the rows is copied out first, so that
        no lane is overwritten before it is read."""
        held = [self.holds(c) for c in clouds]
        if any(held):
            if len(clouds) == 1 and clouds[0].__array_interface__["data"][0] == self.addr[0]:
                self.counts[0] = clouds[0].shape[0]  # written in place (Detector.input_buffer)
                return
            clouds = [c.copy() if h else c for c, h in zip(clouds, held)]
        if self.copier is not None and len(clouds) > 1 and self.copier.parts(sum(c.nbytes for c in clouds)) > 1:
            self.copier.copy([(self.addr[b], c.ctypes.data, c.nbytes) for b, c in enumerate(clouds)])
        else:
            for b, c in enumerate(clouds):
                self.points[b, : c.shape[0]] = c
        for b, c in enumerate(clouds):
            self.counts[b] = c.shape[0]


class FrameBuffers:
    """Static buffers of ``batch`` lanes: points (pinned host staging and device copy, sized by
    :meth:`reserve_points`), the device point count, per-pillar point counts and cells, the
    packed output row and its pinned host copy. Numpy views of the pinned buffers are made once."""

    def __init__(self, batch: int, max_pillars: int, layout: PackedLayout, device: Any, staging_threads: int | None = 1,
                 mapped_points: bool | None = False, mapped_output: bool | None = False) -> None:
        import torch

        self.batch, self.max_pillars, self.layout, self.device = int(batch), int(max_pillars), layout, device
        self.num_points = lane_tensor(batch, (max_pillars,), torch.int32, device)
        self.coords = lane_tensor(batch, (max_pillars, 2), torch.int32, device)
        self.packed = torch.zeros((batch, layout.words), dtype=torch.int32, device=device)
        self.packed_host = torch.zeros((batch, layout.words), dtype=torch.int32, pin_memory=True)
        self.packed_host_np = self.packed_host.numpy()
        self.rows = PackedRows(layout, self.packed_host_np)
        self.n_host = torch.zeros(batch, dtype=torch.int32, pin_memory=True)
        self.n_dev = torch.zeros(batch, dtype=torch.int32, device=device)
        self.n_host_np = self.n_host.numpy()
        self.capacity = 0
        # see maps_host_memory; where the device cannot map host memory the default (None) copies
        self.mapped_points, self.mapped_output = mapped_points, mapped_output
        self._mapping = self._mapping_out = False  # whether the batch being enqueued reads / writes mapped rows (enqueue_upload)
        if mapped_points is not False:  # the voxelizer's pass 1 may read the pinned count and rows over the bus
            self._n_mapped = _mapped_or_none(self.n_host.data_ptr(), mapped_points)
            if self._n_mapped is None:
                self.mapped_points = False
        if mapped_output is not False:  # the post-processor's last pass may write the pinned output rows over the bus
            self._packed_mapped = _mapped_or_none(self.packed_host.data_ptr(), mapped_output)
            if self._packed_mapped is None:
                self.mapped_output = False
        threads = default_staging_threads() if staging_threads is None else staging_threads
        self.copier = SplitCopier(threads) if threads != 1 else None  # validates the count

    def reserve_points(self, capacity: int) -> None:
        """(Re)allocate the point buffers for ``capacity`` points per lane (a multiple of 4096)."""
        import torch

        self.capacity = int(capacity)
        self.points_dev = torch.zeros((self.batch, capacity, 4), dtype=torch.float32, device=self.device)
        self.points_host = torch.zeros((self.batch, capacity, 4), dtype=torch.float32, pin_memory=True)
        self.points_host_np = self.points_host.numpy()
        self.staging = StagingRows(self.points_host_np, self.n_host_np, self.copier)
        if self.mapped_points is not False:
            self._points_mapped = mapped_pointer(self.points_host.data_ptr())

    def lane_row(self, b: int, n: int) -> np.ndarray:
        """:meth:`StagingRows.lane_row` of the pinned rows (valid until :meth:`reserve_points`)."""
        return self.staging.lane_row(b, n)

    def holds(self, cloud: np.ndarray) -> bool:
        return self.staging.holds(cloud)

    def stage(self, clouds: Sequence[np.ndarray]) -> None:
        """:meth:`StagingRows.stage` into the pinned rows (host only)."""
        self.staging.stage(clouds)

    def close(self) -> None:
        """End the staging threads (if any)."""
        if self.copier is not None:
            self.copier.close()

    def enqueue_upload(self, batch: int, bucket: int) -> None:
        """H2D copies of the counts and the first ``bucket`` points of each lane (current stream);
        none where ``batch`` frames read mapped points (:func:`maps_host_memory`): then the
        :meth:`voxel_outputs` of this batch's lanes tell the voxelizer where the pinned rows are.
        Also decides whether this batch's results go straight to the pinned rows (:meth:`output_ptrs`,
        :meth:`enqueue_download`)."""
        self._mapping = maps_host_memory(self.mapped_points, batch)
        self._mapping_out = maps_host_memory(self.mapped_output, batch)
        if self._mapping:
            return
        self.n_dev[:batch].copy_(self.n_host[:batch], non_blocking=True)
        for b in range(batch):  # contiguous rows: a pinned source, so a true async copy
            self.points_dev[b, :bucket].copy_(self.points_host[b, :bucket], non_blocking=True)

    def voxel_outputs(self, b: int) -> dict[str, Any]:
        """The voxelizer's output pointers of lane ``b`` (keyword arguments of its ``enqueue*``), and
        where the batch of the last :meth:`enqueue_upload` reads mapped points, where its pass 1 reads
        the lane's pinned rows and count (:class:`~pointpillars_trt.voxelize.cuda.MappedPoints`)."""
        out: dict[str, Any] = {"num_points_out_ptr": tensor_ptr(self.num_points, b), "coords_ptr": tensor_ptr(self.coords, b),
                               "counters_ptr": self.counters_ptr(b), "num_points_ptr": tensor_ptr(self.n_dev, b)}
        if self._mapping:
            row = self.points_host.stride(0) * self.points_host.element_size()
            out["mapped"] = MappedPoints(self._points_mapped + b * row, self._n_mapped + b * self.n_host.element_size())
        return out

    def counters_ptr(self, b: int) -> int:
        return tensor_ptr(self.packed, b, self.layout.counters)

    def output_ptrs(self, b: int) -> dict[str, Any]:
        """The post-processor's output pointers of lane ``b`` (keyword arguments of its ``enqueue``): into the
        device row, or where the batch of the last :meth:`enqueue_upload` writes mapped rows, into the pinned
        host row, with the voxelizer's counters copied there from the device row by the same pass (``side``)."""
        lay = self.layout
        if not self._mapping_out:
            at = lambda word: tensor_ptr(self.packed, b, word)  # noqa: E731
            side = {}
        else:
            row = self._packed_mapped + b * self.packed_host.stride(0) * self.packed_host.element_size()
            at = lambda word: row + 4 * word  # noqa: E731
            side = {"side": SideCopy(self.counters_ptr(b), at(lay.counters), NUM_COUNTERS)}
        return {"boxes_ptr": at(lay.boxes), "scores_ptr": at(lay.scores), "labels_ptr": at(lay.labels),
                "count_ptr": at(lay.count), **side}

    def enqueue_download(self, batch: int) -> None:
        """The D2H copy of the first ``batch`` output rows (current stream); none where they were written
        straight into the pinned rows."""
        if not self._mapping_out:
            self.packed_host[:batch].copy_(self.packed[:batch], non_blocking=True)


__all__ = ["ALIGN_BYTES", "FrameBuffers", "PackedLayout", "PackedRows", "StagingRows", "aligned_count", "lane_tensor", "point_bucket",
           "maps_host_memory", "tensor_ptr"]
