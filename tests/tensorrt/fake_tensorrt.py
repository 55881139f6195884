"""A FAKE ``tensorrt`` module, for API-shape tests only.

TensorRT cannot be installed on the development or GPU machines, so this stand-in records every
call the package makes (``CALLS``: (method, args)) and returns objects of the right kind. It
proves nothing about TensorRT's behaviour: only that our calls have the argument kinds the
TensorRT docstrings document (``tests/tensorrt/test_api_surface.py``). Nothing outside the API
shape tests may use it.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

CALLS: list[tuple[str, tuple]] = []
LOGGERS: list["Logger"] = []


@dataclass(frozen=True)
class EnumValue:
    """An enum member: compares by identity, converts to int like pybind11 enums."""

    kind: str
    name: str
    value: int

    def __int__(self) -> int:
        return self.value

    def __str__(self) -> str:
        return f"{self.kind}.{self.name}"


def _enum(kind: str, *names: str):
    return types.SimpleNamespace(**{n: EnumValue(kind, n, i) for i, n in enumerate(names)})


DataType = _enum("DataType", "FLOAT", "HALF", "INT8", "INT32", "BOOL", "BF16", "INT64")
TensorIOMode = _enum("TensorIOMode", "NONE", "INPUT", "OUTPUT")
TensorFormat = _enum("TensorFormat", "LINEAR", "CHW2", "HWC8")
MemoryPoolType = _enum("MemoryPoolType", "WORKSPACE")
BuilderFlag = _enum("BuilderFlag", "TF32", "VERSION_COMPATIBLE")
HardwareCompatibilityLevel = _enum("HardwareCompatibilityLevel", "NONE", "AMPERE_PLUS")
NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", "STRONGLY_TYPED")
__version__ = "10.3.0"
__file__ = __file__  # noqa: PLW0127  (a real module, not a namespace folder)


class Recorder:
    """Records ``method(*args)`` of a fake TensorRT object and returns ``result``."""

    def _call(self, method: str, args: tuple, result=None):
        CALLS.append((f"{type(self).__name__}.{method}", args))
        return result

    def __setattr__(self, name, value):
        if not name.startswith("_"):
            CALLS.append((f"{type(self).__name__}.{name}=", (value,)))
        object.__setattr__(self, name, value)


class Logger(Recorder):
    VERBOSE = EnumValue("Severity", "VERBOSE", 4)
    INFO = EnumValue("Severity", "INFO", 3)
    WARNING = EnumValue("Severity", "WARNING", 2)

    def __init__(self, min_severity=WARNING):
        CALLS.append(("Logger", (min_severity,)))
        LOGGERS.append(self)
        object.__setattr__(self, "min_severity", min_severity)


@dataclass
class Tensor:
    name: str
    shape: tuple
    dtype: EnumValue


#: the I/O of the network the fake parser produces (the PFN part, dynamic pillar axis)
IO = [Tensor("features", (-1, 32, 10), DataType.HALF), Tensor("num_points", (-1,), DataType.INT32)]
OUT = [Tensor("pillar_features", (-1, 64), DataType.HALF)]


class Network(Recorder):
    num_inputs, num_outputs = len(IO), len(OUT)

    def get_input(self, index):
        return self._call("get_input", (index,), IO[index])

    def get_output(self, index):
        return self._call("get_output", (index,), OUT[index])


class OnnxParser(Recorder):
    num_errors = 0

    def __init__(self, network, logger):
        CALLS.append(("OnnxParser", (network, logger)))

    def parse_from_file(self, model):
        return self._call("parse_from_file", (model,), True)

    def get_error(self, index):
        return self._call("get_error", (index,), "")


class TimingCache(Recorder):
    def serialize(self):
        return self._call("serialize", (), b"cache")


class Profile(Recorder):
    def set_shape(self, input, min, opt, max):  # noqa: A002  (TensorRT's argument names)
        return self._call("set_shape", (input, min, opt, max))


class BuilderConfig(Recorder):
    def set_memory_pool_limit(self, pool, pool_size):
        return self._call("set_memory_pool_limit", (pool, pool_size))

    def clear_flag(self, flag):
        return self._call("clear_flag", (flag,))

    def set_flag(self, flag):
        return self._call("set_flag", (flag,))

    def create_timing_cache(self, serialized_timing_cache):
        return self._call("create_timing_cache", (serialized_timing_cache,), TimingCache())

    def set_timing_cache(self, cache, ignore_mismatch):
        object.__setattr__(self, "_cache", cache)
        return self._call("set_timing_cache", (cache, ignore_mismatch), True)

    def get_timing_cache(self):
        return self._call("get_timing_cache", (), getattr(self, "_cache", None))

    def add_optimization_profile(self, profile):
        return self._call("add_optimization_profile", (profile,), 0)


class Builder(Recorder):
    def __init__(self, logger):
        CALLS.append(("Builder", (logger,)))

    def create_network(self, flags):
        return self._call("create_network", (flags,), Network())

    def create_builder_config(self):
        return self._call("create_builder_config", (), BuilderConfig())

    def create_optimization_profile(self):
        return self._call("create_optimization_profile", (), Profile())

    def build_serialized_network(self, network, config):
        return self._call("build_serialized_network", (network, config), memoryview(b"serialized plan"))


class Context(Recorder):
    def set_input_shape(self, name, shape):
        return self._call("set_input_shape", (name, shape), True)

    def set_tensor_address(self, name, memory):
        return self._call("set_tensor_address", (name, memory), True)

    def get_tensor_shape(self, name):
        return self._call("get_tensor_shape", (name,), (100, 32, 10))

    def execute_async_v3(self, stream_handle):
        return self._call("execute_async_v3", (stream_handle,), True)


class Engine(Recorder):
    num_io_tensors = len(IO) + len(OUT)

    def _tensor(self, name):
        return next(t for t in IO + OUT if t.name == name)

    def get_tensor_name(self, index):
        return self._call("get_tensor_name", (index,), (IO + OUT)[index].name)

    def get_tensor_mode(self, name):
        return self._call("get_tensor_mode", (name,), TensorIOMode.INPUT if self._tensor(name) in IO else TensorIOMode.OUTPUT)

    def get_tensor_shape(self, name):
        return self._call("get_tensor_shape", (name,), self._tensor(name).shape)

    def get_tensor_dtype(self, name):
        return self._call("get_tensor_dtype", (name,), self._tensor(name).dtype)

    def get_tensor_format(self, name):
        return self._call("get_tensor_format", (name,), TensorFormat.LINEAR)

    def get_tensor_profile_shape(self, name, profile_index):
        shape = self._tensor(name).shape
        return self._call("get_tensor_profile_shape", (name, profile_index),
                          [tuple(p if d == -1 else d for d in shape) for p in (1, 100, 100)])

    def create_execution_context(self):
        return self._call("create_execution_context", (), Context())


class Runtime(Recorder):
    def __init__(self, logger):
        CALLS.append(("Runtime", (logger,)))

    def deserialize_cuda_engine(self, serialized_engine):
        return self._call("deserialize_cuda_engine", (serialized_engine,), Engine())
