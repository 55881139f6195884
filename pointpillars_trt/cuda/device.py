"""One CUDA device through the driver API: its primary context (shared with PyTorch and
TensorRT, which use the runtime API) and the attributes kernels are compiled for."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

from ..errors import BackendUnavailableError, CudaError
from .bindings import INSTALL_HINT, bindings, check


@dataclass(frozen=True)
class DeviceInfo:
    """``name`` as the driver reports it, ``compute_capability`` ``(major, minor)``."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    multiprocessor_count: int
    driver_version: int  # e.g. 13000 for CUDA 13.0
    max_shared_per_block_optin: int = 48 * 1024  # bytes of shared memory a block may opt in to (cuFuncSetAttribute)

    @property
    def arch(self) -> str:
        """``sm_XY`` of the device, e.g. ``sm_90`` for an H100."""
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


class CudaDevice:
    """Device ``index`` with its primary context retained for the life of the process.

    :meth:`make_current` binds the primary context to the calling thread (the context PyTorch's
    and TensorRT's runtime-API calls use), so device pointers are shared between them.
    """

    def __init__(self, index: int = 0) -> None:
        driver, _ = bindings()
        try:
            status = driver.cuInit(0)
        except Exception as exc:  # cuda-python raises when libcuda.so itself cannot be loaded
            raise BackendUnavailableError(f"no NVIDIA driver could be loaded ({exc}); a CUDA GPU is needed") from exc
        status = status[0] if isinstance(status, tuple) else status
        if int(status) != 0:
            raise BackendUnavailableError(f"cuInit failed ({getattr(status, 'name', int(status))}): no usable CUDA GPU")
        count = check(driver.cuDeviceGetCount(), "cuDeviceGetCount")
        if not 0 <= index < count:
            raise BackendUnavailableError(f"CUDA device {index} requested, but the driver sees {count} device(s)")
        self.index = index
        self.handle = check(driver.cuDeviceGet(index), "cuDeviceGet")
        self.context = check(driver.cuDevicePrimaryCtxRetain(self.handle), "cuDevicePrimaryCtxRetain")
        self.make_current()
        attr = driver.CUdevice_attribute
        major = check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.handle), "cuDeviceGetAttribute")
        minor = check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.handle), "cuDeviceGetAttribute")
        sms = check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, self.handle), "cuDeviceGetAttribute")
        raw_name = check(driver.cuDeviceGetName(256, self.handle), "cuDeviceGetName")
        name = raw_name.split(b"\0", 1)[0].decode(errors="replace") if isinstance(raw_name, bytes) else str(raw_name)
        version = check(driver.cuDriverGetVersion(), "cuDriverGetVersion")
        optin = check(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, self.handle),
                      "cuDeviceGetAttribute")
        self.info = DeviceInfo(index, name.strip(), (int(major), int(minor)), int(sms), int(version), int(optin))

    def make_current(self) -> None:
        driver, _ = bindings()
        check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")

    def synchronize(self) -> None:
        self.make_current()
        check(bindings()[0].cuCtxSynchronize(), "cuCtxSynchronize")

    def __repr__(self) -> str:
        i = self.info
        return f"CudaDevice({i.index}: {i.name}, sm_{i.compute_capability[0]}{i.compute_capability[1]})"


_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _device(index: int) -> CudaDevice:
    return CudaDevice(index)


def get_device(index: int = 0) -> CudaDevice:
    """The process-wide :class:`CudaDevice` for ``index``, made current on the calling thread."""
    with _lock:
        dev = _device(int(index))
    dev.make_current()
    return dev


def cuda_unavailable_reason(index: int = 0) -> str | None:
    """``None`` when cuda-python and CUDA device ``index`` are usable, else why not (for skips)."""
    try:
        get_device(index)
    except BackendUnavailableError as exc:
        return str(exc)
    except CudaError as exc:
        return f"CUDA device {index} unusable: {exc}"
    except Exception as exc:  # anything else in a broken install
        return f"CUDA unusable ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
    return None
