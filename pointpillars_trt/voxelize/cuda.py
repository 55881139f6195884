"""Voxelization + decoration on the GPU (``kernels/voxelize.cu``), identical to the CPU reference.

:class:`CudaVoxelizer` turns float32 points ``[N, 4]`` already on the device into the PFN's
inputs, with every launch on the caller's stream and every count on the device:

* ``features`` float32 ``[max_pillars, M, 10]`` (rows ``>= P`` are left as they were),
* ``num_points`` int32 ``[max_pillars]`` (0 for rows ``>= P``, so a masked PFN ignores them),
* ``coords`` int32 ``[max_pillars, 2]`` ``(ix, iy)``,
* ``counters`` int32 ``[12]`` (:class:`VoxelCounters`: P, pillars found, out of range, dropped
  pillars, dropped points, excess points, N; rows holding NaN/inf and the finite rows' intensity
  range, which the host then need not check).

Results equal :class:`~pointpillars_trt.voxelize.NumbaVoxelizer`'s (the same range filter,
:mod:`~pointpillars_trt.voxelize.range_filter`): the same pillars in the same
(first-seen) order, the same first ``M`` points per pillar in input order, the same float32
decoration bit for bit. How, and what that determinism costs, is written at the top of
``voxelize.cu`` (four kernels: cells, a single-pass look-back scan that numbers the pillars and
places their buckets, the bucket scatter, the per-pillar decoration). The cell tables are set once
and put back by the last pass of each frame (no per-frame memset of ``nx * ny`` cells); on
compute capability 9.0+ the kernels can be launched programmatically (off by default: ``cuda/nvrtc.py``).

With ``num_points_ptr`` (an int32 on the device) instead of a host ``num_points``, grids are
sized for ``max_points`` and nothing depends on a host value: the launches can be captured in a
CUDA graph. With ``mapped`` (:class:`MappedPoints`, the device addresses of pinned host rows and
count), pass 1 reads the points and the count straight from host memory and writes the device
copies that the later passes read: no host-to-device copy before the voxelizer.
:meth:`CudaVoxelizer.enqueue_fused_pfn` additionally runs the PFN in the last pass and writes
pillar features straight into a BEV canvas (the ``[P, M, 10]`` tensor is never stored).

The cell table is sized from the config's grid, the point buffers from ``max_points``:
``N > max_points`` raises :class:`~pointpillars_trt.errors.ConfigError` (call
:meth:`CudaVoxelizer.reserve` to grow; that synchronizes the stream).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..config import VoxelConfig
from ..errors import ConfigError
from ..cuda.bindings import bindings, check
from ..cuda.device import CudaDevice, get_device
from ..cuda.memory import DeviceBuffer, stream_synchronize
from ..cuda.nvrtc import grid_for, i32, launch, load_kernels, ptr
from .range_filter import RULE_CODES

if TYPE_CHECKING:
    import torch

KERNEL_FILE = "voxelize.cu"
BLOCK = 256
TILE = 1024  # TILE_SIZE in voxelize.cu (pass 2's points per block)
WARPS_PER_BLOCK = 8
NUM_COUNTERS = 12  # int32 slots (voxelize.cu: 10 used, two spares keep rows 16-byte aligned)
MAX_POINTS_PER_PILLAR = 256  # shared memory: 8 warps * (16 M + max(8 M, 1280)) bytes <= 48 KiB
KERNELS = ("cells", "number", "bucket", "decorate", "decorate_pfn")  # pp_vox_<name>, in launch order
INT_MAX = 0x7FFFFFFF
#: slots of the counters that :class:`VoxelCounters` reads beyond its first seven (which are slots 0-6 in field
#: order), and those a frame's result reads: voxelize.cu's ``C_*`` enum
PILLARS, FOUND, DROPPED_PILLARS, DROPPED_POINTS, INPUT, NONFINITE, INTENSITY_MIN, INTENSITY_MAX = 0, 1, 3, 4, 6, 8, 9, 10
_INT2, _FLOAT2 = struct.Struct("<2i"), struct.Struct("<2f")  # made once: a frame's result decodes two keys


def keys_to_floats(lo: int, hi: int) -> tuple[float, float]:
    """Inverse of voxelize.cu's ``ordered_key`` (float bits as an order-preserving int32) of two keys."""
    return _FLOAT2.unpack(_INT2.pack(lo if lo >= 0 else lo ^ INT_MAX, hi if hi >= 0 else hi ^ INT_MAX))


@dataclass(frozen=True)
class VoxelCounters:
    """The device counters of one frame (names as in :class:`~pointpillars_trt.voxelize.Pillars`),
    plus what the GPU checks instead of the host: rows holding NaN/inf (also counted out of range)
    and the smallest / largest intensity of the finite rows (``intensity_min > intensity_max`` when
    there is none)."""

    num_pillars: int
    num_found: int
    num_out_of_range: int
    num_dropped_pillars: int
    num_dropped_points: int
    num_excess_points: int
    num_input: int
    num_nonfinite: int = 0
    intensity_min: float = float("inf")
    intensity_max: float = float("-inf")

    @classmethod
    def from_array(cls, counters: Sequence[int] | np.ndarray) -> "VoxelCounters":
        c = np.asarray(counters).reshape(-1)[:INTENSITY_MAX + 1].tolist()
        if len(c) <= INTENSITY_MAX:
            return cls(*c[:7])
        return cls(*c[:7], c[NONFINITE], *keys_to_floats(c[INTENSITY_MIN], c[INTENSITY_MAX]))

    @property
    def overflowed(self) -> bool:
        return self.num_dropped_pillars > 0


def _f32(v: float) -> np.float32:
    return np.float32(v)


@dataclass(frozen=True)
class MappedPoints:
    """Where pass 1 reads a frame from pinned host memory: the device addresses
    (:func:`~pointpillars_trt.cuda.memory.mapped_pointer`) of its float32 ``[N, 4]`` rows (16-byte
    aligned) and of its int32 count."""

    points_ptr: int
    num_points_ptr: int


class CudaVoxelizer:
    """Owns the workspace (cell table from the config grid, point buffers for ``max_points``).

    Calls on one instance must be serialized on one stream (the workspace is shared); outputs
    are the caller's buffers, so several frames (a batch) can be voxelized one after another.
    """

    def __init__(self, cfg: VoxelConfig, max_points: int, max_pillars: int | None = None, device: int | CudaDevice = 0) -> None:
        self.cfg = cfg
        self.device = device if isinstance(device, CudaDevice) else get_device(device)
        self.max_pillars = int(max_pillars or cfg.max_pillars)
        self.max_points_per_pillar = int(cfg.max_points_per_pillar)
        if not 1 <= self.max_points_per_pillar <= MAX_POINTS_PER_PILLAR:
            raise ConfigError(f"CudaVoxelizer: max_points_per_pillar must be 1..{MAX_POINTS_PER_PILLAR}, got {self.max_points_per_pillar}")
        if self.max_pillars < 1:
            raise ConfigError(f"CudaVoxelizer: max_pillars must be >= 1, got {self.max_pillars}")
        self.nx, self.ny, self.nz = cfg.grid_size
        if self.nx * self.ny >= 2**31:
            raise ConfigError(f"CudaVoxelizer: grid {self.nx}x{self.ny} has too many cells for int32 indices")
        r, v = cfg.point_cloud_range, cfg.voxel_size
        self._geometry = tuple(_f32(x) for x in (r[0], r[1], r[2], v[0], v[1], v[2]))
        self._range_rule = (*(_f32(x) for x in r[3:]), i32(RULE_CODES[cfg.range_filter]))
        module = load_kernels(KERNEL_FILE, self.device)
        self._fn = {name: module.function(f"pp_vox_{name}") for name in KERNELS}
        self._max_blocks = self.device.info.multiprocessor_count * (2048 // BLOCK)
        self._cell_first = DeviceBuffer(self.nx * self.ny * 4, self.device)
        self._cell_count = DeviceBuffer(self.nx * self.ny * 4, self.device)
        self._table_clean = False  # True while the cell tables hold INT_MAX / 0 everywhere (pass 4 restores them)
        self._pillar_count = DeviceBuffer(self.max_pillars * 4, self.device)
        self._pillar_offset = DeviceBuffer(self.max_pillars * 4, self.device)
        self.max_points = 0
        self._point_bufs: dict[str, DeviceBuffer] = {}
        self.reserve(max_points, stream=0)

    # ---- capacity ----------------------------------------------------------------------------
    def reserve(self, max_points: int, stream: int = 0) -> bool:
        """Make room for ``max_points`` points; returns True when buffers were reallocated (the
        stream is synchronized first, and pointers captured in a graph become invalid)."""
        n = int(max_points)
        if n <= self.max_points:
            return False
        if n >= 2**31 - 1 - TILE:  # pass 2's point indices of its last tile stay int32
            raise ConfigError(f"CudaVoxelizer: {n} points exceed int32 indices")
        if self._point_bufs:
            stream_synchronize(stream)
            for b in self._point_bufs.values():
                b.free()
        self.max_points = n
        tiles = self.num_tiles(n)
        self._point_bufs = {
            "point_cell": DeviceBuffer(n * 4, self.device),
            "point_slot": DeviceBuffer(n * 4, self.device),
            "bucket": DeviceBuffer(n * 4, self.device),
            "tile_status": DeviceBuffer((tiles + 1) * 8, self.device),  # uint64 per tile, then the ticket
        }
        return True

    @staticmethod
    def num_tiles(n: int) -> int:
        return max(1, -(-int(n) // TILE))

    @property
    def features_shape(self) -> tuple[int, int, int]:
        return (self.max_pillars, self.max_points_per_pillar, 10)

    @property
    def shared_bytes(self) -> int:
        """Pass 4's dynamic shared memory: per warp ``M`` float4 points and a scratch area of
        ``max(8 M, 1280)`` bytes rounded up to 16 (voxelize.cu: ``pillar_smem``)."""
        m = self.max_points_per_pillar
        return WARPS_PER_BLOCK * (16 * m + (max(8 * m, 1280) + 15) // 16 * 16)

    # ---- launches ----------------------------------------------------------------------------
    def _group(self, points_ptr: int, stream: int, num_points: int | None, num_points_ptr: int,
               num_points_out_ptr: int, coords_ptr: int, counters_ptr: int, num_points_bound: int | None = None,
               canvas: tuple[int, bool, bool, int] | None = None, mapped: MappedPoints | None = None) -> None:
        """Passes 1-3 (``canvas``: ``(channels, nhwc, half, pointer)`` of the fused form, whose cells of
        the previous frame pass 1 zeroes; ``mapped``: pass 1 reads the frame there and writes it to
        ``points_ptr`` and ``num_points_ptr``)."""
        if int(points_ptr) % 16 or (mapped is not None and int(mapped.points_ptr) % 16):
            raise ValueError("CudaVoxelizer: points must be 16-byte aligned float32 [N, 4] rows")
        if num_points is None and not num_points_ptr:
            raise ValueError("CudaVoxelizer: give num_points (host) or num_points_ptr (device int32)")
        if mapped is not None and num_points is not None:
            raise ValueError("CudaVoxelizer: mapped points take their count from mapped.num_points_ptr, not num_points")
        if num_points is not None:
            n_host = int(num_points)
            if n_host > self.max_points:
                raise ConfigError(f"CudaVoxelizer: {n_host} points exceed its capacity of {self.max_points} (call reserve())")
            n_dev, work = 0, n_host
        else:
            bound = self.max_points if num_points_bound is None else int(num_points_bound)
            if not 1 <= bound <= self.max_points:
                raise ConfigError(f"CudaVoxelizer: num_points_bound {bound} must be 1..{self.max_points}")
            n_host, n_dev, work = 0, int(num_points_ptr), bound
        b = self._point_bufs
        cap = work if num_points is None else self.max_points  # the device count is clamped to cap
        tiles = self.num_tiles(work)
        nn = (i32(n_host), ptr(n_dev), i32(cap))
        self.device.make_current()
        if not self._table_clean:  # first frame, or a frame whose last pass was never enqueued
            drv = bindings()[0]
            for table, value in ((self._cell_first, INT_MAX), (self._cell_count, 0)):
                check(drv.cuMemsetD32Async(drv.CUdeviceptr(table.ptr), value, self.nx * self.ny, drv.CUstream(int(stream))), "cuMemsetD32Async")
        self._table_clean = False  # until pass 4 is enqueued
        g = grid_for(work, BLOCK, self._max_blocks)
        c, nhwc, half, canvas_ptr = canvas or (0, False, False, 0)
        g1 = max(g, grid_for(self.max_pillars * c, BLOCK, self._max_blocks)) if canvas else g
        tables = (ptr(self._cell_first.ptr), ptr(self._cell_count.ptr))
        # pass 1 reads the frame (mapped: from host memory, copying it to the device buffers the later passes read)
        src, nn1, copies = (points_ptr, nn, (0, 0)) if mapped is None else \
            (mapped.points_ptr, (i32(0), ptr(mapped.num_points_ptr), i32(cap)), (points_ptr, num_points_ptr))
        launch(self._fn["cells"], g1, BLOCK, (ptr(src), *nn1, *self._geometry, i32(self.nx), i32(self.ny), i32(self.nz),
                                              *self._range_rule, ptr(b["point_cell"].ptr), ptr(b["point_slot"].ptr), *tables,
                                              ptr(b["tile_status"].ptr), i32(tiles), ptr(counters_ptr),
                                              ptr(coords_ptr), i32(c), i32(int(nhwc)), i32(int(half)), ptr(canvas_ptr),
                                              ptr(copies[0]), ptr(copies[1])),
               stream)
        launch(self._fn["number"], tiles, BLOCK, (ptr(points_ptr), *nn, i32(self.max_pillars), i32(self.max_points_per_pillar),
                                                  i32(self.nx), ptr(b["point_cell"].ptr), *tables, ptr(b["tile_status"].ptr),
                                                  ptr(coords_ptr), ptr(self._pillar_count.ptr), ptr(self._pillar_offset.ptr),
                                                  ptr(num_points_out_ptr), ptr(counters_ptr)), stream)
        launch(self._fn["bucket"], max(g, grid_for(self.max_pillars, BLOCK, self._max_blocks)), BLOCK,
               (*nn, i32(self.max_pillars), ptr(b["point_cell"].ptr), ptr(b["point_slot"].ptr), *tables, ptr(counters_ptr),
                ptr(b["bucket"].ptr), ptr(num_points_out_ptr)), stream)

    def _pillar_grid(self, num_points: int | None) -> int:
        # P <= min(max_pillars, N): one warp per pillar, grid-stride beyond that
        bound = self.max_pillars if num_points is None else max(1, min(self.max_pillars, int(num_points)))
        return grid_for(bound, WARPS_PER_BLOCK, self._max_blocks)  # one wave of 8-warp blocks

    def _pillar_args(self, points_ptr: int, coords_ptr: int, counters_ptr: int) -> tuple:
        return (ptr(points_ptr), i32(self.max_points_per_pillar), *self._geometry, ptr(self._pillar_count.ptr),
                ptr(self._pillar_offset.ptr), ptr(self._point_bufs["bucket"].ptr), ptr(coords_ptr), ptr(counters_ptr),
                ptr(self._cell_first.ptr), ptr(self._cell_count.ptr), i32(self.nx), i32(self.nx * self.ny))

    def enqueue(self, points_ptr: int, stream: int, *, features_ptr: int, num_points_out_ptr: int, coords_ptr: int,
                counters_ptr: int, num_points: int | None = None, num_points_ptr: int = 0,
                num_points_bound: int | None = None, mapped: MappedPoints | None = None) -> None:
        """Voxelize and decorate on ``stream``. Pointers: ``points`` float32 ``[N, 4]``; outputs
        as in the module docstring. ``num_points`` (host) or ``num_points_ptr`` (device int32, with
        ``num_points_bound`` an upper bound that sizes the grids: at most ``max_points``; a device
        count above it is clamped to it). ``mapped``: the frame is read from pinned host memory
        (:class:`MappedPoints`) and ``points`` / ``num_points_ptr`` receive its device copy."""
        self._group(points_ptr, stream, num_points, num_points_ptr, num_points_out_ptr, coords_ptr, counters_ptr, num_points_bound,
                    mapped=mapped)
        launch(self._fn["decorate"], self._pillar_grid(num_points), BLOCK,
               (*self._pillar_args(points_ptr, coords_ptr, counters_ptr), ptr(features_ptr)), stream, shared_mem=self.shared_bytes)
        self._table_clean = True

    def enqueue_fused_pfn(self, points_ptr: int, stream: int, *, num_points_out_ptr: int, coords_ptr: int, counters_ptr: int,
                          weight_ptr: int, scale_ptr: int, shift_ptr: int, channels: int, canvas_ptr: int,
                          nhwc: bool = False, half: bool = False, num_points: int | None = None, num_points_ptr: int = 0,
                          num_points_bound: int | None = None, mapped: MappedPoints | None = None) -> None:
        """Voxelize, decorate, run the PFN (``weight`` float32 ``[C, 10]``, eval-mode BatchNorm as
        ``scale``/``shift`` float32 ``[C]``) and store each pillar's ``[C]`` feature in
        ``canvas`` (``[C, ny, nx]``, or ``[ny, nx, C]`` with ``nhwc``; float16 with ``half``).

        The cells of the previous frame are cleared first (by pass 1), from ``coords``/``counters`` as that
        frame left them: use the same ``coords``/``counters`` buffers for the same canvas, and
        zero the canvas once when it is allocated. ``mapped``: as in :meth:`enqueue`.
        """
        c = int(channels)
        self._group(points_ptr, stream, num_points, num_points_ptr, num_points_out_ptr, coords_ptr, counters_ptr, num_points_bound,
                    canvas=(c, bool(nhwc), bool(half), int(canvas_ptr)), mapped=mapped)
        launch(self._fn["decorate_pfn"], self._pillar_grid(num_points), BLOCK,
               (*self._pillar_args(points_ptr, coords_ptr, counters_ptr), ptr(weight_ptr), ptr(scale_ptr), ptr(shift_ptr),
                i32(c), i32(self.nx), i32(self.ny), i32(int(nhwc)), i32(int(half)), ptr(canvas_ptr)), stream,
               shared_mem=self.shared_bytes)
        self._table_clean = True

    def free(self) -> None:
        for b in (self._cell_first, self._cell_count, self._pillar_count, self._pillar_offset, *self._point_bufs.values()):
            b.free()


# ---- torch convenience ---------------------------------------------------------------------------
@dataclass
class TorchPillarBuffers:
    """Output tensors of one frame (full size; ``counters[PILLARS]`` is P, on the device)."""

    features: "torch.Tensor"  # [max_pillars, M, 10] float32
    num_points: "torch.Tensor"  # [max_pillars] int32
    coords: "torch.Tensor"  # [max_pillars, 2] int32
    counters: "torch.Tensor"  # [NUM_COUNTERS] int32, slots as voxelize.cu's C_* enum (PILLARS, ... above)

    @classmethod
    def allocate(cls, vox: CudaVoxelizer, device: "torch.device | str" = "cuda") -> "TorchPillarBuffers":
        import torch

        return cls(
            torch.zeros(vox.features_shape, dtype=torch.float32, device=device),
            torch.zeros(vox.max_pillars, dtype=torch.int32, device=device),
            torch.zeros((vox.max_pillars, 2), dtype=torch.int32, device=device),
            torch.zeros(NUM_COUNTERS, dtype=torch.int32, device=device),
        )

    def to_pillars(self):
        """Synchronize and return the CPU :class:`~pointpillars_trt.voxelize.Pillars` of the frame."""
        from .pillars import Pillars

        c = VoxelCounters.from_array(self.counters.cpu().numpy())
        p = c.num_pillars
        return Pillars(self.features[:p].cpu().numpy(), self.num_points[:p].cpu().numpy(), self.coords[:p].cpu().numpy(),
                       c.num_input, c.num_out_of_range, c.num_dropped_pillars, c.num_dropped_points, c.num_excess_points)


def voxelize_torch(points: "torch.Tensor", vox: CudaVoxelizer, out: TorchPillarBuffers | None = None) -> TorchPillarBuffers:
    """Voxelize CUDA float32 ``points [N, 4]`` on torch's current stream (no synchronization)."""
    import torch

    if not points.is_cuda or points.dtype != torch.float32 or points.dim() != 2 or points.shape[1] != 4:
        raise ValueError(f"voxelize_torch: expected CUDA float32 [N, 4] points, got {points.dtype} {tuple(points.shape)} on {points.device}")
    pts = points.contiguous()
    n = int(pts.shape[0])
    if n > vox.max_points:
        vox.reserve(n, torch.cuda.current_stream(pts.device).cuda_stream)
    out = out or TorchPillarBuffers.allocate(vox, pts.device)
    stream = torch.cuda.current_stream(pts.device).cuda_stream
    vox.enqueue(pts.data_ptr() if n else out.features.data_ptr(), stream, features_ptr=out.features.data_ptr(),
                num_points_out_ptr=out.num_points.data_ptr(), coords_ptr=out.coords.data_ptr(),
                counters_ptr=out.counters.data_ptr(), num_points=n)
    return out


__all__ = ["CudaVoxelizer", "MappedPoints", "TorchPillarBuffers", "VoxelCounters", "voxelize_torch", "NUM_COUNTERS"]
