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

from ..errors import BackendUnavailableError, ConfigError, EngineError

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
    "Logger", "WARNING", "INFO", "VERBOSE", "min_severity", "Builder", "Runtime", "OnnxParser",
    "NetworkDefinitionCreationFlag", "STRONGLY_TYPED", "MemoryPoolType", "WORKSPACE", "BuilderFlag", "TF32",
    "VERSION_COMPATIBLE", "HardwareCompatibilityLevel", "AMPERE_PLUS",
    "TensorIOMode", "INPUT", "TensorFormat", "LINEAR", "DataType", "FLOAT", "HALF", "BF16", "INT32", "INT64", "BOOL",
    # Builder
    "create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
    # OnnxParser
    "parse_from_file", "num_errors", "get_error",
    # INetworkDefinition / ITensor
    "num_inputs", "num_outputs", "get_input", "get_output", "name", "shape", "dtype",
    # IBuilderConfig / IOptimizationProfile / ITimingCache
    "set_memory_pool_limit", "clear_flag", "set_flag", "hardware_compatibility_level", "add_optimization_profile",
    "set_shape", "create_timing_cache", "set_timing_cache", "get_timing_cache", "serialize",
    # Runtime / ICudaEngine
    "engine_host_code_allowed", "deserialize_cuda_engine", "num_io_tensors", "get_tensor_name", "get_tensor_mode",
    "get_tensor_dtype", "get_tensor_shape", "get_tensor_format", "get_tensor_profile_shape", "create_execution_context",
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


LOG_SEVERITIES = ("verbose", "info", "warning")
#: TensorRT requires this alignment of every tensor address (``NvInferRuntime.h``, setTensorAddress)
TENSOR_ALIGNMENT = 256


@functools.lru_cache(maxsize=None)
def _the_logger() -> "trt.ILogger":
    trt = load_tensorrt()
    return trt.Logger(trt.Logger.WARNING)


def process_logger(severity: str = "warning") -> "trt.ILogger":
    """THE process-wide ``trt.Logger`` (TensorRT keeps the first logger it is given and ignores
    later ones), its ``min_severity`` set in place to ``severity`` (verbose, info, warning): the
    latest choice applies to every builder, runtime and parser of the process."""
    if severity not in LOG_SEVERITIES:
        raise ConfigError(f"TensorRT log severity must be one of {LOG_SEVERITIES}, got {severity!r}")
    trt = load_tensorrt()
    levels = {"verbose": trt.Logger.VERBOSE, "info": trt.Logger.INFO, "warning": trt.Logger.WARNING}
    logger = _the_logger()
    logger.min_severity = levels[severity]
    return logger


make_logger = process_logger  # the earlier name, still called by network/tensorrt.py and gpu_pipeline.py


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
    engines); TensorRT picks no precision of its own. ``STRONGLY_TYPED`` is deprecated in TensorRT
    11 (every network is strongly typed there), so it is read with ``getattr`` and left out when gone."""
    trt = load_tensorrt()
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return builder.create_network(0 if flag is None else 1 << int(flag))


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


def configure(builder: "trt.Builder", workspace_mib: int, tf32: bool = True, hardware_compat: bool = False,
              version_compatible: bool = False) -> "trt.IBuilderConfig":
    """A builder config with a workspace limit.

    No precision flags: the network is strongly typed. ``tf32=False`` forbids TF32 in FP32 layers
    (slower, bit-closer to PyTorch's FP32). ``hardware_compat``: the engine runs on every GPU from
    Ampere on (``HardwareCompatibilityLevel.AMPERE_PLUS``, somewhat slower). ``version_compatible``:
    the engine runs on later TensorRT runtimes of the same major version (``VERSION_COMPATIBLE``; the
    runtime must then allow host code, :func:`create_runtime`).
    """
    trt = load_tensorrt()
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    if hardware_compat:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    return config


def attach_timing_cache(config: "trt.IBuilderConfig", data: bytes) -> "trt.ITimingCache | None":
    """Create a timing cache from ``data`` (``b""``: an empty one) and attach it, strictly (a cache
    of another GPU or TensorRT version is refused). Returns the cache, or None if TensorRT refused it."""
    cache = config.create_timing_cache(bytes(data))
    if cache is None or not bool(config.set_timing_cache(cache, False)):
        return None
    return cache


def add_pillar_profile(builder: "trt.Builder", config: "trt.IBuilderConfig", shapes: dict[str, Sequence[tuple[int, ...]]], what: str) -> None:
    """One optimization profile: ``shapes[name] = (min, opt, max)`` for each dynamic input.
    Nothing is added when ``shapes`` is empty (a fully static network needs no profile).
    :class:`EngineError` if TensorRT rejects the profile (``add_optimization_profile`` returns -1)."""
    if not shapes:
        return
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
    if int(config.add_optimization_profile(profile)) < 0:
        raise EngineError(f"{what}: TensorRT rejected the optimization profile {dict(shapes)} (add_optimization_profile returned -1)")


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


def allow_host_code(runtime: "trt.Runtime") -> None:
    """Let ``runtime`` deserialize version-compatible engines (:func:`configure`; they carry the
    lean runtime as host code, Polygraphy's ``engine_host_code_allowed``)."""
    runtime.engine_host_code_allowed = True


def deserialize_engine(runtime: "trt.Runtime", data: bytes, what: str) -> "trt.ICudaEngine":
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise EngineError(f"{what}: TensorRT could not deserialize the engine (see the TensorRT log); rebuild with export/build_engines.py")
    return engine


@dataclass(frozen=True)
class EngineTensor(TensorSpec):
    """An engine I/O tensor; ``profile`` = (min, opt, max) shapes of profile 0 for dynamic inputs;
    ``format`` is ``"linear"`` for TensorRT's LINEAR (row-major) layout, else TensorRT's name."""

    profile: tuple[tuple[int, ...], ...] | None = None
    format: str = "linear"


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
        fmt = engine.get_tensor_format(name)
        layout = "linear" if bool(fmt == trt.TensorFormat.LINEAR) else str(fmt)
        tensors.append(EngineTensor(name, shape, dtype_name(engine.get_tensor_dtype(name)), is_input, profile, layout))
    return tensors


def create_context(engine: "trt.ICudaEngine", what: str) -> "trt.IExecutionContext":
    context = engine.create_execution_context()
    if context is None:
        raise EngineError(f"{what}: TensorRT could not create an execution context (out of GPU memory?)")
    return context


def set_input_shape(context: "trt.IExecutionContext", name: str, shape: tuple[int, ...], what: str) -> None:
    if not bool(context.set_input_shape(name, tuple(int(d) for d in shape))):
        raise EngineError(f"{what}: TensorRT refused shape {tuple(shape)} for input {name!r} (outside the engine's profile?)")


def aligned_nbytes(nbytes: int) -> int:
    """``nbytes`` rounded up to :data:`TENSOR_ALIGNMENT`: the stride between batch lanes of one
    allocation, so that lane ``b`` at ``base + b * stride`` stays aligned."""
    return -(-int(nbytes) // TENSOR_ALIGNMENT) * TENSOR_ALIGNMENT


def check_alignment(name: str, address: int, what: str) -> None:
    """Raise :class:`EngineError` naming the tensor unless ``address`` is :data:`TENSOR_ALIGNMENT`-aligned."""
    if int(address) % TENSOR_ALIGNMENT:
        raise EngineError(f"{what}: the device address {int(address):#x} of tensor {name!r} is not {TENSOR_ALIGNMENT}-byte "
                          f"aligned (offset {int(address) % TENSOR_ALIGNMENT}); TensorRT requires {TENSOR_ALIGNMENT}-byte aligned tensors")


def set_tensor_address(context: "trt.IExecutionContext", name: str, address: int, what: str) -> None:
    """Bind ``name`` to device ``address`` (checked: :func:`check_alignment`)."""
    check_alignment(name, address, what)
    if not bool(context.set_tensor_address(name, int(address))):
        raise EngineError(f"{what}: TensorRT refused the device address of tensor {name!r}")


def context_tensor_shape(context: "trt.IExecutionContext", name: str) -> tuple[int, ...]:
    """The shape of ``name`` for the input shapes set so far (outputs resolved)."""
    return tuple(int(d) for d in context.get_tensor_shape(name))


def execute_async(context: "trt.IExecutionContext", stream: int, what: str) -> None:
    """Enqueue the engine on ``stream`` (an ``int`` CUDA stream handle)."""
    if not bool(context.execute_async_v3(int(stream))):
        raise EngineError(f"{what}: execute_async_v3 failed (see the TensorRT log)")
