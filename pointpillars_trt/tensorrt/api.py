"""Every TensorRT call of the package, as small functions (Polygraphy style).

This is the only module that touches the ``tensorrt`` module and its objects, so that the
API it relies on is in one place: :data:`TRT_API_USED` lists every attribute, and
``tests/tensorrt/test_api_surface.py`` checks (by parsing this file and the other TensorRT
modules) that the list is complete and that each name exists in TensorRT 10.3, 10.16 and 11.4.

Conventions that the test relies on: the module is bound to the local name ``trt`` (from
:func:`load_tensorrt`); a function returning a TensorRT object says so in its return
annotation (``-> "trt.ICudaEngine"``); leaving TensorRT land is explicit (``str(...)``,
``int(...)``, ``bytes(...)``, ``tuple(...)``).

Only the name-based API of TensorRT >= 10 is used: strongly typed networks (TensorRT 11 removed
weak typing, ``BuilderFlag.FP16`` and implicit INT8), tensors by name, ``execute_async_v3``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Sequence

from ..errors import BackendUnavailableError, EngineError

if TYPE_CHECKING:  # annotations only; at run time the module comes from load_tensorrt()
    import tensorrt as trt

INSTALL_HINT = (
    "install TensorRT's Python package matching your CUDA driver (pip install tensorrt, 10.x or 11.x) "
    "and cuda-python; see docs/TENSORRT.md"
)

# Every attribute of the tensorrt module and of TensorRT objects used below.
TRT_API_USED = frozenset({
    # Python-level module attributes (set by tensorrt/__init__.py or the import system)
    "__version__", "__file__", "__path__",
    # module: classes, enums and their members
    "Logger", "WARNING", "INFO", "VERBOSE", "Builder", "Runtime", "OnnxParser",
    "NetworkDefinitionCreationFlag", "STRONGLY_TYPED", "MemoryPoolType", "WORKSPACE", "BuilderFlag", "TF32",
    "TensorIOMode", "INPUT", "DataType", "FLOAT", "HALF", "BF16", "INT32", "INT64", "BOOL",
    # Builder
    "create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
    # OnnxParser
    "parse_from_file", "num_errors", "get_error",
    # INetworkDefinition / ITensor
    "num_inputs", "num_outputs", "get_input", "get_output", "name", "shape", "dtype",
    # IBuilderConfig / IOptimizationProfile / ITimingCache
    "set_memory_pool_limit", "clear_flag", "add_optimization_profile", "set_shape",
    "create_timing_cache", "set_timing_cache", "get_timing_cache", "serialize",
    # Runtime / ICudaEngine
    "deserialize_cuda_engine", "num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype",
    "get_tensor_shape", "get_tensor_profile_shape", "create_execution_context",
    # IExecutionContext
    "set_input_shape", "set_tensor_address", "execute_async_v3",
})


@functools.lru_cache(maxsize=None)
def load_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or :class:`BackendUnavailableError` naming what to install."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(f"TensorRT is not installed ({exc}): {INSTALL_HINT}") from exc
    if getattr(trt, "__file__", None) is None:  # a bare folder named tensorrt on sys.path (namespace package)
        where = list(getattr(trt, "__path__", []))
        raise BackendUnavailableError(f"TensorRT is not installed ('import tensorrt' found only the folder(s) {where}): {INSTALL_HINT}")
    return trt


def tensorrt_version() -> str:
    trt = load_tensorrt()
    return str(trt.__version__)


def make_logger(severity: str = "warning") -> "trt.ILogger":
    """``trt.Logger`` printing messages of ``severity`` (verbose, info, warning) and above."""
    trt = load_tensorrt()
    levels = {"verbose": trt.Logger.VERBOSE, "info": trt.Logger.INFO, "warning": trt.Logger.WARNING}
    if severity not in levels:
        raise ValueError(f"TensorRT log severity must be one of {sorted(levels)}, got {severity!r}")
    return trt.Logger(levels[severity])


def dtype_name(dtype: "trt.DataType") -> str:
    """numpy-style name of a TensorRT data type (``float32``, ``float16``, ``int32``, ...)."""
    trt = load_tensorrt()
    names = {
        trt.DataType.FLOAT: "float32", trt.DataType.HALF: "float16", trt.DataType.BF16: "bfloat16",
        trt.DataType.INT32: "int32", trt.DataType.INT64: "int64", trt.DataType.BOOL: "bool",
    }
    return names.get(dtype, str(dtype))


# ---- build ----------------------------------------------------------------------------------------
def create_builder(logger: "trt.ILogger") -> "trt.Builder":
    trt = load_tensorrt()
    return trt.Builder(logger)


def create_network(builder: "trt.Builder") -> "trt.INetworkDefinition":
    """A strongly typed network: tensor types come from the ONNX graph (FP16 graphs build FP16
    engines); TensorRT picks no precision of its own."""
    trt = load_tensorrt()
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return builder.create_network(flags)


def parse_onnx(network: "trt.INetworkDefinition", logger: "trt.ILogger", path: Path) -> "trt.OnnxParser":
    """Parse ``path`` into ``network``; returns the parser, which must outlive the build (it owns
    the weights). :class:`EngineError` lists the parser's errors."""
    trt = load_tensorrt()
    parser = trt.OnnxParser(network, logger)
    if not bool(parser.parse_from_file(str(path))):
        errors = [str(parser.get_error(i)) for i in range(int(parser.num_errors))]
        raise EngineError(f"{path}: TensorRT's ONNX parser failed:\n  " + "\n  ".join(errors or ["(no error reported)"]))
    return parser


@dataclass(frozen=True)
class TensorSpec:
    """A network or engine I/O tensor: ``shape`` with -1 for dynamic axes."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    is_input: bool


def network_io(network: "trt.INetworkDefinition") -> list[TensorSpec]:
    specs = []
    for i in range(int(network.num_inputs)):
        t = network.get_input(i)
        specs.append(TensorSpec(str(t.name), tuple(int(d) for d in t.shape), dtype_name(t.dtype), True))
    for i in range(int(network.num_outputs)):
        t = network.get_output(i)
        specs.append(TensorSpec(str(t.name), tuple(int(d) for d in t.shape), dtype_name(t.dtype), False))
    return specs


def configure(builder: "trt.Builder", workspace_mib: int, timing_cache: bytes = b"", tf32: bool = True) -> "tuple[trt.IBuilderConfig, trt.ITimingCache]":
    """A builder config with a workspace limit and a timing cache (``b""`` starts an empty one).

    No precision flags: the network is strongly typed. ``tf32=False`` forbids TF32 in FP32 layers
    (slower, bit-closer to PyTorch's FP32).
    """
    trt = load_tensorrt()
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    cache = config.create_timing_cache(bytes(timing_cache))
    config.set_timing_cache(cache, False)
    return config, cache


def add_pillar_profile(builder: "trt.Builder", config: "trt.IBuilderConfig", shapes: dict[str, Sequence[tuple[int, ...]]]) -> None:
    """One optimization profile: ``shapes[name] = (min, opt, max)`` for each dynamic input.
    Nothing is added when ``shapes`` is empty (a fully static network needs no profile)."""
    if not shapes:
        return
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
    config.add_optimization_profile(profile)


def build_serialized(builder: "trt.Builder", network: "trt.INetworkDefinition", config: "trt.IBuilderConfig", what: str) -> bytes:
    host_memory = builder.build_serialized_network(network, config)
    if host_memory is None:
        raise EngineError(f"{what}: TensorRT could not build the engine (see the TensorRT log above)")
    return bytes(host_memory)


def serialized_timing_cache(config: "trt.IBuilderConfig") -> bytes:
    cache = config.get_timing_cache()
    if cache is None:
        return b""
    return bytes(cache.serialize())


# ---- run ------------------------------------------------------------------------------------------
def create_runtime(logger: "trt.ILogger") -> "trt.Runtime":
    trt = load_tensorrt()
    return trt.Runtime(logger)


def deserialize_engine(runtime: "trt.Runtime", data: bytes, what: str) -> "trt.ICudaEngine":
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise EngineError(f"{what}: TensorRT could not deserialize the engine (see the TensorRT log); rebuild with export/build_engines.py")
    return engine


@dataclass(frozen=True)
class EngineTensor(TensorSpec):
    """An engine I/O tensor; ``profile`` = (min, opt, max) shapes of profile 0 for dynamic inputs."""

    profile: tuple[tuple[int, ...], ...] | None = None


def engine_io(engine: "trt.ICudaEngine") -> list[EngineTensor]:
    trt = load_tensorrt()
    tensors = []
    for i in range(int(engine.num_io_tensors)):
        name = str(engine.get_tensor_name(i))
        is_input = bool(engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT)
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        profile = None
        if is_input and -1 in shape:
            profile = tuple(tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
        tensors.append(EngineTensor(name, shape, dtype_name(engine.get_tensor_dtype(name)), is_input, profile))
    return tensors


def create_context(engine: "trt.ICudaEngine", what: str) -> "trt.IExecutionContext":
    context = engine.create_execution_context()
    if context is None:
        raise EngineError(f"{what}: TensorRT could not create an execution context (out of GPU memory?)")
    return context


def set_input_shape(context: "trt.IExecutionContext", name: str, shape: tuple[int, ...], what: str) -> None:
    if not bool(context.set_input_shape(name, tuple(int(d) for d in shape))):
        raise EngineError(f"{what}: TensorRT refused shape {tuple(shape)} for input {name!r} (outside the engine's profile?)")


def set_tensor_address(context: "trt.IExecutionContext", name: str, address: int, what: str) -> None:
    if not bool(context.set_tensor_address(name, int(address))):
        raise EngineError(f"{what}: TensorRT refused the device address of tensor {name!r}")


def context_tensor_shape(context: "trt.IExecutionContext", name: str) -> tuple[int, ...]:
    """The shape of ``name`` for the input shapes set so far (outputs resolved)."""
    return tuple(int(d) for d in context.get_tensor_shape(name))


def execute_async(context: "trt.IExecutionContext", stream: int, what: str) -> None:
    """Enqueue the engine on ``stream`` (an ``int`` CUDA stream handle)."""
    if not bool(context.execute_async_v3(int(stream))):
        raise EngineError(f"{what}: execute_async_v3 failed (see the TensorRT log)")
