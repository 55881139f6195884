"""Replaying a captured CUDA graph through the driver API, timed by two driver events.

``torch.cuda.CUDAGraph.replay()`` looks up the current stream and goes through torch's dispatch,
and two ``torch.cuda.Event.record`` calls look the stream up again: about 25 us of host time per
frame on an H200 host. :class:`GraphLaunch` holds the instantiated graph's ``cudaGraphExec_t``
(``CUDAGraph.raw_cuda_graph_exec()``, torch >= 2.8), the stream and two events as driver objects
made once, so one frame costs three driver calls: ``cuEventRecord``, ``cuGraphLaunch``,
``cuEventRecord``. The graph object is kept alive with it (it owns the executable graph and its
memory pool).
"""

from __future__ import annotations

from typing import Any

from .bindings import bindings, check
from .device import CudaDevice
from .memory import Event


def raw_graph_exec(graph: Any) -> int | None:
    """The ``cudaGraphExec_t`` address of an instantiated ``torch.cuda.CUDAGraph``, or ``None``
    when this torch has no ``raw_cuda_graph_exec`` (then callers replay through torch)."""
    get = getattr(graph, "raw_cuda_graph_exec", None)
    if get is None:
        return None
    try:
        handle = int(get())
    except (RuntimeError, TypeError, ValueError):
        return None
    return handle or None


class GraphLaunch:
    """One captured graph, launched on one stream between two timing events.

    ``launch()`` enqueues start event, graph, stop event (no host wait); ``wait()`` blocks until
    the stop event completed; ``elapsed_ms()`` is the GPU time between the events."""

    def __init__(self, graph: Any, exec_handle: int, stream: int, device: CudaDevice) -> None:
        drv = bindings()[0]
        self.graph = graph  # owns the executable graph: keep it alive as long as the handle is used
        self._exec = drv.CUgraphExec(int(exec_handle))
        self._stream = drv.CUstream(int(stream))
        self._start, self._stop = Event(device), Event(device)
        self._record, self._launch, self._sync = drv.cuEventRecord, drv.cuGraphLaunch, drv.cuEventSynchronize

    def launch(self) -> None:
        check(self._record(self._start._live(), self._stream), "cuEventRecord")
        check(self._launch(self._exec, self._stream), "cuGraphLaunch")
        check(self._record(self._stop._live(), self._stream), "cuEventRecord")

    def wait(self) -> None:
        check(self._sync(self._stop._live()), "cuEventSynchronize")

    def elapsed_ms(self) -> float:
        return self._start.elapsed_ms(self._stop)

    def free(self) -> None:
        self._start.free()
        self._stop.free()
        self.graph = None


__all__ = ["GraphLaunch", "raw_graph_exec"]
