"""Replaying a captured CUDA graph through the driver API, timed by two driver events.

``torch.cuda.CUDAGraph.replay()`` looks up the current stream and goes through torch's dispatch,
and two ``torch.cuda.Event.record`` calls look the stream up again: about 25 us of host time per
frame on an H200 host. :class:`GraphLaunch` holds the instantiated graph's ``cudaGraphExec_t``
(``CUDAGraph.raw_cuda_graph_exec()``, torch >= 2.8), the stream and two events as driver handles
made once, so one frame costs three driver calls: ``cuEventRecord``, ``cuGraphLaunch``,
``cuEventRecord``. The graph object is kept alive with it (it owns the executable graph and its
memory pool).

The per-frame calls go to ``libcuda`` through :mod:`ctypes` with their prototypes declared once
(:func:`driver_calls`) and the handles held as ``c_void_p``: no argument wrapping, no result enum
per call (cuda-python's wrappers cost 1-3 us per call on the host), and the GIL is released during
each call. The functions bound are the driver ABI's stable entry points (``cuda.h`` names them);
``cuEventElapsedTime_v2`` is used where the driver has it (CUDA >= 12.8), else ``cuEventElapsedTime``.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from ..errors import CudaError
from .device import CudaDevice
from .memory import Event

LIBCUDA_NAMES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
_P, _I = ctypes.c_void_p, ctypes.c_int

#: name -> (argument types) of the driver calls bound here; every one returns a CUresult (int)
PROTOTYPES: dict[str, tuple] = {
    "cuEventRecord": (_P, _P),
    "cuGraphLaunch": (_P, _P),
    "cuEventSynchronize": (_P,),
    "cuEventElapsedTime": (ctypes.POINTER(ctypes.c_float), _P, _P),
}
OPTIONAL_V2 = ("cuEventElapsedTime",)  # use name + "_v2" where the driver exports it


class DriverCalls:
    """The bound functions of one loaded driver library, as attributes named as in :data:`PROTOTYPES`."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        for name, argtypes in PROTOTYPES.items():
            fn = getattr(lib, name + "_v2", None) if name in OPTIONAL_V2 else None
            fn = fn if fn is not None else getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, _I
            setattr(self, name, fn)


@functools.lru_cache(maxsize=None)
def driver_calls() -> DriverCalls | None:
    """The driver's per-frame calls through ctypes, or ``None`` where no driver library loads."""
    for name in LIBCUDA_NAMES:
        try:
            return DriverCalls(ctypes.CDLL(name))
        except (OSError, AttributeError):
            continue
    return None


def _checked(status: int, call: str) -> None:
    """Raise :class:`CudaError` naming ``call`` and the CUresult when ``status`` is not 0."""
    if status:
        from .bindings import bindings, describe_cu_result

        try:
            what = describe_cu_result(bindings()[0].CUresult(status))
        except Exception:  # a code this cuda-python does not know, or no cuda-python
            what = f"CUresult {status}"
        raise CudaError(f"{call} failed: {what}")


def raw_graph_exec(graph: Any) -> int | None:
    """The ``cudaGraphExec_t`` address of an instantiated ``torch.cuda.CUDAGraph``, or ``None``
    when this torch has no ``raw_cuda_graph_exec`` or no driver library loads through ctypes (then
    callers replay through torch)."""
    get = getattr(graph, "raw_cuda_graph_exec", None)
    if get is None or driver_calls() is None:
        return None
    try:
        handle = int(get())
    except (RuntimeError, TypeError, ValueError):
        return None
    return handle or None


class GraphLaunch:
    """One captured graph, launched on one stream between two timing events.

    ``launch()`` enqueues start event, graph, stop event (no host wait); ``wait()`` blocks until
    the stop event completed; ``elapsed_ms()`` is the GPU time between the events. Calls come from
    threads where the device's context is current (the device executor makes it so)."""

    def __init__(self, graph: Any, exec_handle: int, stream: int, device: CudaDevice) -> None:
        calls = driver_calls()
        if calls is None:
            raise CudaError("GraphLaunch: the CUDA driver library could not be loaded through ctypes")
        self.graph = graph  # owns the executable graph: keep it alive as long as the handle is used
        self._calls = calls
        self._exec, self._stream = _P(int(exec_handle)), _P(int(stream))
        self._events = (Event(device), Event(device))  # made, freed (context current) and collected as before
        self._start, self._stop = (_P(int(e._live())) for e in self._events)
        self._ms = ctypes.c_float()
        self._ms_ref = ctypes.byref(self._ms)
        self._record, self._launch, self._sync = calls.cuEventRecord, calls.cuGraphLaunch, calls.cuEventSynchronize
        self._elapsed = calls.cuEventElapsedTime

    def launch(self) -> None:
        # the first failing call's status (the later ones are not made)
        status = self._record(self._start, self._stream) or self._launch(self._exec, self._stream) or self._record(self._stop, self._stream)
        if status:
            _checked(status, "cuEventRecord / cuGraphLaunch / cuEventRecord")

    def wait(self) -> None:
        status = self._sync(self._stop)
        if status:
            _checked(status, "cuEventSynchronize")

    def elapsed_ms(self) -> float:
        status = self._elapsed(self._ms_ref, self._start, self._stop)
        if status:
            _checked(status, "cuEventElapsedTime")
        return self._ms.value

    def free(self) -> None:
        for e in self._events:
            e.free()
        self.graph = None


__all__ = ["DriverCalls", "GraphLaunch", "PROTOTYPES", "driver_calls", "raw_graph_exec"]
