"""The whole frame on the GPU, optionally as one CUDA graph: points in (host) -> boxes out (host).

Per frame, all on one stream, no host round trip between stages:

1. H2D copy of the points from a pinned staging buffer into a static device buffer (the copy
   covers a size *bucket* >= N; N itself is copied to the device as an int32);
2. voxelization + decoration (``kernels/voxelize.cu``), counts on the device;
3. PFN: ``pfn="fused"`` runs it inside the last voxelization pass and writes pillar features
   straight into the BEV canvas (our kernel, float32 math); ``pfn="torch"`` runs the torch PFN
   (cuBLAS) on all ``max_pillars`` rows (rows ``>= P`` have ``num_points == 0`` and are masked)
   and scatters with :meth:`~pointpillars_trt.cuda.scatter.CudaScatter.scatter_device_count`;
4. RPN in torch (cuDNN), float32 or float16 (float16 weights and canvas, float32 accumulation in
   cuDNN, head outputs cast to float32), channels_last optional. ``rpn="fused"`` (default) runs
   :class:`~pointpillars_trt.model.inference_rpn.InferenceRPN`: BatchNorm folded, each convolution
   with its bias and ReLU in one cuDNN call, the three heads as one convolution and one cast;
   ``"folded"`` only folds BatchNorm (separate bias / ReLU kernels); ``"plain"`` is the module as
   trained;
5. post-processing (``kernels/postprocess.cu``) into a fixed-size packed output;
6. one D2H copy of the packed output (boxes, scores, labels, count, voxelizer counters).

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

from .config import PointPillarsConfig, load_config
from .detector import DEMO_MODEL, OVERFLOW_POLICIES, DetectorBase, Detections, ModelSource, PillarOverflowWarning
from .errors import BackendUnavailableError, ConfigError, PillarOverflowError, PointCloudError
from .io.pointcloud import validate_points
from .backends import torch_cuda as _torch_cuda  # noqa: F401  (registers the "torch_cuda" backend)

PRECISIONS = ("fp32", "fp16")
PFN_MODES = ("fused", "torch")
RPN_MODES = ("fused", "folded", "plain")
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
        channels_last: bool = True,
        max_points: int = 131072,
        max_batch: int = 8,
        on_points_overflow: str = "grow",
        rpn: str = "fused",
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
        from .cuda.postprocess import CudaPostProcessor
        from .cuda.voxelize import CudaVoxelizer
        from .model import build_model
        from .model.inference_rpn import InferenceRPN, fold_batchnorm

        self.cfg = cfg
        self.torch = torch
        self.device = torch.device(device)
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(self.device)
        torch.cuda.init()
        self.cuda_device = get_device(self.device.index)
        self.precision, self.pfn_mode, self.use_graph = precision, pfn, bool(use_graph)
        self.channels_last = bool(channels_last)
        self.on_points_overflow = on_points_overflow
        self.max_batch = int(max_batch)
        if precision == "fp32":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        else:
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        model = build_model(cfg)
        model.load_state_dict(dict(state_dict), strict=True)
        model = model.to(self.device).eval()
        self.pfn = model.pfn
        self.rpn_mode = rpn
        rpn_module = {"fused": InferenceRPN, "folded": fold_batchnorm, "plain": lambda m: m}[rpn](model.rpn)
        self.rpn = rpn_module.to(self.dtype)
        if self.channels_last:
            self.rpn = self.rpn.to(memory_format=torch.channels_last)
        if pfn == "torch":
            self.pfn = self.pfn.to(self.dtype)
        with torch.no_grad():
            bn = model.pfn.norm
            scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).float()
            self._pfn_weight = model.pfn.linear.weight.detach().float().contiguous()
            self._pfn_scale = scale.contiguous()
            self._pfn_shift = (bn.bias - bn.running_mean * scale).float().contiguous()
        self.nx, self.ny, _ = cfg.grid_size
        self.channels = cfg.network.pfn_channels
        self.max_pillars = cfg.voxel.max_pillars
        self.layout = _Layout(cfg.postprocess.nms_post_max)
        # one voxelizer and one post-processor per frame of a batch (each owns its workspace), so the
        # frames of a batch run these stages concurrently, each on its own stream (graph branches)
        self.vox = [CudaVoxelizer(cfg.voxel, max_points, self.max_pillars, self.cuda_device) for _ in range(self.max_batch)]
        self.post = [CudaPostProcessor(cfg, self.cuda_device)]
        self.post += [CudaPostProcessor(cfg, self.cuda_device, anchors_from=self.post[0]) for _ in range(self.max_batch - 1)]
        self._lane_streams = [torch.cuda.Stream(self.device) for _ in range(self.max_batch)] if self.max_batch > 1 else []
        self._graphs: dict[tuple[int, int], Any] = {}
        self._alloc_points(max_points)
        self._alloc_frame_buffers()

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
        self._canvas = t.zeros((B, self.channels, self.ny, self.nx), dtype=self.dtype, device=self.device).contiguous(memory_format=fmt)
        self._features = None
        self._scatters = []
        if self.pfn_mode == "torch":
            from .cuda.scatter import CudaScatter

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
        if self.rpn_mode == "fused":  # one cast of all head channels; cls / box / dir are channel slices
            head = self.rpn.head_output(self._canvas[:batch]).to(dtype=t.float32, memory_format=t.contiguous_format)
            heads = t.split(head, self.rpn.splits, dim=1)
        else:
            heads = [h.float().contiguous() for h in self.rpn(self._canvas[:batch])]
        mark("rpn")
        for b, stream in self._fork(batch):
            self.post[b].enqueue(self._ptr(heads[0], b), self._ptr(heads[1], b), self._ptr(heads[2], b), stream,
                                 boxes_ptr=self._ptr(self._packed, b, lay.boxes), scores_ptr=self._ptr(self._packed, b, lay.scores),
                                 labels_ptr=self._ptr(self._packed, b, lay.labels), count_ptr=self._ptr(self._packed, b, lay.count),
                                 score_threshold=score_threshold)
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
        (int32; see :class:`_Layout`) and the timings in milliseconds."""
        t = self.torch
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
        timings: dict[str, float] = {}
        with t.inference_mode():
            if self.use_graph and default_thr:
                g = self._graph(batch, bucket)
                self._start.record()
                g.replay()
                self._stop.record()
                self._stop.synchronize()
                timings["gpu"] = self._start.elapsed_time(self._stop)
            else:
                events: list = []
                self._enqueue(batch, bucket, events, None if default_thr else score_threshold)
                events[-1][1].synchronize()
                for (_, a), (name, b) in zip(events, events[1:]):
                    timings[name] = a.elapsed_time(b)
                timings["gpu"] = events[0][1].elapsed_time(events[-1][1])
        t2 = time.perf_counter()
        out = self._packed_host_np[:batch].copy()
        t3 = time.perf_counter()
        timings["host_stage"] = (t1 - t0) * 1e3  # staging into pinned memory (host)
        timings["host_wait"] = (t2 - t1) * 1e3  # enqueue / replay + waiting for the GPU
        timings["total"] = (t3 - t0) * 1e3
        return out, timings

    def unpack(self, row: np.ndarray):
        """``(boxes [n, 7], scores [n], labels [n] int64, VoxelCounters)`` of one packed row."""
        from .cuda.voxelize import VoxelCounters

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


def _record(torch):
    e = torch.cuda.Event(enable_timing=True)
    e.record()
    return e


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

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, config: PointPillarsConfig | str | Path | None = None,
                        format: str | None = None, **kwargs: Any) -> "GpuDetector":
        """As :meth:`Detector.from_checkpoint` (demo model or random weights when ``path`` is None)."""
        from .checkpoint import load_checkpoint

        cfg = load_config(config) if isinstance(config, (str, Path)) else config
        if path is None and DEMO_MODEL.is_file():
            path = DEMO_MODEL
        if path is None:
            import torch

            from .model import build_model

            cfg = cfg or load_config()
            torch.manual_seed(0)
            return cls(cfg, build_model(cfg).state_dict(), source=ModelSource(None, "random"), **kwargs)
        ckpt = load_checkpoint(path, config=cfg, format=format)
        return cls(ckpt.config, ckpt.state_dict, source=ModelSource(Path(path), ckpt.format, dict(ckpt.metadata)), **kwargs)

    def _detections(self, row: np.ndarray, timings: dict[str, float], source: str) -> Detections:
        boxes, scores, labels, c = self.pipeline.unpack(row)
        if c.num_pillars == 0:
            raise PointCloudError(f"{source}: no point lies inside the point-cloud range {self.config.voxel.point_cloud_range}")
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

    def detect_batch(self, clouds: Sequence[np.ndarray], score_threshold: float | None = None) -> list[Detections]:
        """Detect in many clouds, ``max_batch`` at a time; ``timings_ms`` are those of the group."""
        pts = [validate_points(c, f"<cloud {i}>", nonfinite=self.nonfinite) for i, c in enumerate(clouds)]
        results: list[Detections] = []
        step = self.pipeline.max_batch
        for s in range(0, len(pts), step):
            group = pts[s: s + step]
            out, timings = self.pipeline.run_batch(group, score_threshold)
            results += [self._detections(out[b], timings, f"<cloud {s + b}>") for b in range(len(group))]
        return results

    def close(self) -> None:
        self.pipeline.free()


__all__ = ["GpuDetector", "GpuPipeline", "PFN_MODES", "PRECISIONS", "RPN_MODES", "point_bucket"]
