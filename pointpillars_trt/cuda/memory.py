"""Device buffers, pinned host buffers and streams through the CUDA driver API.

All objects free their memory in :meth:`free` (idempotent) and on garbage collection; the
device's primary context is made current first, so they work on any thread.
Pointers and stream handles are plain ``int`` so they can be handed to TensorRT
(``set_tensor_address``, ``execute_async_v3``), to our kernels and to PyTorch alike.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .bindings import bindings, check
from .device import CudaDevice, get_device


class _DriverObject:
    """The lifecycle the buffers, streams and events share: one driver handle, made on ``device``,
    released by ``_release(handle)`` in :meth:`free` (idempotent, the device's context made current
    first) and on garbage collection; using it after :meth:`free` raises ``ValueError``."""

    _handle = None

    def __init__(self, device: CudaDevice | None) -> None:
        self.device = device or get_device()
        self.device.make_current()

    def _release(self, handle) -> None:  # pragma: no cover - each subclass says how
        raise NotImplementedError

    def _live(self):
        if self._handle is None:
            raise ValueError(f"{type(self).__name__} used after free()")
        return self._handle

    def free(self) -> None:
        if self._handle is not None:
            try:
                self.device.make_current()
                self._release(self._handle)
            finally:
                self._handle = None

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:
            pass


class DeviceBuffer(_DriverObject):
    """``nbytes`` of device memory (``cuMemAlloc``; at least 1 byte is allocated)."""

    def __init__(self, nbytes: int, device: CudaDevice | None = None) -> None:
        super().__init__(device)
        self.nbytes = int(nbytes)
        self._handle = check(bindings()[0].cuMemAlloc(max(self.nbytes, 1)), "cuMemAlloc")

    def _release(self, handle) -> None:
        check(bindings()[0].cuMemFree(handle), "cuMemFree")

    @property
    def ptr(self) -> int:
        return int(self._live())

    def memset_async(self, stream: int, nbytes: int | None = None, value: int = 0) -> None:
        """Set the first ``nbytes`` (all by default) bytes to ``value`` on ``stream``."""
        n = self.nbytes if nbytes is None else int(nbytes)
        if n:
            drv = bindings()[0]
            check(drv.cuMemsetD8Async(drv.CUdeviceptr(self.ptr), value, n, drv.CUstream(int(stream))), "cuMemsetD8Async")


class PinnedBuffer(_DriverObject):
    """Page-locked host memory (``cuMemHostAlloc``) seen as numpy arrays; H2D/D2H copies from it
    are truly asynchronous."""

    def __init__(self, nbytes: int, device: CudaDevice | None = None) -> None:
        super().__init__(device)
        self.nbytes = int(nbytes)
        self._handle = check(bindings()[0].cuMemHostAlloc(max(self.nbytes, 1), 0), "cuMemHostAlloc")

    def _release(self, handle) -> None:
        check(bindings()[0].cuMemFreeHost(handle), "cuMemFreeHost")

    @property
    def ptr(self) -> int:
        return int(self._live())

    def view(self, dtype: np.dtype | type, shape: Sequence[int]) -> np.ndarray:
        """A numpy array over the start of the buffer (no copy)."""
        dtype = np.dtype(dtype)
        count = int(math.prod(shape))
        if count * dtype.itemsize > self.nbytes:
            raise ValueError(f"view {tuple(shape)} {dtype} needs {count * dtype.itemsize} bytes; buffer has {self.nbytes}")
        import ctypes

        raw = (ctypes.c_byte * max(self.nbytes, 1)).from_address(self.ptr)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(tuple(shape))


class Stream(_DriverObject):
    """A non-blocking CUDA stream; ``handle`` is the ``int`` TensorRT and our kernels take."""

    def __init__(self, device: CudaDevice | None = None) -> None:
        super().__init__(device)
        drv = bindings()[0]
        self._handle = check(drv.cuStreamCreate(int(drv.CUstream_flags.CU_STREAM_NON_BLOCKING)), "cuStreamCreate")

    def _release(self, handle) -> None:
        check(bindings()[0].cuStreamDestroy(handle), "cuStreamDestroy")

    @property
    def handle(self) -> int:
        return int(self._live())

    def synchronize(self) -> None:
        check(bindings()[0].cuStreamSynchronize(self._live()), "cuStreamSynchronize")


def copy_h2d_async(dst_ptr: int, src_ptr: int, nbytes: int, stream: int) -> None:
    """Host (pinned for true asynchrony) -> device copy of ``nbytes`` on ``stream``."""
    if nbytes:
        drv = bindings()[0]
        check(drv.cuMemcpyHtoDAsync(drv.CUdeviceptr(int(dst_ptr)), int(src_ptr), int(nbytes), drv.CUstream(int(stream))), "cuMemcpyHtoDAsync")


def copy_d2h_async(dst_ptr: int, src_ptr: int, nbytes: int, stream: int) -> None:
    """Device -> host copy of ``nbytes`` on ``stream``."""
    if nbytes:
        drv = bindings()[0]
        check(drv.cuMemcpyDtoHAsync(int(dst_ptr), drv.CUdeviceptr(int(src_ptr)), int(nbytes), drv.CUstream(int(stream))), "cuMemcpyDtoHAsync")


def copy_d2d_async(dst_ptr: int, src_ptr: int, nbytes: int, stream: int) -> None:
    if nbytes:
        drv = bindings()[0]
        check(
            drv.cuMemcpyDtoDAsync(drv.CUdeviceptr(int(dst_ptr)), drv.CUdeviceptr(int(src_ptr)), int(nbytes), drv.CUstream(int(stream))),
            "cuMemcpyDtoDAsync",
        )


def mapped_pointer(host_ptr: int) -> int:
    """The device address of pinned host memory (``cudaHostAlloc`` / ``cuMemHostAlloc``, as torch's
    ``pin_memory`` allocates it), through which kernels read and write it over the bus: with unified
    addressing the host address itself. :class:`~pointpillars_trt.errors.CudaError` names the driver's
    reason where the memory is not pinned or the device cannot map host memory."""
    drv = bindings()[0]
    return int(check(drv.cuMemHostGetDevicePointer(int(host_ptr), 0), "cuMemHostGetDevicePointer"))


def stream_synchronize(stream: int) -> None:
    drv = bindings()[0]
    check(drv.cuStreamSynchronize(drv.CUstream(int(stream))), "cuStreamSynchronize")


class Event(_DriverObject):
    """A CUDA event for timing work on a stream (``cuEventRecord`` / ``cuEventElapsedTime``)."""

    def __init__(self, device: CudaDevice | None = None) -> None:
        super().__init__(device)
        self._handle = check(bindings()[0].cuEventCreate(0), "cuEventCreate")

    def _release(self, handle) -> None:
        check(bindings()[0].cuEventDestroy(handle), "cuEventDestroy")

    def record(self, stream: int) -> None:
        drv = bindings()[0]
        check(drv.cuEventRecord(self._live(), drv.CUstream(int(stream))), "cuEventRecord")

    def elapsed_ms(self, later: "Event") -> float:
        """Milliseconds from this event to ``later`` (both recorded and completed)."""
        return float(check(bindings()[0].cuEventElapsedTime(self._live(), later._live()), "cuEventElapsedTime"))
