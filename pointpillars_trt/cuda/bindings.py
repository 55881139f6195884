"""Lazy import of NVIDIA's ``cuda-python`` bindings and checking of their result codes.

``cuda-python`` 12.6+ / 13.x expose ``cuda.bindings.driver`` and ``cuda.bindings.nvrtc``; older
12.x releases expose the same functions as ``cuda.cuda`` and ``cuda.nvrtc``. Every binding call
returns a tuple ``(status, *values)``; :func:`check` and :func:`check_nvrtc` turn a failed status
into :class:`~pointpillars_trt.errors.CudaError` naming the call, and unwrap the values.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from ..errors import BackendUnavailableError, CudaError

INSTALL_HINT = "install NVIDIA's CUDA Python bindings: pip install 'cuda-python>=12' (13.x for CUDA 13 drivers)"


@functools.lru_cache(maxsize=None)
def bindings() -> tuple[ModuleType, ModuleType]:
    """``(driver, nvrtc)`` modules of cuda-python; raises :class:`BackendUnavailableError` if absent."""
    try:
        from cuda.bindings import driver, nvrtc  # cuda-python >= 12.6, 13.x
    except ImportError:
        try:
            from cuda import cuda as driver  # type: ignore[no-redef]  # cuda-python 11.x / early 12.x
            from cuda import nvrtc  # type: ignore[no-redef]
        except ImportError as exc:
            raise BackendUnavailableError(f"CUDA kernels need cuda-python, which is not installed: {INSTALL_HINT}") from exc
    return driver, nvrtc


def driver() -> ModuleType:
    return bindings()[0]


def nvrtc() -> ModuleType:
    return bindings()[1]


def _unwrap(result: Any) -> tuple[Any, tuple]:
    if isinstance(result, tuple):
        return result[0], result[1:]
    return result, ()


def _single(values: tuple) -> Any:
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def check(result: Any, call: str) -> Any:
    """Unwrap a driver-API result ``(CUresult, *values)``: the value (or a tuple of values, or
    ``None``); raises :class:`CudaError` with the CUresult name and description on failure."""
    status, values = _unwrap(result)
    if int(status) != 0:
        raise CudaError(f"{call} failed: {describe_cu_result(status)}")
    return _single(values)


def check_nvrtc(result: Any, call: str) -> Any:
    """Unwrap an NVRTC result ``(nvrtcResult, *values)``; raises :class:`CudaError` on failure."""
    status, values = _unwrap(result)
    if int(status) != 0:
        raise CudaError(f"{call} failed: {describe_nvrtc_result(status)}")
    return _single(values)


def describe_cu_result(status: Any) -> str:
    """``CUDA_ERROR_X (code): description``, as far as the driver can tell."""
    name = getattr(status, "name", None) or f"CUresult {int(status)}"
    try:
        drv = driver()
        err, text = drv.cuGetErrorString(status)
        if int(err) == 0 and text:
            text = text.decode() if isinstance(text, bytes) else str(text)
            return f"{name} ({int(status)}): {text}"
    except Exception:  # the driver itself may be what is missing
        pass
    return f"{name} ({int(status)})"


def describe_nvrtc_result(status: Any) -> str:
    name = getattr(status, "name", None) or f"nvrtcResult {int(status)}"
    return f"{name} ({int(status)})"
