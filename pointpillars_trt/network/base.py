"""The backend interface: a lifecycle and named tensors in and out (as Polygraphy's runners).

Every backend runs the network part of the pipeline, PFN -> scatter -> RPN:

inputs  ``features`` float32 ``[P, M, 10]``, ``num_points`` int32 ``[P]``, ``coords`` int32 ``[P, 2]`` (ix, iy)
outputs ``cls`` ``[1, A*K, H, W]``, ``box`` ``[1, A*7, H, W]``, ``dir`` ``[1, A*D, H, W]`` (float32 numpy)

Voxelization and post-processing stay outside, so that every backend is compared on the same
pillars and decoded by the same code.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..config import PointPillarsConfig
from ..contract import PART_INPUTS, PART_OUTPUTS
from ..errors import BackendUnavailableError, ConfigError
from ..options import parse_options

# the chain's inputs are the PFN's plus the scatter's coordinates; its outputs are the RPN's
INPUT_NAMES = (*PART_INPUTS["pfn"], "coords")
OUTPUT_NAMES = PART_OUTPUTS["rpn"]


class Backend(abc.ABC):
    """``activate()`` -> ``infer(feeds)`` ... -> ``deactivate()``; also a context manager."""

    name: str = "base"

    def __init__(self, cfg: PointPillarsConfig) -> None:
        self.cfg = cfg
        self.is_active = False
        self.last_timings_ms: dict[str, float] = {}

    @property
    def max_pillars(self) -> int:
        """Most pillars one ``infer`` accepts (an engine's profile max, or the config's)."""
        return self.cfg.voxel.max_pillars

    def activate(self) -> "Backend":
        if not self.is_active:
            self._activate()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the network on named inputs; returns named outputs. Activates on first use."""
        missing = [n for n in INPUT_NAMES if n not in feeds]
        if missing:
            raise ConfigError(f"{self.name} backend: missing input(s) {missing}; expected {list(INPUT_NAMES)}")
        if feeds["features"].shape[0] > self.max_pillars:
            raise ConfigError(
                f"{self.name} backend: {feeds['features'].shape[0]} pillars exceed its maximum {self.max_pillars}"
            )
        self.activate()
        return self._infer(feeds)

    def __enter__(self) -> "Backend":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _deactivate(self) -> None:
        pass


class StageTimer:
    """Accumulates wall-clock milliseconds per named stage into ``timings`` (one code path,
    timed always). ``sync`` is called before each reading (e.g. ``torch.cuda.synchronize``)."""

    def __init__(self, timings: dict[str, float], sync: Callable[[], None] | None = None) -> None:
        self.timings = timings
        self.sync = sync or (lambda: None)
        self._t = time.perf_counter()

    def mark(self, stage: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - self._t) * 1e3
        self._t = now


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend: its typed options and its factory ``(cfg, state_dict, engine_dir, options) -> Backend``."""

    options: type
    factory: Callable[[PointPillarsConfig, Mapping[str, Any] | None, Path | None, Any], Backend]


_REGISTRY: dict[str, BackendEntry] = {}


def register_backend(name: str, options: type):
    """Decorator: make a backend factory available to :func:`create_backend` under ``name``,
    configured by the option dataclass ``options`` (see :mod:`pointpillars_trt.options`)."""

    def wrap(factory):
        _REGISTRY[name] = BackendEntry(options, factory)
        return factory

    return wrap


def available_backends() -> tuple[str, ...]:
    from . import _load_all  # registers the built-in backends

    _load_all()
    return tuple(sorted(_REGISTRY))


def backend_entry(name: str) -> BackendEntry:
    """The registered :class:`BackendEntry` of ``name`` (:class:`BackendUnavailableError` naming the known ones)."""
    known = available_backends()
    if str(name) not in _REGISTRY:
        raise BackendUnavailableError(f"unknown backend {str(name)!r}; known: {list(known)}")
    return _REGISTRY[str(name)]


def create_backend(name: str, cfg: PointPillarsConfig, *, state_dict: Mapping[str, Any] | None = None,
                   engine_dir: str | Path | None = None, options: Any = None, **option_values: Any) -> Backend:
    """Build the backend ``name`` (``torch``, ``torch_cuda``, ``onnxruntime``, ``tensorrt``) for ``cfg``.

    Options come as the backend's option dataclass (``options``) or as keyword values checked
    against it: an unknown or misspelled name raises :class:`ConfigError` naming the valid ones.
    """
    entry = backend_entry(name)
    if options is None:
        options = parse_options(entry.options, option_values, f"{name} backend")
    elif option_values:
        raise ConfigError(f"{name} backend: pass options either as {entry.options.__name__} or as keywords, not both")
    return entry.factory(cfg, state_dict, Path(engine_dir) if engine_dir is not None else None, options)
