"""The user-facing pipeline: points -> voxelize -> backend (PFN, scatter, RPN) -> boxes."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .network import Backend, create_backend
from .config import PointPillarsConfig, load_config
from .errors import ConfigError, PillarOverflowError, PointCloudError
from .postprocess import PostProcessor
from .voxelize import make_voxelizer

DEMO_MODEL = Path(__file__).resolve().parent / "data" / "demo_model.safetensors"
OVERFLOW_POLICIES = ("warn", "error")


class PillarOverflowWarning(UserWarning):
    """A frame had more pillars than the backend accepts; the extra pillars were dropped."""


class EmptyFrameWarning(UserWarning):
    """A frame had no point inside the point-cloud range; its result is empty."""


def empty_detections(cfg: PointPillarsConfig, num_points: int, timings: dict[str, float], source: str) -> "Detections":
    """The result of a frame with no usable point: no boxes, and an :class:`EmptyFrameWarning`."""
    warnings.warn(f"{source}: no point lies inside the point-cloud range {cfg.voxel.point_cloud_range} "
                  f"({num_points} points); the result is empty", EmptyFrameWarning, stacklevel=3)
    return Detections(boxes=np.zeros((0, 7), np.float32), scores=np.zeros(0, np.float32), labels=np.zeros(0, np.int64),
                      class_names=cfg.classes, timings_ms=timings, num_points=num_points)


@dataclass(frozen=True)
class Detections:
    """Boxes of one frame, best score first.

    ``boxes`` float32 ``[N, 7]`` (x, y, z centre, dx length, dy width, dz height, yaw CCW about +z)
    in the LiDAR frame; ``scores [N]``; ``labels [N]`` class indices into ``class_names``.
    ``timings_ms`` has one entry per stage; the pillar counters say what was dropped.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    num_points: int = 0
    num_pillars: int = 0
    num_dropped_pillars: int = 0
    num_dropped_points: int = 0

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def label_names(self) -> list[str]:
        return [self.class_names[i] for i in self.labels]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``boxes``, ``scores``, ``labels`` (class names), ``timings_ms``."""
        return {
            "boxes": self.boxes.astype(float).round(6).tolist(),
            "scores": self.scores.astype(float).round(6).tolist(),
            "labels": self.label_names,
            "timings_ms": {k: round(v, 4) for k, v in self.timings_ms.items()},
            "num_pillars": self.num_pillars,
            "num_dropped_pillars": self.num_dropped_pillars,
        }


@dataclass(frozen=True)
class ModelSource:
    """Where the weights came from: a file and its format, or random weights (``path is None``)."""

    path: Path | None
    format: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def is_random(self) -> bool:
        return self.path is None

    def describe(self) -> str:
        if self.path is None:
            return "RANDOM weights (no trained checkpoint: boxes are meaningless)"
        return f"{self.path} ({self.format})"


def warmup_cloud(cfg: PointPillarsConfig, num_points: int = 20000, seed: int = 0) -> np.ndarray:
    """``num_points`` uniform random points (float32 [N, 4]) inside ``cfg``'s point-cloud range."""
    r = cfg.voxel.point_cloud_range
    rng = np.random.default_rng(seed)
    return rng.uniform(r[:3] + (0.0,), r[3:] + (1.0,), size=(num_points, 4)).astype(np.float32)


def resolve_weights(path: str | Path | None = None, config: PointPillarsConfig | str | Path | None = None,
                    format: str | None = None) -> tuple[PointPillarsConfig, Mapping[str, Any], ModelSource]:
    """``(config, state_dict, source)`` of the weights a ``from_checkpoint(path, config)`` call
    means: the checkpoint at ``path`` (native, OpenPCDet, mmdet3d or zhulf0804; ``format`` forces
    one); with ``path=None`` the shipped demo model, or random weights (seed 0, ``config`` or the
    default config) when the package has none (``source.is_random``)."""
    from .checkpoint import load_checkpoint

    cfg = load_config(config) if isinstance(config, (str, Path)) else config
    if path is None and DEMO_MODEL.is_file():
        path = DEMO_MODEL
    if path is None:
        import torch

        from .model import build_model

        cfg = cfg or load_config()
        torch.manual_seed(0)
        return cfg, build_model(cfg).state_dict(), ModelSource(None, "random")
    ckpt = load_checkpoint(path, config=cfg, format=format)
    return ckpt.config, ckpt.state_dict, ModelSource(Path(path), ckpt.format, dict(ckpt.metadata))


def artifact_config(engine_dir: str | Path, config: PointPillarsConfig | str | Path | None = None) -> PointPillarsConfig:
    """The config the engines or ONNX graphs in ``engine_dir`` carry; a ``config`` given as well
    must be the same (else :class:`~pointpillars_trt.errors.ConfigError` naming the fields)."""
    from .config import check_same_config

    carried = artifact_config_json(Path(engine_dir))
    if config is not None:
        check_same_config(load_config(config) if isinstance(config, (str, Path)) else config, carried, str(engine_dir))
    return PointPillarsConfig.from_json(carried)


def artifact_config_json(engine_dir: Path) -> str:
    """The config JSON carried by the engines (``pfn.engine``) or ONNX graphs (``pfn.onnx`` /
    ``full.onnx``) in ``engine_dir``."""
    from .errors import EngineError

    if (engine_dir / "pfn.engine").is_file():
        from .tensorrt.engine_file import read_engine_header

        return read_engine_header(engine_dir / "pfn.engine").config
    for name in ("pfn.onnx", "full.onnx"):
        if (engine_dir / name).is_file():
            from .exporter.metadata import read_graph_metadata

            return read_graph_metadata(engine_dir / name).config_json
    raise EngineError(f"{engine_dir}: no pfn.engine, pfn.onnx or full.onnx (build them with export/export_onnx.py "
                      "and export/build_engines.py)")


class DetectorBase:
    """What every detector front end shares: ``detect``, ``warmup``, ``close`` and ``with``."""

    config: PointPillarsConfig

    def detect(self, points: np.ndarray, score_threshold: float | None = None, source: str = "<array>") -> Detections:
        raise NotImplementedError

    def close(self) -> None:
        """Release the runtime's resources."""

    def warmup(self, iterations: int = 2, num_points: int = 20000, seed: int = 0) -> None:
        """Run a few synthetic frames so that JIT compilation and allocations happen now."""
        pts = warmup_cloud(self.config, num_points, seed)
        for _ in range(iterations):
            self.detect(pts, source="<warmup>")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Detector(DetectorBase):
    """Runs the whole pipeline on one frame at a time.

    ``on_overflow``: what to do when a frame has more pillars than the backend accepts:
    ``"warn"`` drops the extra pillars (first-seen order is kept) and emits a
    :class:`PillarOverflowWarning` saying how many pillars and points were dropped; ``"error"``
    raises :class:`~pointpillars_trt.errors.PillarOverflowError`. ``nonfinite``: ``"error"``
    rejects clouds with NaN/inf coordinates, ``"drop"`` removes those points.
    """

    def __init__(
        self,
        config: PointPillarsConfig,
        backend: Backend,
        *,
        voxelizer: str = "auto",
        on_overflow: str = "warn",
        nonfinite: str = "error",
        source: ModelSource | None = None,
    ) -> None:
        if on_overflow not in OVERFLOW_POLICIES:
            raise ConfigError(f"on_overflow must be one of {OVERFLOW_POLICIES}, got {on_overflow!r}")
        self.config = config
        self.backend = backend
        self.on_overflow = on_overflow
        self.nonfinite = nonfinite
        self.source = source or ModelSource(None, "random")
        self.max_pillars = min(config.voxel.max_pillars, backend.max_pillars)
        self.voxelizer = make_voxelizer(config.voxel, voxelizer, max_pillars=self.max_pillars)
        self.postprocess = PostProcessor(config)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None = None,
        config: PointPillarsConfig | str | Path | None = None,
        backend: str = "auto",
        device: str = "cpu",
        format: str | None = None,
        **kwargs: Any,
    ) -> "Detector":
        """Load a checkpoint (native, OpenPCDet, mmdet3d or zhulf0804; detected from its keys)
        and build a detector on ``backend``. ``path=None`` loads the shipped demo model, or
        random weights when the package has none (``detector.source.is_random`` says so)."""
        if path is None and kwargs.get("engine_dir") is not None:
            return cls.from_engine_dir(kwargs.pop("engine_dir"), config=config,
                                       backend="tensorrt" if backend == "auto" else backend, device=device, **kwargs)
        cfg, state_dict, source = resolve_weights(path, config, format)
        backend_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("voxelizer", "on_overflow", "nonfinite")}
        name = "torch" if backend == "auto" else backend
        be = create_backend(name, cfg=cfg, state_dict=state_dict, device=device, **backend_kwargs)
        return cls(cfg, be, source=source, **kwargs)

    @classmethod
    def from_engine_dir(
        cls,
        engine_dir: str | Path,
        config: PointPillarsConfig | str | Path | None = None,
        backend: str = "tensorrt",
        device: str = "cpu",
        **kwargs: Any,
    ) -> "Detector":
        """A detector on exported artifacts alone: TensorRT engines (``backend="tensorrt"``) or
        ONNX graphs (``"onnxruntime"``) in ``engine_dir``. The config is the one the artifacts
        carry; a ``config`` given as well must be the same (else :class:`ConfigError`)."""
        engine_dir = Path(engine_dir)
        cfg = artifact_config(engine_dir, config)
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in ("voxelizer", "on_overflow", "nonfinite")}
        be = create_backend(backend, cfg=cfg, engine_dir=engine_dir, device=device, **kwargs)
        return cls(cfg, be, source=ModelSource(engine_dir, backend), **options)

    # ---- running ------------------------------------------------------------------------
    def detect(self, points: np.ndarray, score_threshold: float | None = None, source: str = "<array>") -> Detections:
        """Detect boxes in ``points`` float32 ``[N, 4]`` (x, y, z, intensity; LiDAR frame)."""
        from .io.pointcloud import validate_points

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        pts = validate_points(points, source, nonfinite=self.nonfinite, allow_empty=True)
        if pts.shape[0] == 0:
            return empty_detections(self.config, 0, {}, source)
        pillars = self.voxelizer(pts)
        if pillars.overflowed:
            msg = (
                f"{source}: {pillars.num_dropped_pillars + pillars.num_pillars} pillars exceed the maximum "
                f"{self.max_pillars}; dropped {pillars.num_dropped_pillars} pillars holding "
                f"{pillars.num_dropped_points} points"
            )
            if self.on_overflow == "error":
                raise PillarOverflowError(msg)
            warnings.warn(msg, PillarOverflowWarning, stacklevel=2)
        t1 = time.perf_counter()
        timings["voxelize"] = (t1 - t0) * 1e3
        if pillars.num_pillars == 0:
            return empty_detections(self.config, int(pts.shape[0]), timings, source)
        out = self.backend.infer({"features": pillars.features, "num_points": pillars.num_points, "coords": pillars.coords})
        t2 = time.perf_counter()
        timings.update(self.backend.last_timings_ms)
        timings["network"] = (t2 - t1) * 1e3
        raw = self.postprocess(out["cls"], out["box"], out["dir"], score_threshold)
        t3 = time.perf_counter()
        timings["postprocess"] = (t3 - t2) * 1e3
        timings["total"] = (t3 - t0) * 1e3
        return Detections(
            boxes=raw.boxes.astype(np.float32),
            scores=raw.scores.astype(np.float32),
            labels=raw.labels,
            class_names=self.config.classes,
            timings_ms=timings,
            num_points=int(pts.shape[0]),
            num_pillars=pillars.num_pillars,
            num_dropped_pillars=pillars.num_dropped_pillars,
            num_dropped_points=pillars.num_dropped_points,
        )

    def close(self) -> None:
        self.backend.deactivate()
