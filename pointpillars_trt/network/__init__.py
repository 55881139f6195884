"""Backends run PFN -> scatter -> RPN behind one interface (see :mod:`.base`)."""

from __future__ import annotations

import importlib

from .base import INPUT_NAMES, OUTPUT_NAMES, Backend, StageTimer, available_backends, create_backend, register_backend

# module name per backend; imported on first use so optional runtimes stay optional
_BUILTIN = ("torch_backend", "torch_cuda", "onnxruntime", "tensorrt")


def _load_all() -> None:
    for mod in _BUILTIN:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{mod}":
                raise


__all__ = [
    "INPUT_NAMES", "OUTPUT_NAMES", "Backend", "StageTimer", "available_backends", "create_backend", "register_backend",
]
