"""Post-processing on the GPU (``kernels/postprocess.cu``): head maps -> fixed-size boxes + count.

:class:`CudaPostProcessor` does what :class:`~pointpillars_trt.postprocess.PostProcessor` does
(candidate selection in either pre-NMS order with either score rule, exact stable
top-``nms_pre_max``, decoding, direction, canonical boxes, rotated BEV NMS with the exact polygon
IoU and either suppression rule, class-agnostic or class-aware, source or canonical yaw: every
mode of the config's ``postprocess`` section) with every
launch on the caller's stream and every count on the device, so it can be captured in a CUDA
graph. Outputs (the caller's buffers): ``boxes`` float32 ``[post_max, 7]``, ``scores`` float32
``[post_max]``, ``labels`` int32 ``[post_max]`` (rows ``>= count`` are zero / -1) and ``count``
int32 ``[1]``.

Inputs are the float32 head maps of one frame ``cls [A*K, H, W]``, ``box [A*7, H, W]``,
``dir [A*D, H, W]`` (batch item ``b`` of a ``[B, ...]`` tensor: offset the pointers).
The pass structure and the tie rules are described at the top of ``postprocess.cu``.
``nms_pre_max`` is limited to 16384 (the top-k is sorted in one block's shared memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..config import Comparison, PointPillarsConfig, PreNmsOrder, YawRange
from ..errors import ConfigError
from .anchors import generate_anchors
from ..cuda.bindings import bindings, check
from ..cuda.device import CudaDevice, get_device
from ..cuda.memory import DeviceBuffer, copy_h2d_async, stream_synchronize
from ..cuda.nvrtc import grid_for, i32, launch, load_kernels, ptr

if TYPE_CHECKING:
    import torch

KERNEL_FILE = "postprocess.cu"
OPTIONS = ("--std=c++17", "--fmad=false")
HBINS, LBINS = 4096, 256
TILE = 2048
MAX_PRE = 16384
NUM_STATE = 16
RANK_THREADS, RANK_CANDS = 256, 64  # postprocess.cu: pp_post_rank's threads and candidates per block
MASK_TILE = 64  # nms_mask tiles are 64 rows x one 64-bit word of the suppression matrix (postprocess.cu)
SCAN_SHARED_LIMIT = 48 * 1024  # shared memory without opt-in; the scan keeps the matrix's diagonal and superdiagonal
#                                blocks in shared memory up to the device's opt-in limit


def _pow2(n: int) -> int:
    return 1 << max(1, (int(n) - 1).bit_length())


def mask_tiles(n: int) -> int:
    """Tiles of ``pp_post_nms_mask`` for a list of ``n`` candidates: the 64 x 64 blocks of the
    suppression matrix on and above its diagonal, ``w (w + 1) / 2`` for ``w = ceil(n / 64)``."""
    w = -(-int(n) // MASK_TILE)
    return w * (w + 1) // 2


LANE_ALIGN = 256  # bytes: every workspace buffer of a lane starts on this boundary (cuMemAlloc's own alignment)


def lane_layout(sizes: dict[str, int]) -> tuple[dict[str, int], int]:
    """``(offsets, lane_bytes)``: the byte offset of each buffer of ``sizes`` (bytes, in their order) in one
    lane's block, each aligned to :data:`LANE_ALIGN`, and the block's size (a multiple of it).

    >>> lane_layout({"a": 10, "b": 256, "c": 1})
    ({'a': 0, 'b': 256, 'c': 512}, 768)
    """
    offsets, at = {}, 0
    for name, n in sizes.items():
        offsets[name] = at
        at += -(-max(int(n), 1) // LANE_ALIGN) * LANE_ALIGN
    return offsets, at


@dataclass(frozen=True)
class LaneStrides:
    """Bytes between consecutive frames' head maps (``cls``, ``box``, ``dir``: the batch stride of each
    map's tensor) and output rows (``out``) for :meth:`CudaPostProcessor.enqueue` of several frames."""

    cls: int
    box: int
    dir: int
    out: int


@dataclass(frozen=True)
class SideCopy:
    """``words`` int32 that the last pass copies from ``src`` to ``dst`` (device pointers; with lanes both
    move by ``strides.out`` per frame) after writing its outputs: where the outputs go straight into mapped
    host memory, the words of the same row that other stages wrote on the device (the voxelizer's counters)."""

    src: int
    dst: int
    words: int


class CudaPostProcessor:
    """Owns the anchors (uploaded once) and the workspace; serialize calls on one stream.

    Frames post-processed concurrently (on different streams) need one instance each;
    ``anchors_from`` lets such instances share the first one's anchors (same config). With ``lanes=B``
    (the kernels compiled with ``-DPP_POST_LANES``) one instance holds B workspaces and post-processes up
    to B frames with one launch per pass (``enqueue(..., frames=n, strides=LaneStrides(...))``): the same
    results, frame by frame, as B instances.
    """

    def __init__(self, cfg: PointPillarsConfig, device: int | CudaDevice = 0, anchors_from: "CudaPostProcessor | None" = None,
                 lanes: int | None = None) -> None:
        if lanes is not None and (int(lanes) != lanes or lanes < 1):
            raise ConfigError(f"CudaPostProcessor: lanes must be a whole number >= 1 (or None), got {lanes!r}")
        self.lanes = None if lanes is None else int(lanes)
        self.cfg = cfg
        pp, h = cfg.postprocess, cfg.head
        self.device = device if isinstance(device, CudaDevice) else get_device(device)
        self.W, self.H = cfg.feature_map_size
        self.A, self.K, self.D = cfg.num_anchors_per_location, cfg.num_classes, h.num_dir_bins
        self.HW = self.H * self.W
        self.R = self.HW * self.A
        self.pre_max = int(min(pp.nms_pre_max, self.R))
        self.post_max = int(pp.nms_post_max)
        if not 1 <= self.pre_max <= MAX_PRE:
            raise ConfigError(f"CudaPostProcessor: nms_pre_max must be 1..{MAX_PRE}, got {pp.nms_pre_max}")
        if self.post_max < 1:
            raise ConfigError(f"CudaPostProcessor: nms_post_max must be >= 1, got {self.post_max}")
        self.agnostic = bool(pp.class_agnostic_nms)
        self._filter_first = i32(int(pp.pre_nms_order == PreNmsOrder.THRESHOLD_THEN_TOPK))
        self._score_at_least = i32(int(pp.score_rule == Comparison.AT_LEAST))
        self._nms_at_least = i32(int(pp.nms_suppress_rule == Comparison.AT_LEAST))
        self._yaw = (i32(int(pp.yaw_range == YawRange.CANONICAL)), np.float32(np.pi), np.float32(2.0 * np.pi))
        self.groups = 1 if self.agnostic else self.K
        self.words = -(-self.pre_max // 64)
        self.sort_size = _pow2(self.pre_max)
        module = load_kernels(KERNEL_FILE, self.device, OPTIONS + (("-DPP_POST_LANES",) if self.lanes else ()))
        self._fn = {n: module.function(f"pp_post_{n}") for n in
                    ("score", "hist2", "hist3", "sel_count", "sel_write", "rank", "decode_agnostic", "sort_decode", "nms_mask",
                     "nms_scan", "output")}
        for name, nbytes in (("sort_decode", self.sort_size * 8), ("rank", self.pre_max * 8)):
            if nbytes > 48 * 1024:
                drv = bindings()[0]
                check(drv.cuFuncSetAttribute(self._fn[name], drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                             nbytes), f"cuFuncSetAttribute({name}: max dynamic shared memory)")
        band_bytes = 2 * self.words * 64 * 8  # the matrix's diagonal and superdiagonal blocks
        limit = max(SCAN_SHARED_LIMIT, self.device.info.max_shared_per_block_optin - 1024)  # 1 KiB: the kernel's static arrays
        self._diag_in_shared = self.words * 8 + band_bytes <= limit
        self._scan_shared = self.words * 8 + (band_bytes if self._diag_in_shared else 0)
        if self._scan_shared > SCAN_SHARED_LIMIT:
            drv = bindings()[0]
            check(drv.cuFuncSetAttribute(self._fn["nms_scan"], drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                         self._scan_shared), "cuFuncSetAttribute(max dynamic shared memory)")
        sms = self.device.info.multiprocessor_count
        self._hist_grid = grid_for(self.R, 256, sms * 2)
        # nms_mask: blocks per list that take its tiles on and above the diagonal in turn (the kernel reads
        # the count), as many as the multiprocessors hold at once (its registers allow 2 blocks of 256
        # threads on sm_90; more would only queue in waves), never more than the tiles of pre_max
        self._mask_blocks = min(mask_tiles(self.pre_max), sms * module.resident_blocks("pp_post_nms_mask", 256))
        self._tiles = max(1, -(-self.R // TILE))
        k, g = self.pre_max, self.groups
        sizes = {
            "keys": self.R * 4, "hist": (2 * HBINS + LBINS) * 4, "state": NUM_STATE * 4,
            "tile_gt": self._tiles * 4, "tile_eq": self._tiles * 4, "sel_idx": k * 4, "sorted": k * 8, "cand": k * 4,
            "dec_boxes": k * 7 * 4, "dec_score": k * 4, "dec_label": k * 4, "probs": k * self.K * 4,
            "group_list": g * k * 4, "group_count": g * 4, "mask": g * k * self.words * 8,
            "keep": g * self.post_max * 4, "keep_count": g * 4,
        }
        self._offsets, self.lane_bytes = lane_layout(sizes)
        self._slab = DeviceBuffer(self.lane_bytes * (self.lanes or 1), self.device)  # one block of buffers per lane
        self._slab.memset_async(0)
        self._hist_clean = True  # every lane's histograms are zero: pp_post_rank clears them after their last reader
        self._owns_anchors = anchors_from is None
        if anchors_from is not None:
            if anchors_from.cfg != cfg:
                raise ConfigError("CudaPostProcessor: anchors_from was built for another config")
            self._anchors = anchors_from._anchors
        else:
            anchors = np.ascontiguousarray(generate_anchors(cfg).reshape(-1, 7), dtype=np.float32)
            self._anchors = DeviceBuffer(anchors.nbytes, self.device)
            copy_h2d_async(self._anchors.ptr, anchors.ctypes.data, anchors.nbytes, 0)
        stream_synchronize(0)
        self._decode_args = (
            np.float32(h.dir_offset), np.float32(h.dir_limit_offset), np.float32(2.0 * np.pi / h.num_dir_bins),
            np.float32(np.pi / 2), i32(h.num_dir_bins), i32(int(h.box_layout == "wlh_cw")),
        )

    def enqueue(self, cls_ptr: int, box_ptr: int, dir_ptr: int, stream: int, *, boxes_ptr: int, scores_ptr: int,
                labels_ptr: int, count_ptr: int, score_threshold: float | None = None,
                layout: tuple[int, int, bool] | None = None, frames: int = 1,
                strides: LaneStrides | None = None, side: SideCopy | None = None) -> None:
        """Post-process one frame's head maps on ``stream`` into the caller's output buffers; with
        ``lanes`` (the constructor's), ``frames`` of them in one launch per pass: frame ``f``'s maps
        and outputs lie ``f * strides.<name>`` bytes after the pointers given (``frames <= lanes``).

        ``layout = (channel_stride, pixel_stride, half)`` in elements: where element (channel c,
        pixel y * W + x) of each map lies, and whether the maps hold float16. Default: float32 NCHW
        planes, ``(H * W, 1, False)``; channel slices of one NHWC tensor with C channels in all are
        ``(1, C, half)``. ``side``: words the last pass copies along with the outputs (:class:`SideCopy`).

        The histograms are zeroed by a memset only where the previous chain did not reach
        ``pp_post_rank``, which clears them (the first frame, or an enqueue that failed part way): a captured
        chain has no memset node.
        """
        n = int(frames)
        if not 1 <= n <= (self.lanes or 1) or (self.lanes is not None) != (strides is not None):
            raise ConfigError(f"CudaPostProcessor.enqueue: {n} frames (lanes {self.lanes}, strides "
                              f"{'given' if strides is not None else 'missing'}): more than one frame needs lanes and strides")
        cs, ps, half = layout if layout is not None else (self.HW, 1, False)
        lay = (i32(cs), i32(ps), i32(int(bool(half))))
        b = {name: self._slab.ptr + off for name, off in self._offsets.items()}
        thr = np.float32(self.cfg.postprocess.score_threshold if score_threshold is None else score_threshold)
        k = i32(self.pre_max)
        lane = () if strides is None else (np.int64(self.lane_bytes), np.int64(strides.cls), np.int64(strides.box),
                                           np.int64(strides.dir), np.int64(strides.out), i32(self.groups))
        drv = bindings()[0]
        self.device.make_current()
        hist1, hist2, hist3 = b["hist"], b["hist"] + HBINS * 4, b["hist"] + 2 * HBINS * 4
        if not self._hist_clean:  # every lane's histograms, one row each, rows lane_bytes apart (one lane: a single row)
            lanes = self.lanes or 1
            check(drv.cuMemsetD2D32Async(drv.CUdeviceptr(b["hist"]), self.lane_bytes, 0, 2 * HBINS + LBINS, lanes,
                                         drv.CUstream(int(stream))), "cuMemsetD2D32Async")
        self._hist_clean = False  # until pp_post_rank is enqueued

        def run(name: str, grid, block: int, args: tuple, **kw) -> None:
            g = (grid, 1, 1) if isinstance(grid, int) else grid
            launch(self._fn[name], (g[0], g[1], g[2] * n), block, (*args, *lane), stream, **kw)

        run("score", self._hist_grid, 256,
            (ptr(cls_ptr), *lay, i32(self.HW), i32(self.A), i32(self.K), self._filter_first, self._score_at_least, thr,
             ptr(b["keys"]), ptr(hist1)))
        run("hist2", self._hist_grid, 256, (i32(self.R), k, ptr(b["keys"]), ptr(hist1), ptr(hist2), ptr(b["state"])))
        run("hist3", self._hist_grid, 256, (i32(self.R), k, ptr(b["keys"]), ptr(hist2), ptr(hist3), ptr(b["state"])))
        run("sel_count", self._tiles, 256,
            (i32(self.R), k, ptr(b["keys"]), ptr(hist3), ptr(b["tile_gt"]), ptr(b["tile_eq"]), ptr(b["state"])))
        run("sel_write", self._tiles, 256,
            (i32(self.R), i32(self._tiles), ptr(b["keys"]), ptr(b["tile_gt"]), ptr(b["tile_eq"]), ptr(b["sel_idx"]), ptr(b["state"])))
        run("rank", -(-self.pre_max // RANK_CANDS), RANK_THREADS,
            (ptr(b["keys"]), ptr(b["sel_idx"]), ptr(b["state"]), ptr(b["sorted"]), ptr(b["hist"]), ptr(b["group_count"])),
            shared_mem=self.pre_max * 8)
        self._hist_clean = True
        head = (ptr(cls_ptr), ptr(box_ptr), ptr(dir_ptr), *lay, ptr(self._anchors.ptr), i32(self.HW), i32(self.A), i32(self.K))
        if self.agnostic:  # one thread per candidate; the NMS list is a prefix of the rank order
            run("decode_agnostic", -(-self.pre_max // 256), 256,
                (*head, self._score_at_least, thr, *self._decode_args, ptr(b["sorted"]), ptr(b["state"]), ptr(b["cand"]),
                 ptr(b["dec_boxes"]), ptr(b["dec_score"]), ptr(b["dec_label"]), ptr(b["group_list"]), ptr(b["group_count"])))
        else:  # one block: per-class lists sorted by probability
            run("sort_decode", 1, 1024,
                (*head, i32(self.sort_size), self._score_at_least, thr, *self._decode_args, ptr(b["sorted"]), ptr(b["state"]),
                 ptr(b["cand"]), ptr(b["dec_boxes"]), ptr(b["dec_score"]), ptr(b["dec_label"]), ptr(b["probs"]),
                 ptr(b["group_list"]), ptr(b["group_count"]), k),
                shared_mem=self.sort_size * 8)
        run("nms_mask", (self._mask_blocks, 1, self.groups), 256,
            (ptr(b["dec_boxes"]), ptr(b["group_list"]), ptr(b["group_count"]), k, i32(self.words),
             np.float64(self.cfg.postprocess.nms_iou_threshold), self._nms_at_least, ptr(b["mask"])))
        run("nms_scan", self.groups, 256,
            (ptr(b["mask"]), ptr(b["group_count"]), k, i32(self.words), i32(self.post_max), i32(int(self._diag_in_shared)),
             ptr(b["keep"]), ptr(b["keep_count"])),
            shared_mem=self._scan_shared)
        run("output", 1, 256,
            (i32(int(self.agnostic)), i32(self.K), i32(self.post_max), k, *self._yaw, ptr(b["dec_boxes"]), ptr(b["dec_score"]),
             ptr(b["dec_label"]), ptr(b["probs"]), ptr(b["group_list"]), ptr(b["keep"]), ptr(b["keep_count"]),
             ptr(boxes_ptr), ptr(scores_ptr), ptr(labels_ptr), ptr(count_ptr),
             *((ptr(side.src), ptr(side.dst), i32(side.words)) if side is not None else (ptr(0), ptr(0), i32(0)))))

    def free(self) -> None:
        for buf in (self._slab, *((self._anchors,) if self._owns_anchors else ())):
            buf.free()


def postprocess_torch(pp: CudaPostProcessor, cls: "torch.Tensor", box: "torch.Tensor", dirs: "torch.Tensor",
                      score_threshold: float | None = None):
    """Post-process CUDA head maps ``[1, C, H, W]`` (cast to contiguous float32) on torch's current
    stream; returns ``(boxes [post_max, 7], scores [post_max], labels [post_max] int32, count [1])``
    on the device (no synchronization)."""
    import torch

    maps = [t.detach().float().contiguous() for t in (cls, box, dirs)]
    for t in maps:
        if not t.is_cuda or t.dim() != 4 or t.shape[0] != 1:
            raise ValueError(f"postprocess_torch: expected CUDA [1, C, H, W] maps, got {tuple(t.shape)} on {t.device}")
    dev = maps[0].device
    boxes = torch.zeros((pp.post_max, 7), dtype=torch.float32, device=dev)
    scores = torch.zeros(pp.post_max, dtype=torch.float32, device=dev)
    labels = torch.zeros(pp.post_max, dtype=torch.int32, device=dev)
    count = torch.zeros(1, dtype=torch.int32, device=dev)
    pp.enqueue(maps[0].data_ptr(), maps[1].data_ptr(), maps[2].data_ptr(), torch.cuda.current_stream(dev).cuda_stream,
               boxes_ptr=boxes.data_ptr(), scores_ptr=scores.data_ptr(), labels_ptr=labels.data_ptr(),
               count_ptr=count.data_ptr(), score_threshold=score_threshold)
    return boxes, scores, labels, count


__all__ = ["CudaPostProcessor", "LaneStrides", "SideCopy", "lane_layout", "postprocess_torch", "MAX_PRE"]
