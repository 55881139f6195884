"""Typed run-time options: everything a user chooses besides the model config (the geometry, anchors
and thresholds are the YAML config's, never an option).

Each group of options is a frozen dataclass; string choices are :class:`Choice` enums (a ``str``
subclass, so ``Precision.FP16 == "fp16"``). :func:`parse_options` builds one from keyword
arguments and raises :class:`~pointpillars_trt.errors.ConfigError` for an unknown or misspelled
option (naming it, the closest valid name and every valid one) or a value of the wrong kind.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar

from .errors import ConfigError


class Choice(str, enum.Enum):
    """A string-valued option; :meth:`parse` accepts the value or the member itself."""

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls, value: Any, what: str = "") -> "Choice":
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower() if isinstance(value, str) else value)
        except ValueError:
            raise ConfigError(f"{what or cls.__name__}: {value!r} is not one of {list(cls.values())}") from None

    def __str__(self) -> str:
        return self.value


class Backend(Choice):
    """Where the network runs. ``AUTO`` picks the fastest the machine has (:func:`pointpillars_trt.detector.choose_backend`)."""

    AUTO = "auto"
    GPU = "gpu"  # the whole frame on the GPU (device executor)
    TORCH = "torch"
    TORCH_CUDA = "torch_cuda"
    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"


class CheckpointFormat(Choice):
    NATIVE = "native"
    OPENPCDET = "openpcdet"
    MMDET3D = "mmdet3d"
    ZHULF0804 = "zhulf0804"


class Precision(Choice):
    FP32 = "fp32"
    FP16 = "fp16"


class OverflowPolicy(Choice):
    """More pillars than allowed: ``WARN`` drops the extra ones and warns with counts; ``ERROR`` raises."""

    WARN = "warn"
    ERROR = "error"


class NonFinitePolicy(Choice):
    """NaN/inf points: ``ERROR`` rejects the cloud; ``DROP`` removes those points."""

    ERROR = "error"
    DROP = "drop"


class PointsOverflowPolicy(Choice):
    """More points than the GPU point buffer holds: ``GROW`` reallocates it; ``ERROR`` raises."""

    GROW = "grow"
    ERROR = "error"


class Voxelizer(Choice):
    AUTO = "auto"  # numba: measured faster than spconv (docs/PERFORMANCE.md)
    NUMBA = "numba"
    SPCONV = "spconv"


class PfnPlacement(Choice):
    """Device executor: ``FUSED`` runs the PFN inside the last voxelization pass (our kernel);
    ``TORCH`` runs the torch PFN (cuBLAS) and our scatter. Engines always run their PFN engine."""

    FUSED = "fused"
    TORCH = "torch"


class MismatchPolicy(Choice):
    """Engines of another TensorRT version or GPU: ``ERROR`` refuses them; ``WARN`` lets TensorRT try."""

    ERROR = "error"
    WARN = "warn"


class ScatterKind(Choice):
    CUDA = "cuda"  # our kernel between the PFN and RPN engines
    NATIVE = "native"  # the exported MFN graph as an engine (ScatterND)


class CanvasClear(Choice):
    CELLS = "cells"  # zero only the cells the previous frame wrote
    MEMSET = "memset"


@dataclass(frozen=True)
class DetectorOptions:
    """Policies of the :class:`~pointpillars_trt.detector.Detector` facade, for every executor."""

    on_overflow: OverflowPolicy = OverflowPolicy.WARN
    nonfinite: NonFinitePolicy = NonFinitePolicy.ERROR


@dataclass(frozen=True)
class HostOptions:
    """The host executor (CPU voxelization and post-processing around a network backend)."""

    voxelizer: Voxelizer = Voxelizer.AUTO


@dataclass(frozen=True)
class TorchOptions:
    device: str = "cpu"


@dataclass(frozen=True)
class TorchCudaOptions:
    """Torch PFN and RPN on CUDA with our scatter kernel; ``precision`` FP32 turns TF32 off (process-wide)."""

    device: str = "cuda"
    precision: Precision = Precision.FP32
    channels_last: bool = True


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """``device``: ``None``/``"auto"`` (CUDA provider first when present), ``"cpu"``, ``"cuda[:N]"``;
    ``precision``: of graphs exported on the fly (graphs of a folder carry their own); ``verify``:
    check each graph's embedded config and weights against the hashes it records."""

    device: str | None = None
    precision: Precision | None = None
    fused: bool = False
    providers: tuple | None = None
    cache_dir: Path | None = None
    threads: int | None = None
    verify: bool = True


@dataclass(frozen=True)
class TensorRTOptions:
    device: str = "cuda"
    on_mismatch: MismatchPolicy = MismatchPolicy.ERROR
    scatter: ScatterKind = ScatterKind.CUDA
    clear: CanvasClear = CanvasClear.CELLS


@dataclass(frozen=True)
class DeviceOptions:
    """The device executor (the whole frame on one GPU).

    ``max_points``: initial capacity of the point buffers (``on_points_overflow``); ``max_batch``:
    frames per replay of :meth:`~pointpillars_trt.detector.Detector.detect_batch` (``None``: 8 on
    a discrete GPU, 2 on an integrated one such as a Jetson); ``use_graph``:
    capture each (batch, point bucket) once as a CUDA graph and replay it; ``channels_last``:
    ``None`` means NHWC in FP16 only (cuDNN's tensor-core kernels; NCHW in FP32);
    ``on_mismatch``: for TensorRT engines (``from_engine_dir``); ``staging_threads``: threads that copy
    the points into pinned memory (:class:`~pointpillars_trt.executors.staging.SplitCopier`; 1: the
    caller alone; ``None``: :func:`~pointpillars_trt.executors.staging.default_staging_threads`,
    ``min(4, cores // 4)``; only batches of at least 1 MiB are split, never a single cloud); ``cudnn_autotune``: let cuDNN time every engine of
    each convolution once, before the graph is captured, and keep the fastest (``torch.backends.cudnn``'s
    ``benchmark`` with no limit, set only around the warm-up and capture); off: cuDNN's heuristic
    choice (on an H200 the timed choice gained nothing: RPN 0.279 against 0.275 ms, 2026-12-02). The timed choice can differ between processes, so fp16 results may differ in their
    last bits from one process to the next (each process stays deterministic). ``batched_post``: the
    post-processing of a batch as one launch per pass for all its frames
    (:class:`~pointpillars_trt.postprocess.cuda.CudaPostProcessor` with ``lanes``) instead of one chain
    of launches per frame, each on its own stream; the same boxes. Off by default: on an H200 it cut the
    post-processing kernel time of a batch of 16 to a third but not the wall time (3714 against 3742 frames/s,
    2026-12-02), and it holds about 0.5 GB more. ``mapped_points``: no host-to-device copy of the points;
    the voxelizer's first pass reads them and their count from the pinned staging rows over the bus
    (mapped host memory) and writes the device copy the later passes read; the same results. True: every
    replay; False: none; ``None`` (default): single frames only, batches through the copy engine. On an
    H200 (2026-12-03) it cut a single frame's GPU time by 25 us on 110k points (0.450 -> 0.425 ms) and 4 us
    on a FOV frame, but 16 lanes reading over the bus at once are slower than the copy engine (4390 -> 4207
    FOV frames/s). Where the device cannot map host memory, ``None`` copies and True raises.
    ``mapped_output``: no device-to-host copy of the results; the post-processor's last pass writes the
    packed output row (boxes, scores, labels, count, and the voxelizer's counters it copies along) straight
    into the pinned host row; the same results. True, False and ``None`` (default: single frames only) as
    for ``mapped_points``. On an H200 (2026-12-03) a FOV frame's GPU time fell from 0.481 to 0.464 ms (no
    device-to-host copy, and no 6 us wait for the copy engine before it), but a batch of 16 writing over
    the bus was slower than one copy (4146-4221 against 4304-4322 FOV frames/s).
    """

    device: str = "cuda"
    precision: Precision = Precision.FP16
    pfn: PfnPlacement = PfnPlacement.FUSED
    use_graph: bool = True
    channels_last: bool | None = None
    max_points: int = 131072
    max_batch: int | None = None
    on_points_overflow: PointsOverflowPolicy = PointsOverflowPolicy.GROW
    on_mismatch: MismatchPolicy = MismatchPolicy.ERROR
    staging_threads: int | None = None
    cudnn_autotune: bool = False
    batched_post: bool = False
    mapped_points: bool | None = None
    mapped_output: bool | None = None


T = TypeVar("T")


def option_names(*classes: type) -> tuple[str, ...]:
    """The field names of option dataclasses, in order, without repeats."""
    names: list[str] = []
    for cls in classes:
        names += [f.name for f in dataclasses.fields(cls) if f.name not in names]
    return tuple(names)


def check_option_names(given: Mapping[str, Any], valid: tuple[str, ...], what: str) -> None:
    """:class:`ConfigError` naming every key of ``given`` not in ``valid`` (with the closest valid name)."""
    unknown = [k for k in given if k not in valid]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, valid, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{what}: unknown option(s) {', '.join(hints)}; valid options: {', '.join(valid)}")


def parse_options(cls: type[T], given: Mapping[str, Any], what: str) -> T:
    """``cls(**given)`` with every name checked and every value converted to its field's type
    (a :class:`Choice` from its string, ``bool``/``int``/``str`` checked, ``None`` where allowed)."""
    check_option_names(given, option_names(cls), what)
    hints = typing.get_type_hints(cls)
    return cls(**{k: _convert(v, hints[k], f"{what}: option {k!r}") for k, v in given.items()})


def _convert(value: Any, hint: Any, what: str) -> Any:
    args = typing.get_args(hint)
    if type(None) in args:  # Optional[X]
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if isinstance(hint, type) and issubclass(hint, Choice):
        return hint.parse(value, what)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{what} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{what} must be a positive integer, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{what} must be a path, got {value!r}")
        return Path(value)
    if hint is str:
        if type(value).__name__ == "device" and hasattr(value, "type"):  # a torch.device
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{what} must be a string, got {value!r}")
        return value
    if hint is tuple:
        return tuple(value)
    return value


__all__ = [
    "Backend", "CanvasClear", "CheckpointFormat", "Choice", "DetectorOptions", "DeviceOptions", "HostOptions", "MismatchPolicy",
    "NonFinitePolicy", "OnnxRuntimeOptions", "OverflowPolicy", "PfnPlacement", "PointsOverflowPolicy", "Precision",
    "ScatterKind", "TensorRTOptions", "TorchCudaOptions", "TorchOptions", "Voxelizer", "check_option_names",
    "option_names", "parse_options",
]
