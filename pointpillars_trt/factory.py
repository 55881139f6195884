"""One factory: which executor runs a detector, and how it is built from weights or artifacts.

``Backend.AUTO`` picks, in order: the whole-frame GPU pipeline when CUDA is usable (with the
TensorRT engines when an engine folder holds them and TensorRT imports); ONNX Runtime when
installed; torch. :func:`choose_backend` says why it chose what it chose.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any, Mapping

from .config import PointPillarsConfig
from .errors import BackendUnavailableError, ConfigError
from .executors.base import Executor
from .options import (
    Backend, DetectorOptions, DeviceOptions, HostOptions, PfnPlacement, check_option_names, option_names, parse_options,
)

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def cuda_unavailable_reason() -> str | None:
    """Why the device executor cannot run here (no CUDA GPU for torch, no cuda-python or NVRTC), or None."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "torch sees no CUDA GPU"
        from .cuda.device import cuda_unavailable_reason as driver_reason
        from .cuda.nvrtc import nvrtc_version

        reason = driver_reason(0)
        if reason:
            return reason
        nvrtc_version()
    except Exception as exc:  # a missing or broken CUDA install: the reason is the message
        return f"{type(exc).__name__}: {exc}"
    return None


def module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def engine_files(engine_dir: Path) -> bool:
    """Whether ``engine_dir`` holds TensorRT engines (as opposed to ONNX graphs only)."""
    return any((engine_dir / f"pfn.{ext}").is_file() for ext in ("engine", "plan"))


def choose_backend(requested: Backend | str, *, device: str | None = None, engine_dir: Path | None = None) -> tuple[Backend, str]:
    """``(backend, why)`` for ``requested``; ``AUTO`` is resolved as this module's docstring says.
    ``device="cpu"`` keeps AUTO on the host."""
    requested = Backend.parse(requested, "backend")
    if requested != Backend.AUTO:
        return requested, "requested"
    on_cpu = device is not None and str(device).startswith("cpu")
    reason = "device='cpu' was asked for" if on_cpu else cuda_unavailable_reason()
    if reason is None:
        if engine_dir is None:
            return Backend.GPU, "CUDA is usable"
        if engine_files(engine_dir) and module_available("tensorrt"):
            return Backend.GPU, "CUDA is usable and the folder holds TensorRT engines"
        reason = "the folder holds no TensorRT engine, or TensorRT does not import"
    if module_available("onnxruntime") and module_available("onnx"):
        return Backend.ONNXRUNTIME, f"ONNX Runtime is installed ({reason})"
    if engine_dir is not None:
        raise BackendUnavailableError(f"{engine_dir}: no runtime for these artifacts here ({reason}; ONNX Runtime is not installed)")
    return Backend.TORCH, f"neither CUDA nor ONNX Runtime ({reason})"


def _host_option_names(backend: Backend) -> tuple[str, ...]:
    from .network.base import backend_entry

    return option_names(HostOptions, backend_entry(str(backend)).options)


def all_option_names() -> tuple[str, ...]:
    """Every option any executor takes (besides ``backend`` and the weights)."""
    from .network.base import available_backends, backend_entry

    backends = [backend_entry(b).options for b in available_backends()]
    return option_names(DetectorOptions, DeviceOptions, HostOptions, *backends)


def split_options(backend: Backend, given: Mapping[str, Any], auto: bool) -> tuple[DetectorOptions, dict[str, Any]]:
    """``(facade options, the executor's option values)`` of ``given`` for ``backend``.

    A name no executor takes is a :class:`ConfigError` (with the closest valid name). A name that
    another backend takes is an error when ``backend`` was asked for, and is left out with a warning
    when AUTO chose it (the caller could not know which backend it would get)."""
    check_option_names(given, all_option_names(), "detector")
    facade_names = option_names(DetectorOptions)
    valid = option_names(DeviceOptions) if backend == Backend.GPU else _host_option_names(backend)
    executor, ignored = {}, []
    for k, v in given.items():
        if k in facade_names:
            continue
        if k in valid:
            executor[k] = v
        elif auto:
            ignored.append(k)
        else:
            raise ConfigError(f"detector: option {k!r} does not apply to backend {backend}; its options: "
                              f"{', '.join(facade_names + valid)}")
    if ignored:
        log.warning("backend auto chose %s, which does not take option(s) %s: ignored", backend, ", ".join(ignored))
    facade = parse_options(DetectorOptions, {k: v for k, v in given.items() if k in facade_names}, "detector")
    return facade, executor


def build_executor(cfg: PointPillarsConfig, backend: Backend, values: Mapping[str, Any], *,
                   state_dict: Mapping[str, Any] | None = None, engine_dir: Path | None = None) -> Executor:
    """The executor of ``backend`` for ``cfg`` from the weights ``state_dict`` or the artifacts in
    ``engine_dir``, configured by the option ``values`` (checked by :func:`split_options`)."""
    if backend == Backend.GPU:
        return _device_executor(cfg, parse_options(DeviceOptions, values, "gpu backend"), state_dict, engine_dir)
    from .executors.host import HostExecutor
    from .network.base import create_backend

    host_names = option_names(HostOptions)
    host = parse_options(HostOptions, {k: v for k, v in values.items() if k in host_names}, f"{backend} backend")
    be = create_backend(str(backend), cfg, state_dict=state_dict, engine_dir=engine_dir,
                        **{k: v for k, v in values.items() if k not in host_names})
    return HostExecutor(cfg, be, host)


def _device_executor(cfg: PointPillarsConfig, opts: DeviceOptions, state_dict, engine_dir: Path | None) -> Executor:
    from .cuda.device import get_device
    from .executors.device import DeviceExecutor, torch_cuda_device
    from .network.device import EngineNetwork, FusedTorchNetwork, TorchNetwork

    dev = torch_cuda_device(opts.device)
    cuda = get_device(dev.index)
    if opts.max_batch is None:
        from .tensorrt.runner import default_max_batch

        opts = dataclasses.replace(opts, max_batch=default_max_batch(cuda.info))
    if engine_dir is not None:
        from .tensorrt.engines import EngineSet

        def make_network():
            engines = EngineSet(engine_dir, cfg, cuda, on_mismatch=str(opts.on_mismatch))
            return EngineNetwork(cfg, engines, dev)
    else:
        form = FusedTorchNetwork if opts.pfn == PfnPlacement.FUSED else TorchNetwork

        def make_network():
            return form(cfg, state_dict, dev, precision=opts.precision, channels_last=opts.channels_last)
    return DeviceExecutor(cfg, make_network, opts, dev)


__all__ = ["all_option_names", "build_executor", "choose_backend", "cuda_unavailable_reason", "split_options"]
