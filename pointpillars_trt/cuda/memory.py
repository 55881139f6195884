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


class DeviceBuffer:
    """``nbytes`` of device memory (``cuMemAlloc``; at least 1 byte is allocated)."""

    def __init__(self, nbytes: int, device: CudaDevice | None = None) -> None:
        self.device = device or get_device()
        self.device.make_current()
        self.nbytes = int(nbytes)
        self._ptr = check(bindings()[0].cuMemAlloc(max(self.nbytes, 1)), "cuMemAlloc")

    @property
    def ptr(self) -> int:
        if self._ptr is None:
            raise ValueError("DeviceBuffer used after free()")
        return int(self._ptr)

    def memset_async(self, stream: int, nbytes: int | None = None, value: int = 0) -> None:
        """Set the first ``nbytes`` (all by default) bytes to ``value`` on ``stream``."""
        n = self.nbytes if nbytes is None else int(nbytes)
        if n:
            drv = bindings()[0]
            check(drv.cuMemsetD8Async(drv.CUdeviceptr(self.ptr), value, n, drv.CUstream(int(stream))), "cuMemsetD8Async")

    def free(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            try:
                self.device.make_current()
                check(bindings()[0].cuMemFree(self._ptr), "cuMemFree")
            finally:
                self._ptr = None

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:
            pass


class PinnedBuffer:
    """Page-locked host memory (``cuMemHostAlloc``) seen as numpy arrays; H2D/D2H copies from it
    are truly asynchronous."""

    def __init__(self, nbytes: int, device: CudaDevice | None = None) -> None:
        self.device = device or get_device()
        self.device.make_current()
        self.nbytes = int(nbytes)
        self._ptr = check(bindings()[0].cuMemHostAlloc(max(self.nbytes, 1), 0), "cuMemHostAlloc")

    @property
    def ptr(self) -> int:
        if self._ptr is None:
            raise ValueError("PinnedBuffer used after free()")
        return int(self._ptr)

    def view(self, dtype: np.dtype | type, shape: Sequence[int]) -> np.ndarray:
        """A numpy array over the start of the buffer (no copy)."""
        dtype = np.dtype(dtype)
        count = int(math.prod(shape))
        if count * dtype.itemsize > self.nbytes:
            raise ValueError(f"view {tuple(shape)} {dtype} needs {count * dtype.itemsize} bytes; buffer has {self.nbytes}")
        import ctypes

        raw = (ctypes.c_byte * max(self.nbytes, 1)).from_address(self.ptr)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(tuple(shape))

    def free(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            try:
                self.device.make_current()
                check(bindings()[0].cuMemFreeHost(self._ptr), "cuMemFreeHost")
            finally:
                self._ptr = None

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:
            pass


class Stream:
    """A non-blocking CUDA stream; ``handle`` is the ``int`` TensorRT and our kernels take."""

    def __init__(self, device: CudaDevice | None = None) -> None:
        self.device = device or get_device()
        self.device.make_current()
        drv = bindings()[0]
        self._stream = check(drv.cuStreamCreate(int(drv.CUstream_flags.CU_STREAM_NON_BLOCKING)), "cuStreamCreate")

    @property
    def handle(self) -> int:
        if self._stream is None:
            raise ValueError("Stream used after free()")
        return int(self._stream)

    def synchronize(self) -> None:
        check(bindings()[0].cuStreamSynchronize(self._stream), "cuStreamSynchronize")

    def free(self) -> None:
        if getattr(self, "_stream", None) is not None:
            try:
                self.device.make_current()
                check(bindings()[0].cuStreamDestroy(self._stream), "cuStreamDestroy")
            finally:
                self._stream = None

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:
            pass


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


def stream_synchronize(stream: int) -> None:
    drv = bindings()[0]
    check(drv.cuStreamSynchronize(drv.CUstream(int(stream))), "cuStreamSynchronize")


class Event:
    """A CUDA event for timing work on a stream (``cuEventRecord`` / ``cuEventElapsedTime``)."""

    def __init__(self, device: CudaDevice | None = None) -> None:
        self.device = device or get_device()
        self.device.make_current()
        self._event = check(bindings()[0].cuEventCreate(0), "cuEventCreate")

    def record(self, stream: int) -> None:
        drv = bindings()[0]
        check(drv.cuEventRecord(self._event, drv.CUstream(int(stream))), "cuEventRecord")

    def elapsed_ms(self, later: "Event") -> float:
        """Milliseconds from this event to ``later`` (both recorded and completed)."""
        return float(check(bindings()[0].cuEventElapsedTime(self._event, later._event), "cuEventElapsedTime"))

    def free(self) -> None:
        if getattr(self, "_event", None) is not None:
            try:
                self.device.make_current()
                check(bindings()[0].cuEventDestroy(self._event), "cuEventDestroy")
            finally:
                self._event = None

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:
            pass
