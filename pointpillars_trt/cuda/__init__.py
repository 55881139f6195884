"""CUDA kernels of the package, compiled at run time with NVRTC through NVIDIA's cuda-python.

Nothing here imports cuda-python at package import time: the first call that needs it does, and
raises :class:`~pointpillars_trt.errors.BackendUnavailableError` naming what to install.

* :mod:`.bindings` — the ``cuda.bindings`` import shim and result checking
* :mod:`.device`   — a device's primary context and attributes
* :mod:`.memory`   — device / pinned host buffers, streams, async copies
* :mod:`.nvrtc`    — NVRTC compile + on-disk cache + ``cuLaunchKernel`` (reused by every kernel)
* :mod:`.scatter`  — :class:`~.scatter.CudaScatter` and :func:`~.scatter.scatter_torch`
"""
