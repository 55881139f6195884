"""The whole frame on the GPU, optionally as one CUDA graph: points in (host) -> boxes out (host).

Per frame, all on one stream (the frames of a batch: one stream each for voxelization and
post-processing), no host round trip between stages:

1. H2D copy of the points from a pinned staging buffer into a static device buffer (the copy
   covers a size *bucket* >= N; N itself is copied to the device as an int32);
2. voxelization + decoration (``kernels/voxelize.cu``), counts on the device;
3. PFN: ``pfn="fused"`` runs it inside the last voxelization pass and writes pillar features
   straight into the BEV canvas (our kernel, float32 math); ``pfn="torch"`` runs the torch PFN
   (cuBLAS) on all ``max_pillars`` rows (rows ``>= P`` have ``num_points == 0`` and are masked)
   and scatters with :meth:`~pointpillars_trt.network.cuda_scatter.CudaScatter.scatter_device_count`;
4. RPN in torch (cuDNN), float32 or float16 (float16 weights and canvas, float32 accumulation in
   cuDNN), channels_last by default in float16. ``rpn="fused"`` (default) runs
   :class:`~pointpillars_trt.model.inference_rpn.InferenceRPN`: BatchNorm folded, each convolution
   (the upsampling ones too) with its bias and ReLU in one cuDNN call, the three heads as one
   convolution whose output the post-processing reads in place (float16, NHWC; no cast);
   ``"fused-deconv"`` the same with the upsampling as transposed convolutions + ReLU + cat;
   ``"folded"`` only folds BatchNorm (separate bias / ReLU kernels); ``"plain"`` is the module as
   trained;
5. post-processing (``kernels/postprocess.cu``) into a fixed-size packed output;
6. one D2H copy of the packed output (boxes, scores, labels, count, voxelizer counters).

With ``engine_dir`` (:meth:`GpuDetector.from_engine_dir`), steps 3-4 are the TensorRT engines
of ``export/build_engines.py`` around our scatter (:class:`EngineStages`); everything else is the same.

With ``use_graph=True`` the sequence is captured once per (batch size, point bucket) into a
``torch.cuda.CUDAGraph`` and replayed; only the host staging, one replay and one event wait
remain per frame. In graph mode only end-to-end timings exist (``timings_ms``: ``gpu`` from CUDA
events around the replay, ``total`` host to host); without a graph every stage is timed with
CUDA events.

``N > max_points``: ``on_points_overflow="grow"`` reallocates the point buffers (and drops the
captured graphs, which are recaptured on the next frame; a one-off cost of milliseconds);
``"error"`` raises :class:`~pointpillars_trt.errors.PointCloudError`.

``precision="fp32"`` disables TF32 in cuDNN and cuBLAS (a process-wide torch setting) so that
float32 results match the CPU pipeline; ``"fp16"`` leaves those settings alone.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .config import PointPillarsConfig
from .detector import (
    OVERFLOW_POLICIES, DetectorBase, Detections, ModelSource, empty_detections, PillarOverflowWarning, artifact_config, resolve_weights,
)
from .errors import BackendUnavailableError, ConfigError, PillarOverflowError, PointCloudError
from .io.pointcloud import validate_points
from .network import torch_cuda as _torch_cuda  # noqa: F401  (registers the "torch_cuda" backend)

PRECISIONS = ("fp32", "fp16")
PFN_MODES = ("fused", "torch")
RPN_MODES = ("fused", "fused-deconv", "folded", "plain")
POINT_OVERFLOW_POLICIES = ("grow", "error")
MIN_BUCKET = 16384


def point_bucket(n: int, min_bucket: int = MIN_BUCKET) -> int:
    """The copy size for ``n`` points: ``min_bucket`` times powers of 1.5, rounded up to 4096
    (few graphs, at most 50 % more bytes copied than needed).

    >>> [point_bucket(n) for n in (1, 16384, 16385, 120000)]
    [16384, 16384, 24576, 131072]
    """
    b = int(min_bucket)
    while b < n:
        b = -(-(b * 3 // 2) // 4096) * 4096
    return b


class _DeviceArray:
    """A raw device pointer seen by torch through ``__cuda_array_interface__`` (no copy)."""

    def __init__(self, pointer: int, shape: Sequence[int], typestr: str) -> None:
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (int(pointer), False), "version": 3, "strides": None}


@dataclass(frozen=True)
class _Layout:
    """Offsets (in 4-byte words) inside one packed output row."""

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
        return self.post_max * 9 + 9


class GpuPipeline:
    """Owns the model on the GPU, the kernels, the static buffers and the captured graphs.

    ``max_points``: capacity of the point buffers (see ``on_points_overflow``); ``max_batch``: the
    most frames one :meth:`run_batch` takes. Not thread-safe: one caller at a time.
    """

    def __init__(
        self,
        cfg: PointPillarsConfig,
        state_dict: Mapping[str, Any],
        *,
        device: str = "cuda",
        precision: str = "fp32",
        pfn: str = "fused",
        use_graph: bool = True,
        channels_last: bool | None = None,
        max_points: int = 131072,
        max_batch: int = 8,
        on_points_overflow: str = "grow",
        rpn: str = "fused",
        engine_dir: str | Path | None = None,
        on_mismatch: str = "error",
    ) -> None:
        import torch

        if precision not in PRECISIONS:
            raise ConfigError(f"GpuPipeline: precision must be one of {PRECISIONS}, got {precision!r}")
        if pfn not in PFN_MODES:
            raise ConfigError(f"GpuPipeline: pfn must be one of {PFN_MODES}, got {pfn!r}")
        if rpn not in RPN_MODES:
            raise ConfigError(f"GpuPipeline: rpn must be one of {RPN_MODES}, got {rpn!r}")
        if on_points_overflow not in POINT_OVERFLOW_POLICIES:
            raise ConfigError(f"GpuPipeline: on_points_overflow must be one of {POINT_OVERFLOW_POLICIES}, got {on_points_overflow!r}")
        if not torch.cuda.is_available():
            raise BackendUnavailableError("GpuPipeline needs a CUDA GPU visible to torch")
        from .cuda.device import get_device
        from .postprocess.cuda import CudaPostProcessor
        from .voxelize.cuda import CudaVoxelizer

        self.cfg = cfg
        self.torch = torch
        self.device = torch.device(device)
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(self.device)
        torch.cuda.init()
        self.cuda_device = get_device(self.device.index)
        self.precision, self.pfn_mode, self.rpn_mode, self.use_graph = precision, pfn, rpn, bool(use_graph)
        # channels_last pays in float16 (cuDNN's NHWC tensor-core kernels); in float32 cuDNN's kernels are
        # NCHW and it would transpose around every convolution (measured: +0.5 ms per frame on an H100)
        self.channels_last = precision == "fp16" if channels_last is None else bool(channels_last)
        self.on_points_overflow = on_points_overflow
        self.max_batch = int(max_batch)
        if precision == "fp32":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        else:
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.engines: EngineStages | None = None
        if engine_dir is not None:  # TensorRT: the PFN and RPN engines between our kernels
            self.engines = EngineStages(engine_dir, cfg, self.cuda_device, self.device, on_mismatch)
            self.precision, self.pfn_mode, self.rpn_mode = self.engines.precision, "engine", "tensorrt"
            self.dtype = self.engines.canvas_dtype
            self.channels_last = False  # the engines' canvas is NCHW
        else:
            self._build_torch_model(state_dict, rpn)
        self.nx, self.ny, _ = cfg.grid_size
        self.channels = cfg.network.pfn_channels
        self.max_pillars = cfg.voxel.max_pillars if self.engines is None else min(cfg.voxel.max_pillars, self.engines.max_pillars)
        self.layout = _Layout(cfg.postprocess.nms_post_max)
        # one voxelizer and one post-processor per frame of a batch (each owns its workspace), so the
        # frames of a batch run these stages concurrently, each on its own stream (graph branches)
        self.vox = [CudaVoxelizer(cfg.voxel, max_points, self.max_pillars, self.cuda_device) for _ in range(self.max_batch)]
        self.post = [CudaPostProcessor(cfg, self.cuda_device)]
        self.post += [CudaPostProcessor(cfg, self.cuda_device, anchors_from=self.post[0]) for _ in range(self.max_batch - 1)]
        self._lane_streams = [torch.cuda.Stream(self.device) for _ in range(self.max_batch)] if self.max_batch > 1 else []
        self._graphs: dict[tuple[int, int], Any] = {}
        self._pending: tuple | None = None
        self._alloc_points(max_points)
        self._alloc_frame_buffers()

    def _build_torch_model(self, state_dict: Mapping[str, Any], rpn: str) -> None:
        from .model import build_model
        from .model.inference_rpn import InferenceRPN, fold_batchnorm

        torch = self.torch
        if state_dict is None:
            raise ConfigError("GpuPipeline: state_dict is required without engine_dir")
        model = build_model(self.cfg)
        model.load_state_dict(dict(state_dict), strict=True)
        model = model.to(self.device).eval()
        self.pfn = model.pfn
        rpn_module = {"fused": InferenceRPN, "fused-deconv": lambda m: InferenceRPN(m, upsample="deconv"),
                      "folded": fold_batchnorm, "plain": lambda m: m}[rpn](model.rpn)
        self.rpn = rpn_module.to(self.dtype)
        if self.channels_last:
            self.rpn = self.rpn.to(memory_format=torch.channels_last)
        if self.pfn_mode == "torch":
            self.pfn = self.pfn.to(self.dtype)
        with torch.no_grad():
            bn = model.pfn.norm
            scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).float()
            self._pfn_weight = model.pfn.linear.weight.detach().float().contiguous()
            self._pfn_scale = scale.contiguous()
            self._pfn_shift = (bn.bias - bn.running_mean * scale).float().contiguous()

    # ---- buffers -------------------------------------------------------------------------------
    def _alloc_points(self, max_points: int) -> None:
        t = self.torch
        self.max_points = int(max_points)
        cap = point_bucket(self.max_points)
        self._points_dev = t.zeros((self.max_batch, cap, 4), dtype=t.float32, device=self.device)
        self._points_host = t.zeros((self.max_batch, cap, 4), dtype=t.float32, pin_memory=True)
        self._n_host = t.zeros(self.max_batch, dtype=t.int32, pin_memory=True)
        self._n_dev = t.zeros(self.max_batch, dtype=t.int32, device=self.device)
        self._points_host_np, self._n_host_np = self._points_host.numpy(), self._n_host.numpy()  # views, made once
        for vox in self.vox:
            vox.reserve(cap)
        self.max_points = cap

    def _alloc_frame_buffers(self) -> None:
        t = self.torch
        B, mp = self.max_batch, self.max_pillars
        self._num_points = t.zeros((B, mp), dtype=t.int32, device=self.device)
        self._coords = t.zeros((B, mp, 2), dtype=t.int32, device=self.device)
        self._packed = t.zeros((B, self.layout.words), dtype=t.int32, device=self.device)
        self._packed_host = t.zeros((B, self.layout.words), dtype=t.int32, pin_memory=True)
        self._packed_host_np = self._packed_host.numpy()
        fmt = t.channels_last if self.channels_last else t.contiguous_format
        self._canvas = None if self.engines is not None else t.zeros((B, self.channels, self.ny, self.nx), dtype=self.dtype, device=self.device).contiguous(memory_format=fmt)
        self._features = None
        self._scatters = []
        if self.engines is not None:
            self.engines.allocate(B, mp, self.vox[0].features_shape)
        if self.pfn_mode in ("torch", "engine"):
            from .network.cuda_scatter import CudaScatter

            self._features = t.zeros((B, *self.vox[0].features_shape), dtype=t.float32, device=self.device)
            np_dtype = np.float16 if self.dtype == t.float16 else np.float32
            self._scatters = [CudaScatter(self.nx, self.ny, self.channels, np_dtype, max_pillars=mp, device=self.cuda_device) for _ in range(B)]
        self._start, self._stop = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)

    def _ensure_points(self, n: int) -> None:
        if n <= self.max_points:
            return
        if self.on_points_overflow == "error":
            raise PointCloudError(f"{n} points exceed the GPU pipeline's point buffer of {self.max_points} (on_points_overflow='error')")
        self.torch.cuda.synchronize(self.device)
        self._graphs.clear()
        self._alloc_points(n)

    # ---- the frame -----------------------------------------------------------------------------
    def _ptr(self, tensor, b: int, word: int = 0) -> int:
        return tensor.data_ptr() + (b * tensor.stride(0) + word) * tensor.element_size()

    def _enqueue(self, batch: int, bucket: int, events: list | None = None, score_threshold: float | None = None) -> None:
        """Enqueue frames ``0..batch-1`` on torch's current stream (capturable)."""
        t = self.torch
        main_stream = t.cuda.current_stream(self.device).cuda_stream
        lay = self.layout
        mark = (lambda name: events.append((name, _record(t)))) if events is not None else (lambda name: None)
        mark("start")
        self._n_dev[:batch].copy_(self._n_host[:batch], non_blocking=True)
        for b in range(batch):  # contiguous rows: a pinned source, so a true async copy
            self._points_dev[b, :bucket].copy_(self._points_host[b, :bucket], non_blocking=True)
        mark("h2d")
        half = self.dtype == t.float16
        for b, stream in self._fork(batch):
            common = dict(num_points_out_ptr=self._ptr(self._num_points, b), coords_ptr=self._ptr(self._coords, b),
                          counters_ptr=self._ptr(self._packed, b, lay.counters), num_points_ptr=self._ptr(self._n_dev, b))
            if self.pfn_mode == "fused":
                self.vox[b].enqueue_fused_pfn(
                    self._ptr(self._points_dev, b), stream, weight_ptr=self._pfn_weight.data_ptr(), scale_ptr=self._pfn_scale.data_ptr(),
                    shift_ptr=self._pfn_shift.data_ptr(), channels=self.channels, canvas_ptr=self._ptr(self._canvas, b),
                    nhwc=self.channels_last, half=half, num_points_bound=bucket, **common)
            else:
                self.vox[b].enqueue(self._ptr(self._points_dev, b), stream, features_ptr=self._ptr(self._features, b),
                                    num_points_bound=bucket, **common)
        mark("voxelize")
        layout = None  # float32 NCHW planes (the engines' heads, the unfused torch RPN modes)
        if self.engines is not None:  # PFN engine -> our scatter -> RPN engine, frame by frame
            for b in range(batch):
                pf = self.engines.run_pfn(b, self._features[b], self._ptr(self._num_points, b), main_stream)
                canvas_ptr = self._scatters[b].scatter_device_count(
                    pf, self._ptr(self._coords, b), self._ptr(self._packed, b, lay.counters), self.max_pillars, main_stream)
                self.engines.run_rpn(b, canvas_ptr, main_stream)
            heads = self.engines.heads
            mark("pfn_scatter_rpn")
        else:
            if self.pfn_mode == "torch":
                code = "<f2" if half else "<f4"
                views = []
                for b in range(batch):
                    feats = self._features[b].to(self.dtype)
                    pf = self.pfn(feats, self._num_points[b]).contiguous()
                    canvas_ptr = self._scatters[b].scatter_device_count(
                        pf.data_ptr(), self._ptr(self._coords, b), self._ptr(self._packed, b, lay.counters), self.max_pillars, main_stream)
                    views.append(t.as_tensor(_DeviceArray(canvas_ptr, (self.channels, self.ny, self.nx), code), device=self.device))
                self._canvas[:batch].copy_(t.stack(views))
                mark("pfn_scatter")
            if self.rpn_mode in ("fused", "fused-deconv"):  # cls / box / dir are channel slices of one head tensor, read in place
                head = self.rpn.head_output(self._canvas[:batch])
                heads = t.split(head, self.rpn.splits, dim=1)
                layout = head_layout(head)
            else:
                heads = [h.float().contiguous() for h in self.rpn(self._canvas[:batch])]
            mark("rpn")
        for b, stream in self._fork(batch):
            self.post[b].enqueue(self._ptr(heads[0], b), self._ptr(heads[1], b), self._ptr(heads[2], b), stream,
                                 boxes_ptr=self._ptr(self._packed, b, lay.boxes), scores_ptr=self._ptr(self._packed, b, lay.scores),
                                 labels_ptr=self._ptr(self._packed, b, lay.labels), count_ptr=self._ptr(self._packed, b, lay.count),
                                 score_threshold=score_threshold, layout=layout)
        mark("postprocess")
        self._packed_host[:batch].copy_(self._packed[:batch], non_blocking=True)
        mark("d2h")

    def _fork(self, batch: int):
        """Yield ``(frame, raw stream)`` for per-frame work: one frame runs on torch's current stream;
        several each run on their own lane stream, forked from and joined back into the current one
        (inside a capture this becomes parallel graph branches)."""
        t = self.torch
        main = t.cuda.current_stream(self.device)
        if batch == 1:
            yield 0, main.cuda_stream
            return
        lanes = self._lane_streams[:batch]
        for s in lanes:
            s.wait_stream(main)
        for b, s in enumerate(lanes):
            yield b, s.cuda_stream
        for s in lanes:
            main.wait_stream(s)

    def _graph(self, batch: int, bucket: int):
        key = (batch, bucket)
        g = self._graphs.get(key)
        if g is None:
            t = self.torch
            side = t.cuda.Stream(self.device)
            side.wait_stream(t.cuda.current_stream(self.device))
            with t.cuda.stream(side), t.inference_mode():
                for _ in range(2):  # warm-up outside the capture (cuDNN algorithm choice, workspaces)
                    self._enqueue(batch, bucket)
            t.cuda.current_stream(self.device).wait_stream(side)
            g = t.cuda.CUDAGraph()
            with t.inference_mode(), t.cuda.graph(g):
                self._enqueue(batch, bucket)
            t.cuda.synchronize(self.device)
            self._graphs[key] = g
        return g

    def run_batch(self, clouds: Sequence[np.ndarray], score_threshold: float | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """Run validated float32 ``[N_i, 4]`` clouds; returns the packed host output ``[B, words]``
        (int32; see :class:`_Layout`) and the timings in milliseconds. Same as :meth:`submit`
        followed by :meth:`collect`."""
        self.submit(clouds, score_threshold)
        return self.collect()

    def submit(self, clouds: Sequence[np.ndarray], score_threshold: float | None = None) -> None:
        """Stage the clouds into pinned memory and enqueue the frame work (a graph replay) without
        waiting for it; :meth:`collect` waits and returns the result. One submission at a time per
        pipeline: two pipelines taking turns overlap one batch's host staging with the other's GPU work."""
        t = self.torch
        if self._pending is not None:
            raise ConfigError("GpuPipeline.submit: the previous submission was not collected")
        batch = len(clouds)
        if not 1 <= batch <= self.max_batch:
            raise ConfigError(f"GpuPipeline: batch of {batch} frames; this pipeline takes 1..{self.max_batch}")
        t0 = time.perf_counter()
        n_max = max(int(c.shape[0]) for c in clouds)
        self._ensure_points(n_max)
        bucket = min(point_bucket(n_max), self.max_points)
        host, n_host = self._points_host_np, self._n_host_np
        for b, c in enumerate(clouds):
            host[b, : c.shape[0]] = c
            n_host[b] = c.shape[0]
        t1 = time.perf_counter()
        default_thr = score_threshold is None or float(score_threshold) == float(self.cfg.postprocess.score_threshold)
        if self.use_graph and default_thr:  # a replay needs no autograd mode (entering one costs ~0.1 ms of CPU)
            g = self._graph(batch, bucket)
            self._start.record()
            g.replay()
            self._stop.record()
            events = None
        else:
            events = []
            with t.inference_mode():
                self._enqueue(batch, bucket, events, None if default_thr else score_threshold)
        self._pending = (batch, events, t0, t1)

    @property
    def has_pending(self) -> bool:
        """A :meth:`submit` waits for its :meth:`collect`."""
        return self._pending is not None

    def collect(self) -> tuple[np.ndarray, dict[str, float]]:
        """Wait for the last :meth:`submit` and return ``(packed output [B, words], timings in ms)``."""
        if self._pending is None:
            raise ConfigError("GpuPipeline.collect: nothing was submitted")
        batch, events, t0, t1 = self._pending
        self._pending = None
        timings: dict[str, float] = {}
        if events is None:
            self._stop.synchronize()
            timings["gpu"] = self._start.elapsed_time(self._stop)
        else:
            events[-1][1].synchronize()
            for (_, a), (name, b) in zip(events, events[1:]):
                timings[name] = a.elapsed_time(b)
            timings["gpu"] = events[0][1].elapsed_time(events[-1][1])
        t2 = time.perf_counter()
        out = self._packed_host_np[:batch].copy()
        t3 = time.perf_counter()
        timings["host_stage"] = (t1 - t0) * 1e3  # staging into pinned memory (host)
        timings["host_wait"] = (t2 - t1) * 1e3  # enqueue / replay + waiting for the GPU (and, overlapped, the caller)
        timings["total"] = (t3 - t0) * 1e3
        return out, timings

    def unpack(self, row: np.ndarray):
        """``(boxes [n, 7], scores [n], labels [n] int64, VoxelCounters)`` of one packed row."""
        from .voxelize.cuda import VoxelCounters

        lay = self.layout
        n = int(row[lay.count])
        f = row.view(np.float32)
        boxes = f[lay.boxes: lay.boxes + 7 * lay.post_max].reshape(-1, 7)[:n].copy()
        scores = f[lay.scores: lay.scores + lay.post_max][:n].copy()
        labels = row[lay.labels: lay.labels + lay.post_max][:n].astype(np.int64)
        return boxes, scores, labels, VoxelCounters.from_array(row[lay.counters: lay.counters + 8])

    def free(self) -> None:
        self._graphs.clear()
        for s in self._scatters:
            s.free()
        for stage in (*self.vox, *reversed(self.post)):
            stage.free()
        if self.engines is not None:
            self.engines.free()


def head_layout(head) -> tuple[int, int, bool]:
    """``(channel stride, pixel stride, is float16)`` of a head tensor ``[B, C, H, W]`` (NCHW or
    channels_last) for :meth:`~pointpillars_trt.postprocess.cuda.CudaPostProcessor.enqueue`."""
    import torch

    _, _, h, w = head.shape
    if head.dtype not in (torch.float16, torch.float32) or head.stride(2) != w * head.stride(3):
        raise ConfigError(f"head tensor {tuple(head.shape)} {head.dtype} strides {head.stride()}: need float16/float32, rows of W pixels")
    return int(head.stride(1)), int(head.stride(3)), head.dtype == torch.float16


def _record(torch):
    e = torch.cuda.Event(enable_timing=True)
    e.record()
    return e


class EngineStages:
    """The PFN and RPN TensorRT engines of an engine folder (``export/build_engines.py``) as stages of
    :class:`GpuPipeline`: our CUDA voxelization feeds the PFN engine, our scatter builds the canvas
    from its output, the RPN engine's heads go to our CUDA post-processing. Tensors are bound by
    name (:class:`~pointpillars_trt.tensorrt.runner.EngineRunner`); the PFN runs on the profile's
    ``max_pillars`` rows every frame (rows beyond the frame's pillar count have no points and are
    not scattered: the count stays on the device), so shapes never change and the launches can be
    captured. Not run in this repository's CI or on its GPU machine (no TensorRT there).
    """

    def __init__(self, engine_dir: str | Path, cfg: PointPillarsConfig, cuda_device, torch_device, on_mismatch: str = "error") -> None:
        import torch

        from .tensorrt import api
        from .tensorrt.runner import EngineRunner, check_geometry, common_precision, profile_max_pillars

        api.load_tensorrt()
        self.torch, self.device, self.engine_dir = torch, torch_device, Path(engine_dir)
        version = api.tensorrt_version()
        self.pfn = EngineRunner("pfn", self.engine_dir / "pfn.engine", cfg, cuda_device, version, on_mismatch)
        self.rpn = EngineRunner("rpn", self.engine_dir / "rpn.engine", cfg, cuda_device, version, on_mismatch)
        for msg in self.pfn.warnings + self.rpn.warnings:
            warnings.warn(msg, UserWarning, stacklevel=3)
        self.precision = common_precision([self.pfn, self.rpn], str(self.engine_dir))
        self.max_pillars = profile_max_pillars([self.pfn, self.rpn])
        self._logger = api.make_logger("warning")
        self._runtime = api.create_runtime(self._logger)
        self.pfn.activate(self._runtime)
        self.rpn.activate(self._runtime)
        self.geo = check_geometry(cfg, self.pfn, self.rpn, self.max_pillars)
        to_torch = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32}
        self.feature_dtype, self.canvas_dtype = to_torch[self.geo["feat_dtype"]], to_torch[self.geo["pf_dtype"]]
        self.heads: tuple = ()

    def allocate(self, batch: int, max_pillars: int, features_shape: tuple[int, int, int]) -> None:
        t = self.torch
        self._features_in = t.zeros((batch, *features_shape), dtype=self.feature_dtype, device=self.device)
        self._pillar_features = t.zeros((batch, max_pillars, self.geo["C"]), dtype=self.canvas_dtype, device=self.device)
        self.heads = tuple(t.zeros((batch, *self.rpn.tensors[n].shape[1:]), dtype=t.float32, device=self.device)
                           for n in ("cls", "box", "dir"))
        self.pfn.set_shape("features", (max_pillars, self.geo["M"], self.geo["F"]))
        self.pfn.set_shape("num_points", (max_pillars,))

    def run_pfn(self, b: int, features, num_points_ptr: int, stream: int) -> int:
        """Enqueue the PFN engine on frame ``b``'s float32 features; returns the pillar-feature pointer."""
        feats = features
        if self.feature_dtype != features.dtype:
            feats = self._features_in[b]
            feats.copy_(features)
        out = self._pillar_features[b]
        self.pfn.bind("features", feats.data_ptr())
        self.pfn.bind("num_points", num_points_ptr)
        self.pfn.bind("pillar_features", out.data_ptr())
        self.pfn.execute(stream)
        return out.data_ptr()

    def run_rpn(self, b: int, canvas_ptr: int, stream: int) -> None:
        self.rpn.bind("canvas", canvas_ptr)
        for name, head in zip(("cls", "box", "dir"), self.heads):
            self.rpn.bind(name, head[b].data_ptr())
        self.rpn.execute(stream)

    def free(self) -> None:
        self.pfn.deactivate()
        self.rpn.deactivate()
        self._runtime = None


class GpuDetector(DetectorBase):
    """:class:`~pointpillars_trt.detector.Detector`-compatible front end of :class:`GpuPipeline`.

    ``detect(points) -> Detections`` for one frame, ``detect_batch(clouds) -> list[Detections]``
    for offline throughput (one batched RPN per group of up to ``max_batch`` frames).
    ``on_overflow`` (pillars beyond ``max_pillars``) and ``nonfinite`` as in ``Detector``.
    """

    def __init__(self, config: PointPillarsConfig, state_dict: Mapping[str, Any], *, on_overflow: str = "warn",
                 nonfinite: str = "error", source: ModelSource | None = None, **pipeline_kwargs: Any) -> None:
        if on_overflow not in OVERFLOW_POLICIES:
            raise ConfigError(f"on_overflow must be one of {OVERFLOW_POLICIES}, got {on_overflow!r}")
        self.config = config
        self.on_overflow, self.nonfinite = on_overflow, nonfinite
        self.source = source or ModelSource(None, "random")
        self.pipeline = GpuPipeline(config, state_dict, **pipeline_kwargs)
        self.max_pillars = self.pipeline.max_pillars
        self._make_pipeline = lambda: GpuPipeline(config, state_dict, **pipeline_kwargs)
        self._second: GpuPipeline | None = None  # detect_batch's other half of the double buffer, made on first use

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, config: PointPillarsConfig | str | Path | None = None,
                        format: str | None = None, **kwargs: Any) -> "GpuDetector":
        """As :meth:`Detector.from_checkpoint` (demo model or random weights when ``path`` is None)."""
        cfg, state_dict, source = resolve_weights(path, config, format)
        return cls(cfg, state_dict, source=source, **kwargs)

    @classmethod
    def from_engine_dir(cls, engine_dir: str | Path, config: PointPillarsConfig | str | Path | None = None, **kwargs: Any) -> "GpuDetector":
        """The whole frame on the GPU with the TensorRT engines in ``engine_dir`` (PFN and RPN; our
        kernels do the rest). The config is the one the engines carry; a ``config`` given as well
        must be the same (else :class:`~pointpillars_trt.errors.ConfigError`)."""
        cfg = artifact_config(engine_dir, config)
        return cls(cfg, None, engine_dir=engine_dir, source=ModelSource(Path(engine_dir), "tensorrt"), **kwargs)

    def _detections(self, row: np.ndarray, timings: dict[str, float], source: str) -> Detections:
        boxes, scores, labels, c = self.pipeline.unpack(row)
        if c.num_pillars == 0:
            return empty_detections(self.config, c.num_input, dict(timings), source)
        if c.overflowed:
            msg = (f"{source}: {c.num_found} pillars exceed the maximum {self.max_pillars}; dropped "
                   f"{c.num_dropped_pillars} pillars holding {c.num_dropped_points} points")
            if self.on_overflow == "error":
                raise PillarOverflowError(msg)
            warnings.warn(msg, PillarOverflowWarning, stacklevel=3)
        return Detections(boxes=boxes, scores=scores, labels=labels, class_names=self.config.classes, timings_ms=dict(timings),
                          num_points=c.num_input, num_pillars=c.num_pillars, num_dropped_pillars=c.num_dropped_pillars,
                          num_dropped_points=c.num_dropped_points)

    def detect(self, points: np.ndarray, score_threshold: float | None = None, source: str = "<array>") -> Detections:
        pts = validate_points(points, source, nonfinite=self.nonfinite)
        out, timings = self.pipeline.run_batch([pts], score_threshold)
        return self._detections(out[0], timings, source)

    def detect_batch(self, clouds: Sequence[np.ndarray], score_threshold: float | None = None, overlap: bool = True) -> list[Detections]:
        """Detect in many clouds, ``max_batch`` at a time; ``timings_ms`` are those of the group.

        ``overlap=True`` (with more than one group) double-buffers: a second pipeline (made on first
        use: its own buffers and graphs, about as much GPU memory again) takes every other group, so
        one group's validation and staging on the host overlap the previous group's GPU work.
        """
        step = self.pipeline.max_batch
        starts = list(range(0, len(clouds), step))
        pipes = [self.pipeline]
        if overlap and len(starts) > 1:
            if self._second is None:
                self._second = self._make_pipeline()
            pipes.append(self._second)
        results: list[Detections] = []
        pending: tuple[GpuPipeline, int, int] | None = None
        try:
            for i, s in enumerate(starts):
                group = [validate_points(c, f"<cloud {s + b}>", nonfinite=self.nonfinite) for b, c in enumerate(clouds[s: s + step])]
                pipe = pipes[i % len(pipes)]
                if pending is not None and pending[0] is pipe:  # one pipeline: collect before reusing it
                    results += self._collect(*pending)
                    pending = None
                pipe.submit(group, score_threshold)
                if pending is not None:  # the other pipeline's group ran while this one was staged
                    results += self._collect(*pending)
                pending = (pipe, s, len(group))
            if pending is not None:
                results += self._collect(*pending)
                pending = None
        finally:
            for pipe in pipes:  # an error left a submission behind: drain it
                if pipe.has_pending:
                    pipe.collect()
        return results

    def _collect(self, pipe: GpuPipeline, start: int, n: int) -> list[Detections]:
        out, timings = pipe.collect()
        return [self._detections(out[b], timings, f"<cloud {start + b}>") for b in range(n)]

    def close(self) -> None:
        self.pipeline.free()
        if self._second is not None:
            self._second.free()


__all__ = ["EngineStages", "GpuDetector", "GpuPipeline", "PFN_MODES", "PRECISIONS", "RPN_MODES", "point_bucket"]
