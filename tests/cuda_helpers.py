"""Skip helpers and small host<->device utilities for the CUDA tests.

Not a ``conftest.py`` on purpose: a second ``conftest`` module under tests/ shadows
``tests/conftest.py`` for the modules that do ``from conftest import ...``.
Use: ``from cuda_helpers import cuda_device  # noqa: F401`` (a fixture that skips cleanly when
cuda-python or a CUDA GPU is missing), ``nvrtc_skip_reason()`` for CPU-side NVRTC tests.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest


@functools.lru_cache(maxsize=None)
def cuda_skip_reason() -> str | None:
    """Why CUDA tests cannot run here, or None."""
    try:
        from pointpillars_trt.cuda.device import cuda_unavailable_reason
    except Exception as exc:  # pragma: no cover - broken install
        return f"pointpillars_trt.cuda unusable: {exc}"
    return cuda_unavailable_reason(0)


@functools.lru_cache(maxsize=None)
def nvrtc_skip_reason() -> str | None:
    """Why NVRTC cannot compile here (no cuda-python, or no libnvrtc), or None. Needs no GPU."""
    try:
        from pointpillars_trt.cuda.nvrtc import nvrtc_version

        nvrtc_version()
    except Exception as exc:
        return f"NVRTC unavailable ({type(exc).__name__}: {exc}); pip install cuda-python nvidia-cuda-nvrtc"
    return None


@pytest.fixture(scope="session")
def cuda_device():
    """The CUDA device 0 (primary context current), or a clean skip."""
    reason = cuda_skip_reason()
    if reason:
        pytest.skip(reason)
    from pointpillars_trt.cuda.device import get_device

    return get_device(0)


@pytest.fixture(scope="session")
def torch_cuda(cuda_device):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    return torch


def upload(array: np.ndarray, device):
    """A DeviceBuffer holding a copy of ``array`` (synchronous)."""
    from pointpillars_trt.cuda.memory import DeviceBuffer, copy_h2d_async, stream_synchronize

    a = np.ascontiguousarray(array)
    buf = DeviceBuffer(a.nbytes, device)
    copy_h2d_async(buf.ptr, a.ctypes.data, a.nbytes, 0)
    stream_synchronize(0)
    return buf


def download(ptr: int, shape, dtype, stream: int = 0) -> np.ndarray:
    """Copy ``shape``/``dtype`` from device pointer ``ptr`` after ``stream`` finishes."""
    from pointpillars_trt.cuda.memory import copy_d2h_async, stream_synchronize

    out = np.empty(shape, dtype=dtype)
    stream_synchronize(stream)
    copy_d2h_async(out.ctypes.data, ptr, out.nbytes, stream)
    stream_synchronize(stream)
    return out
