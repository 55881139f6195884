"""The device executor: the whole frame on one GPU, optionally as one CUDA graph; points in (host)
-> boxes out (host).

Per batch, all enqueued on the executor's own stream, no host round trip between stages:

1. H2D copy of the points from pinned staging rows into static device rows (the copy covers a
   size *bucket* >= N; N itself goes to the device as an int32);
2. per lane (its own stream; parallel graph branches in a batch): CUDA voxelization and
   decoration (``kernels/voxelize.cu``), counts on the device, through the network form's
   :meth:`~pointpillars_trt.network.device.DeviceNetwork.voxelize` (the fused form runs the PFN
   there too);
3. the network form's :meth:`~pointpillars_trt.network.device.DeviceNetwork.heads` (PFN, scatter,
   RPN: torch/cuDNN or TensorRT engines);
4. per lane: post-processing (``kernels/postprocess.cu``) into a fixed-size packed row;
5. one D2H copy of the packed rows (boxes, scores, labels, count, voxelizer counters).

With ``use_graph`` the sequence is captured once per (batch size, point bucket), in thread-local
mode, and replayed; only the host staging, one replay and one event wait remain per frame. If a
capture fails (a TensorRT enqueue refused inside a capture, say) the executor says so once and runs
eagerly from then on. In graph mode only end-to-end timings exist (``gpu`` from CUDA events around
the replay, ``total`` host to host); without a graph every stage is timed with CUDA events.

``precision=FP32`` disables TF32 in cuDNN and cuBLAS (a process-wide torch setting) so that float32
results match the CPU pipeline.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from time import perf_counter
from typing import Any, Callable, Sequence

import numpy as np

from ..config import PointPillarsConfig
from ..errors import BackendUnavailableError, ConfigError, PointCloudError
from ..options import DeviceOptions, PointsOverflowPolicy, Precision
from .base import Executor, FrameResult
from ..cuda.graph_launch import GraphLaunch, raw_graph_exec
from .buffers import FrameBuffers, PackedLayout, point_bucket, tensor_ptr

log = logging.getLogger(__name__)


def torch_cuda_device(device: str):
    """``torch.device`` with an index for ``"cuda"``/``"cuda:N"``, made current; :class:`BackendUnavailableError` without CUDA."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError("the device executor needs a CUDA GPU visible to torch")
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ConfigError(f"the device executor runs on a CUDA device, not {device!r}")
    if dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(dev)
    torch.cuda.init()
    return dev


def set_precision_mode(precision: Precision) -> None:
    """FP32: TF32 off in cuDNN and cuBLAS (process-wide) so that results match the CPU; FP16: no
    reduced-precision reductions in cuBLAS."""
    import torch

    if precision == Precision.FP32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    else:
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False


@contextlib.contextmanager
def cudnn_autotuned(on: bool):
    """With ``on``, cuDNN times every engine of each new convolution and keeps the fastest
    (``torch.backends.cudnn.benchmark`` on, ``benchmark_limit`` 0: no limit) inside the block; the
    process-wide flags are restored after it. Off: nothing changes."""
    if not on:
        yield
        return
    import torch

    cud = torch.backends.cudnn
    old_benchmark, old_limit = cud.benchmark, cud.benchmark_limit
    cud.benchmark = True
    if old_limit is not None:  # None where torch has no cuDNN v8 API (CPU builds)
        cud.benchmark_limit = 0
    try:
        yield
    finally:
        cud.benchmark = old_benchmark
        if old_limit is not None:
            cud.benchmark_limit = old_limit


class DevicePipeline:
    """One set of lanes: static buffers, a voxelizer, a post-processor and a stream per lane, the
    network form, and the captured graphs. One submission at a time (:meth:`submit` ->
    :meth:`collect`); two pipelines taking turns overlap one batch's host staging with the other's GPU work."""

    def __init__(self, cfg: PointPillarsConfig, network: Any, options: DeviceOptions, device: Any) -> None:
        import torch

        from ..cuda.device import get_device
        from ..postprocess.cuda import CudaPostProcessor
        from ..voxelize.cuda import CudaVoxelizer

        self.cfg, self.network, self.options, self.device = cfg, network, options, device
        self.cuda_device = get_device(device.index)
        self.max_batch, self.max_pillars = options.max_batch, network.max_pillars
        self.use_graph = options.use_graph
        self.stream = torch.cuda.Stream(device)  # a dedicated stream on every path (never the legacy default stream)
        # one voxelizer and one post-processor per lane (each owns its workspace): the lanes of a batch run
        # these stages concurrently, each on its own stream (graph branches); with batched_post one
        # post-processor holds every lane's workspace and runs the batch with one launch per pass
        self.vox = [CudaVoxelizer(cfg.voxel, options.max_points, self.max_pillars, self.cuda_device) for _ in range(self.max_batch)]
        if options.batched_post:  # one post-processor for every lane: one launch per pass for the whole batch
            self.post = [CudaPostProcessor(cfg, self.cuda_device, lanes=self.max_batch)]
        else:
            self.post = [CudaPostProcessor(cfg, self.cuda_device)]
            self.post += [CudaPostProcessor(cfg, self.cuda_device, anchors_from=self.post[0]) for _ in range(self.max_batch - 1)]
        self.lane_streams = [torch.cuda.Stream(device) for _ in range(self.max_batch)] if self.max_batch > 1 else []
        self.bufs = FrameBuffers(self.max_batch, self.max_pillars, PackedLayout(cfg.postprocess.nms_post_max), device,
                                 staging_threads=options.staging_threads, mapped_points=options.mapped_points,
                                 mapped_output=options.mapped_output)
        self._reserve_points(options.max_points)
        network.allocate(self.bufs, self.vox[0].features_shape)
        self._graphs: dict[tuple[int, int], Any] = {}  # (batch, bucket) -> GraphLaunch or TorchGraphLaunch
        self._pending: tuple | None = None

    def _reserve_points(self, n: int) -> None:
        cap = point_bucket(n)
        # the driver calls here (the pinned rows' mapped address) need the GPU's context current on this thread, which
        # may be one that has not run a frame yet (input_buffer() growing the rows from a new ROS callback thread)
        self.cuda_device.make_current()
        self.bufs.reserve_points(cap)
        for vox in self.vox:
            vox.reserve(cap)

    def _ensure_points(self, n: int) -> None:
        if n <= self.bufs.capacity:
            return
        if self.options.on_points_overflow == PointsOverflowPolicy.ERROR:
            raise PointCloudError(f"{n} points exceed the GPU pipeline's point buffer of {self.bufs.capacity} (on_points_overflow='error')")
        import torch

        torch.cuda.synchronize(self.device)
        for launcher in self._graphs.values():
            launcher.free()
        self._graphs.clear()
        self._reserve_points(n)

    def input_row(self, n: int) -> np.ndarray:
        """Lane 0's pinned staging row as a float32 ``[n, 4]`` array, grown to hold ``n`` points (under
        ``on_points_overflow``): a cloud written there and submitted alone is not copied again."""
        if self._pending is not None:
            raise ConfigError("DevicePipeline.input_row: a submission is in flight")
        self._ensure_points(n)
        return self.bufs.lane_row(0, n)

    # ---- the frame -----------------------------------------------------------------------------
    def _enqueue(self, batch: int, bucket: int, events: list | None = None, score_threshold: float | None = None) -> None:
        """Enqueue lanes ``0..batch-1`` on torch's current stream (capturable)."""
        import torch

        main = torch.cuda.current_stream(self.device).cuda_stream
        mark = (lambda name: events.append((name, _record()))) if events is not None else (lambda name: None)
        mark("start")
        self.bufs.enqueue_upload(batch, bucket)
        mark("h2d")
        for b, stream in self._fork(batch):
            self.network.voxelize(b, self.vox[b], self.bufs, stream, bucket)
        mark("voxelize")
        heads = self.network.heads(batch, self.bufs, main)
        mark("network")
        if self.options.batched_post:
            from ..postprocess.cuda import LaneStrides

            strides = LaneStrides(*(t.stride(0) * t.element_size() for t in (heads.cls, heads.box, heads.dir)),
                                  out=self.bufs.packed.stride(0) * self.bufs.packed.element_size())
            self.post[0].enqueue(heads.cls.data_ptr(), heads.box.data_ptr(), heads.dir.data_ptr(), main, score_threshold=score_threshold,
                                 layout=heads.layout, frames=batch, strides=strides, **self.bufs.output_ptrs(0))
        else:
            for b, stream in self._fork(batch):
                self.post[b].enqueue(tensor_ptr(heads.cls, b), tensor_ptr(heads.box, b), tensor_ptr(heads.dir, b), stream,
                                     score_threshold=score_threshold, layout=heads.layout, **self.bufs.output_ptrs(b))
        mark("postprocess")
        self.bufs.enqueue_download(batch)
        mark("d2h")

    def _fork(self, batch: int):
        """Yield ``(lane, raw stream)``: one frame runs on the current stream; several each run on
        their own lane stream, forked from and joined back into the current one."""
        import torch

        main = torch.cuda.current_stream(self.device)
        if batch == 1:
            yield 0, main.cuda_stream
            return
        lanes = self.lane_streams[:batch]
        for s in lanes:
            s.wait_stream(main)
        for b, s in enumerate(lanes):
            yield b, s.cuda_stream
        for s in lanes:
            main.wait_stream(s)

    def _graph(self, batch: int, bucket: int):
        """The launcher of the captured graph of (batch, bucket) (:class:`GraphLaunch` through the
        driver, or :class:`TorchGraphLaunch` where torch hides the executable graph), captured on first
        use; ``None`` once capture failed."""
        import torch

        key = (batch, bucket)
        if key not in self._graphs:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(self.stream)
            autotune = self.options.cudnn_autotune
            with cudnn_autotuned(autotune), torch.cuda.stream(side), torch.inference_mode():
                for _ in range(2):  # warm-up outside the capture (cuDNN algorithm choice, workspaces)
                    self._enqueue(batch, bucket)
            self.stream.wait_stream(side)
            g = torch.cuda.CUDAGraph()
            try:  # the capture under the same flags: it finds the warm-up's choice in torch's plan cache
                with cudnn_autotuned(autotune), torch.inference_mode(), torch.cuda.graph(g, stream=self.stream,
                                                                                          capture_error_mode="thread_local"):
                    self._enqueue(batch, bucket)
            except Exception as exc:  # e.g. an enqueue that refuses to be captured: run eagerly from now on
                log.warning("CUDA graph capture failed (%s: %s); running without a graph from now on", type(exc).__name__, exc)
                torch.cuda.synchronize(self.device)
                self.use_graph = False
                return None
            torch.cuda.synchronize(self.device)
            handle = raw_graph_exec(g)
            self._graphs[key] = (GraphLaunch(g, handle, self.stream.cuda_stream, self.cuda_device) if handle is not None
                                 else TorchGraphLaunch(g, self.device))
        return self._graphs[key]

    def submit(self, clouds: Sequence[np.ndarray], score_threshold: float | None = None) -> None:
        """Stage validated float32 ``[N_i, 4]`` clouds into pinned memory and enqueue the batch (a
        graph replay) without waiting; :meth:`collect` waits and returns the packed rows."""
        if self._pending is not None:
            raise ConfigError("DevicePipeline.submit: the previous submission was not collected")
        batch = len(clouds)
        if not 1 <= batch <= self.max_batch:
            raise ConfigError(f"DevicePipeline: batch of {batch} frames; this pipeline takes 1..{self.max_batch}")
        t0 = perf_counter()
        n_max = int(clouds[0].shape[0]) if batch == 1 else max(int(c.shape[0]) for c in clouds)
        if n_max > self.bufs.capacity:
            self._ensure_points(n_max)
        bucket = min(point_bucket(n_max), self.bufs.capacity)
        self.bufs.stage(clouds)
        t1 = perf_counter()
        default_thr = score_threshold is None or float(score_threshold) == float(self.cfg.postprocess.score_threshold)
        launcher = (self._graphs.get((batch, bucket)) or self._graph(batch, bucket)) if self.use_graph and default_thr else None
        events = None
        if launcher is not None:  # a replay needs no autograd mode (entering one costs ~0.1 ms of CPU) nor a stream switch
            launcher.launch()
        else:  # eager: on the dedicated stream (never the legacy default stream, which TensorRT would serialize)
            import torch

            events = []
            with cudnn_autotuned(self.options.cudnn_autotune), torch.cuda.stream(self.stream), torch.inference_mode():
                self._enqueue(batch, bucket, events, None if default_thr else score_threshold)
        self._pending = (launcher, events, t0, t1)

    @property
    def has_pending(self) -> bool:
        return self._pending is not None

    def collect(self) -> dict[str, float]:
        """Wait for the last :meth:`submit`; returns its timings in ms. Its results are then in the pinned
        output rows, read through ``self.bufs.rows`` (:class:`PackedRows`, whose ``frame_result`` copies):
        valid until this pipeline's next :meth:`submit`."""
        if self._pending is None:
            raise ConfigError("DevicePipeline.collect: nothing was submitted")
        launcher, events, t0, t1 = self._pending
        self._pending = None
        timings: dict[str, float] = {}
        if events is None:
            launcher.wait()
            timings["gpu"] = launcher.elapsed_ms()
        else:
            events[-1][1].synchronize()
            for (_, a), (name, b) in zip(events, events[1:]):
                timings[name] = a.elapsed_time(b)
            timings["gpu"] = events[0][1].elapsed_time(events[-1][1])
        t2 = perf_counter()
        timings["host_stage"] = (t1 - t0) * 1e3  # staging into pinned memory (host)
        timings["host_wait"] = (t2 - t1) * 1e3  # enqueue / replay + waiting for the GPU (and, overlapped, the caller)
        timings["total"] = (t2 - t0) * 1e3
        return timings

    def free(self) -> None:
        if self._pending is not None:
            self.collect()
        for launcher in self._graphs.values():
            launcher.free()
        self._graphs.clear()
        self.network.free()
        for stage in (*self.vox, *reversed(self.post)):
            stage.free()
        self.bufs.close()


class TorchGraphLaunch:
    """:class:`~pointpillars_trt.cuda.graph_launch.GraphLaunch`'s interface through torch (a torch
    without ``CUDAGraph.raw_cuda_graph_exec``): ``replay()`` on the current stream between two torch events."""

    def __init__(self, graph: Any, device: Any) -> None:
        import torch

        self.graph, self.device = graph, device
        self._start, self._stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def launch(self) -> None:
        import torch

        stream = torch.cuda.current_stream(self.device)  # looked up once (Event.record() would look it up twice)
        self._start.record(stream)
        self.graph.replay()
        self._stop.record(stream)

    def wait(self) -> None:
        self._stop.synchronize()

    def elapsed_ms(self) -> float:
        return self._start.elapsed_time(self._stop)

    def free(self) -> None:
        self.graph = None


def _record():
    import torch

    e = torch.cuda.Event(enable_timing=True)
    e.record()
    return e


class DeviceExecutor(Executor):
    """Frames through :class:`DevicePipeline` s, ``max_batch`` at a time. With more than one
    group, two pipelines (the second made on first use: its own buffers, network form and graphs,
    about as much GPU memory again) take turns, so one group's staging on the host overlaps the
    previous group's GPU work (each pipeline's group is collected before it takes the next).
    ``make_network()`` builds a network form for one pipeline."""

    checks_points = True  # voxelize.cu counts the NaN/inf rows and measures the intensity range

    def __init__(self, cfg: PointPillarsConfig, make_network: Callable[[], Any], options: DeviceOptions, device: Any) -> None:
        self.config, self.options, self.device = cfg, options, device
        self._make_network = make_network
        self.pipeline = DevicePipeline(cfg, make_network(), options, device)
        set_precision_mode(self.pipeline.network.precision)
        self.max_pillars, self.max_batch = self.pipeline.max_pillars, options.max_batch
        self._second: DevicePipeline | None = None
        self._thread = threading.local()

    @property
    def description(self) -> str:
        graph = "one CUDA graph per batch" if self.pipeline.use_graph else "no CUDA graph"
        return f"device ({self.device}): {self.pipeline.network.describe()} -> CUDA post-processing; {graph}"

    def run(self, clouds: Sequence[np.ndarray], score_threshold: float | None = None) -> list[FrameResult]:
        if not getattr(self._thread, "current", False):  # a thread's first call: make the GPU's context current there
            self.pipeline.cuda_device.make_current()
            self._thread.current = True
        step = self.max_batch
        if len(clouds) <= step:  # one group (every single-frame detect): no second pipeline, no turns
            self.pipeline.submit(clouds, score_threshold)
            return self._collect(self.pipeline, len(clouds))
        holds = self.pipeline.bufs.holds  # input_buffer()'s row: the first group overwrites it, so copy it out
        clouds = [c.copy() if holds(c) else c for c in clouds]
        starts = list(range(0, len(clouds), step))
        if self._second is None:
            self._second = DevicePipeline(self.config, self._make_network(), self.options, self.device)
        pipes = [self.pipeline, self._second]
        results: list[FrameResult] = []
        pending: tuple[DevicePipeline, int] | None = None
        try:
            for i, s in enumerate(starts):
                pipe = pipes[i % 2]
                pipe.submit(clouds[s: s + step], score_threshold)
                if pending is not None:  # the other pipeline's group ran while this one was staged
                    results += self._collect(*pending)
                pending = (pipe, min(step, len(clouds) - s))
            if pending is not None:
                results += self._collect(*pending)
                pending = None
        finally:
            for pipe in pipes:  # an error left a submission behind: drain it
                if pipe.has_pending:
                    pipe.collect()
        return results

    def input_buffer(self, num_points: int) -> np.ndarray:
        """The first pipeline's pinned staging row for one cloud (:meth:`DevicePipeline.input_row`)."""
        return self.pipeline.input_row(num_points)

    def _collect(self, pipe: DevicePipeline, n: int) -> list[FrameResult]:
        timings = pipe.collect()
        result = pipe.bufs.rows.frame_result  # views into the rows collect() returns
        if n == 1:  # collect() made the timings for this frame alone
            return [result(0, timings)]
        return [result(b, dict(timings)) for b in range(n)]

    def close(self) -> None:
        for pipe in (self.pipeline, self._second):
            if pipe is not None:
                pipe.free()
        self._second = None


__all__ = ["DeviceExecutor", "DevicePipeline", "TorchGraphLaunch", "set_precision_mode", "torch_cuda_device"]
