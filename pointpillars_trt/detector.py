"""The user-facing detector: points -> voxelize -> network -> post-process -> boxes, on whichever
executor the machine has, behind one facade.

:class:`Detector` owns validation, the pillar-overflow, empty-frame and non-finite policies,
:class:`Detections`, construction (from a checkpoint, or from an engine / ONNX folder), the
lifecycle and concurrency. It drives one :class:`~pointpillars_trt.executors.base.Executor`:
the host executor (CPU voxelization -> torch / ONNX Runtime / TensorRT -> CPU post-processing) or
the device executor (the whole frame on one GPU, CUDA graphs, batch lanes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Iterator, Sequence

import numpy as np

from .config import PointPillarsConfig, check_unit_interval
from .errors import ConfigError, IntensityRangeWarning, PillarOverflowError, PointCloudError
from .executors.base import Executor, FrameResult
from .io.intensity import IntensityMonitor
from .io.pointcloud import validate_points
from .options import Backend, DetectorOptions, NonFinitePolicy, OverflowPolicy
from .sources import DEMO_MODEL, ModelSource, resolve_weights  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)
_sum, _f64 = np.add.reduce, np.float64  # looked up once: _finish runs per frame


class PillarOverflowWarning(UserWarning):
    """A frame had more pillars than the backend accepts; the extra pillars were dropped."""


class EmptyFrameWarning(UserWarning):
    """A frame had no point inside the point-cloud range; its result is empty."""


class NonFiniteBoxWarning(UserWarning):
    """Decoded boxes with non-finite values were dropped from a frame's result."""


@dataclass(frozen=True)
class Detections:
    """Boxes of one frame, best score first.

    ``boxes`` float32 ``[N, 7]`` (x, y, z centre, dx length, dy width, dz height, yaw CCW about +z)
    in the LiDAR frame; ``scores [N]``; ``labels [N]`` class indices into ``class_names``.

    Yaw range: with ``postprocess.yaw_range: source`` (the default) as the checkpoint's source
    decodes it: OpenPCDet (and native models) ``[pi/4, pi/4 + 2 pi)`` (e.g. 6.59), mmdet3d
    ``[-pi/2, 3 pi/2)``, zhulf0804 ``(-3 pi/2, pi/2]``; with ``canonical`` always ``[-pi, pi)``
    (float32 pi; wrapped in the post-processing, on the CPU and the GPU alike).
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


def warmup_cloud(cfg: PointPillarsConfig, num_points: int = 20000, seed: int = 0) -> np.ndarray:
    """``num_points`` uniform random points (float32 [N, 4]) inside ``cfg``'s point-cloud range."""
    r = cfg.voxel.point_cloud_range
    rng = np.random.default_rng(seed)
    return rng.uniform(r[:3] + (0.0,), r[3:] + (1.0,), size=(num_points, 4)).astype(np.float32)


def empty_detections(cfg: PointPillarsConfig, num_points: int, timings: dict[str, float]) -> Detections:
    """The result of a frame with no usable point: no boxes."""
    return Detections(boxes=np.zeros((0, 7), np.float32), scores=np.zeros(0, np.float32), labels=np.zeros(0, np.int64),
                      class_names=cfg.classes, timings_ms=timings, num_points=num_points)


class Detector:
    """Detects 3D boxes in LiDAR frames on one executor; build it with :meth:`from_checkpoint`,
    :meth:`from_engine_dir` or :func:`build_detector`.

    Policies (:class:`~pointpillars_trt.options.DetectorOptions`): ``on_overflow`` ``"warn"`` drops
    the pillars beyond the maximum (first-seen order is kept) with a :class:`PillarOverflowWarning`
    giving how many pillars and points were dropped, ``"error"`` raises
    :class:`~pointpillars_trt.errors.PillarOverflowError`; ``nonfinite`` ``"error"`` rejects clouds
    with NaN/inf coordinates, ``"drop"`` removes those points. A frame with no point inside the
    range gives an empty result and an :class:`EmptyFrameWarning`; decoded boxes with non-finite
    values are dropped, counted, with a :class:`NonFiniteBoxWarning`; intensities outside the
    config's ``voxel.intensity_range`` give an :class:`~pointpillars_trt.errors.IntensityRangeWarning`
    naming the ``intensity_scale`` that fits (at most one per 5 s, counting the frames between).

    Thread safety: one Detector may be called from several threads; calls into the executor are
    serialized by a lock (validation and result assembly run outside it), so results equal those
    of sequential calls. Uncontended, the lock costs about 0.2 us per call, against ~0.7 ms for a
    GPU frame (``benchmarks/bench_facade.py``; docs/PERFORMANCE.md).
    """

    def __init__(self, config: PointPillarsConfig, executor: Executor, *, options: DetectorOptions = DetectorOptions(),
                 source: ModelSource | None = None, backend: Backend | None = None) -> None:
        self.config, self.executor, self.options = config, executor, options
        self.source = source or ModelSource(None, "random")
        self.backend = backend
        self.max_pillars = executor.max_pillars
        self._lock = threading.RLock()  # reentrant: detect() inside input_buffer()'s block
        self._intensity = IntensityMonitor(config.voxel.intensity_range)

    @property
    def path(self) -> str:
        """One line naming the chosen path (executor, stages, runtime, device, precision)."""
        return self.executor.description

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, config: PointPillarsConfig | str | Path | None = None, *,
                        backend: Backend | str = "auto", device: str | None = None, format: str | None = None,
                        **options: Any) -> "Detector":
        """A detector on a checkpoint (native, OpenPCDet, mmdet3d or zhulf0804; detected from its keys,
        ``format`` forces one). ``path=None`` loads the shipped demo model, or random weights when the
        package has none (``detector.source.is_random`` says so). ``backend``: ``auto`` (the fastest the
        machine has), ``gpu``, ``torch``, ``torch_cuda``, ``onnxruntime``. ``options``: the fields of
        the option dataclasses in :mod:`pointpillars_trt.options`; a misspelled one raises ConfigError."""
        cfg, state_dict, source = resolve_weights(path, config, format)
        return cls.from_weights(cfg, state_dict, backend=backend, device=device, source=source, **options)

    @classmethod
    def from_weights(cls, config: PointPillarsConfig, state_dict: Any, *, backend: Backend | str = "auto",
                     device: str | None = None, source: ModelSource | None = None, **options: Any) -> "Detector":
        """A detector on weights already in memory (a native ``state_dict`` for ``config``), as
        :meth:`from_checkpoint` otherwise."""
        return cls._built(config, backend, device, options, source or ModelSource(None, "state_dict"), state_dict=state_dict)

    @classmethod
    def from_engine_dir(cls, engine_dir: str | Path, config: PointPillarsConfig | str | Path | None = None, *,
                        backend: Backend | str = "auto", device: str | None = None, **options: Any) -> "Detector":
        """A detector on exported artifacts alone: TensorRT engines (``backend`` ``gpu`` between our
        kernels, or ``tensorrt`` on the host) or ONNX graphs (``onnxruntime``) in ``engine_dir``. The
        config is the one the artifacts carry; a ``config`` given as well must be the same."""
        from .artifacts import artifact_config

        engine_dir = Path(engine_dir)
        return cls._built(artifact_config(engine_dir, config), backend, device, options, None, engine_dir=engine_dir)

    @classmethod
    def _built(cls, cfg: PointPillarsConfig, backend: Backend | str, device: str | None, options: dict[str, Any],
               source: ModelSource | None, *, state_dict: Any = None, engine_dir: Path | None = None) -> "Detector":
        """The one construction path: choose the backend, check and split the options, build the
        executor from the weights or the artifacts, log the choice once."""
        from .factory import build_executor, choose_backend, split_options

        chosen, why = choose_backend(backend, device=device, engine_dir=engine_dir)
        values = {**options, **({"device": device} if device is not None else {})}
        facade, executor_values = split_options(chosen, values, auto=str(backend) == "auto")
        executor = build_executor(cfg, chosen, executor_values, state_dict=state_dict, engine_dir=engine_dir)
        det = cls(cfg, executor, options=facade, source=source or ModelSource(engine_dir, str(chosen)), backend=chosen)
        log.info("backend %s (%s): %s", chosen, why, det.path)
        return det

    @classmethod
    def from_backend(cls, config: PointPillarsConfig, backend: Any, *, voxelizer: str = "auto", **policies: Any) -> "Detector":
        """A detector on the host executor around a :class:`~pointpillars_trt.network.base.Backend`
        you built (``policies``: ``on_overflow``, ``nonfinite``)."""
        from .executors.host import HostExecutor
        from .options import HostOptions, parse_options

        host = parse_options(HostOptions, {"voxelizer": voxelizer}, "detector")
        return cls(config, HostExecutor(config, backend, host), options=parse_options(DetectorOptions, policies, "detector"))

    # ---- running ------------------------------------------------------------------------------
    def detect(self, points: np.ndarray, score_threshold: float | None = None, source: str = "<array>") -> Detections:
        """Boxes in ``points`` float32 ``[N, 4]`` (x, y, z, intensity; LiDAR frame): what
        :meth:`detect_batch` gives for ``[points]``, through the same steps without its lists (the GPU
        path's per-frame host time)."""
        t0 = perf_counter()
        score_threshold = _score_threshold(score_threshold)
        p = self._validated(points, source)
        t1 = perf_counter()
        validate_ms = (t1 - t0) * 1e3
        if not p.shape[0]:
            return self._checked_empty(empty_detections(self.config, 0, {"validate": validate_ms}), source)
        self._check_intensity(p, source, t1)
        with self._lock:
            r = self.executor.run([p], score_threshold)[0]
        return self._checked_empty(self._finish(self._device_checked(r, p, source, t1), source, validate_ms), source)

    @contextlib.contextmanager
    def input_buffer(self, num_points: int) -> Iterator[np.ndarray]:
        """A float32 ``[num_points, 4]`` array to write one cloud into and pass to :meth:`detect`
        within the block::

            with det.input_buffer(len(msg_points)) as buf:
                decode_into(buf)          # x, y, z, intensity rows
                boxes = det.detect(buf)

        On the GPU executor it is the pinned staging row itself, so ``detect`` skips the host copy
        into pinned memory (~25 us for a KITTI FOV cloud on an H200 host; docs/PERFORMANCE.md);
        elsewhere it is a new array. The detector is held for the block (other threads' calls wait
        until it ends), and the array is valid only inside it. ``num_points`` beyond the GPU
        buffer grows it (``on_points_overflow``)."""
        n = int(num_points)
        if n < 0 or n != num_points:
            raise PointCloudError(f"input_buffer: {num_points!r} points; give a whole number >= 0")
        with self._lock:
            buf = self.executor.input_buffer(n)
            yield np.empty((n, 4), np.float32) if buf is None else buf

    def detect_batch(self, clouds: Sequence[np.ndarray], score_threshold: float | None = None,
                     sources: Sequence[str] | None = None) -> list[Detections]:
        """Boxes of many clouds, ``executor.max_batch`` per step (the device executor runs each group
        as one batched replay; ``timings_ms`` are then the group's). Every cloud is validated first:
        a bad one raises before any runs."""
        sources = list(sources) if sources is not None else [f"<cloud {i}>" for i in range(len(clouds))]
        score_threshold = _score_threshold(score_threshold)
        t0 = perf_counter()
        pts = [self._validated(c, s) for c, s in zip(clouds, sources)]
        t1 = perf_counter()
        validate_ms = (t1 - t0) * 1e3 / max(1, len(pts))
        busy = [i for i, p in enumerate(pts) if p.shape[0] > 0]
        for i in busy:
            self._check_intensity(pts[i], sources[i], t1)
        with self._lock:
            results = self.executor.run(pts if len(busy) == len(pts) else [pts[i] for i in busy], score_threshold) if busy else []
        # loops, not comprehensions, around what warns: a comprehension is a frame of its own before Python 3.12,
        # and the warnings' stacklevel counts frames up to the caller
        checked = []
        for i, r in zip(busy, results):
            checked.append(self._device_checked(r, pts[i], sources[i], t1))
        out: list[Detections | None] = [None] * len(pts)
        for i, r in zip(busy, checked):
            out[i] = self._finish(r, sources[i], validate_ms)
        for i, d in enumerate(out):
            out[i] = self._checked_empty(empty_detections(self.config, 0, {"validate": validate_ms}) if d is None else d, sources[i])
        return out

    def _validated(self, points: np.ndarray, source: str) -> np.ndarray:
        """``validate_points`` under this detector's ``nonfinite`` policy; NaN/inf rows are left in
        when the executor checks the points on the device (``checks_points``)."""
        return validate_points(points, source, nonfinite=self.options.nonfinite, allow_empty=True,
                               check_finite=not self.executor.checks_points)

    def _check_intensity(self, points: np.ndarray, source: str, now: float) -> None:
        """The host's intensity check of a non-empty validated cloud (none when the executor
        measures the range on the device); warns at the caller of ``detect`` / ``detect_batch``."""
        if not self.executor.checks_points and (msg := self._intensity(points, source, now)):
            warnings.warn(msg, IntensityRangeWarning, stacklevel=3)

    def _checked_empty(self, d: Detections, source: str) -> Detections:
        """``d``, with an :class:`EmptyFrameWarning` when no pillar was found."""
        if d.num_pillars == 0:
            warnings.warn(f"{source}: no point lies inside the point-cloud range {self.config.voxel.point_cloud_range} "
                          f"({d.num_points} points); the result is empty", EmptyFrameWarning, stacklevel=3)
        return d

    def _device_checked(self, r: FrameResult, points: np.ndarray, source: str, now: float) -> FrameResult:
        """The ``nonfinite`` policy and the intensity check from what the GPU counted: under
        ``"error"`` a frame with NaN/inf rows raises (the host finds the first bad row for the
        message); under ``"drop"`` those rows (out of range on the GPU) leave ``num_points``. A no-op
        for an executor that does not check the points (its counts keep their defaults: 0 and None)."""
        c = r.counts
        if c.num_nonfinite:
            if self.options.nonfinite == NonFinitePolicy.ERROR:
                validate_points(points, source, nonfinite="error", allow_empty=True)  # raises PointCloudError
            r = dataclasses.replace(r, counts=dataclasses.replace(c, num_points=c.num_points - c.num_nonfinite))
        if c.intensity is not None and (msg := self._intensity.check_range(*c.intensity, source, now)):
            warnings.warn(msg, IntensityRangeWarning, stacklevel=3)
        return r

    def _finish(self, r: FrameResult, source: str, validate_ms: float) -> Detections:
        c = r.counts
        timings = {"validate": validate_ms, **r.timings_ms}
        if c.num_pillars == 0:
            return empty_detections(self.config, c.num_points, timings)
        if c.overflowed:
            msg = (f"{source}: {c.num_found} pillars exceed the maximum {self.max_pillars}; dropped "
                   f"{c.num_dropped_pillars} pillars holding {c.num_dropped_points} points")
            if self.options.on_overflow == OverflowPolicy.ERROR:
                raise PillarOverflowError(msg)
            warnings.warn(msg, PillarOverflowWarning, stacklevel=3)
        boxes, scores, labels = r.boxes, r.scores, r.labels
        if not math.isfinite(_sum(boxes, axis=None, dtype=_f64) + _sum(scores, axis=None, dtype=_f64)):  # one cheap test when all are finite
            finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
            warnings.warn(f"{source}: dropped {int((~finite).sum())} of {len(finite)} decoded boxes with non-finite values "
                          "(are the intensities in the model's range?)", NonFiniteBoxWarning, stacklevel=3)
            boxes, scores, labels = boxes[finite], scores[finite], labels[finite]
        return Detections(boxes=boxes, scores=scores, labels=labels, class_names=self.config.classes, timings_ms=timings,
                          num_points=c.num_points, num_pillars=c.num_pillars, num_dropped_pillars=c.num_dropped_pillars,
                          num_dropped_points=c.num_dropped_points)

    # ---- lifecycle ----------------------------------------------------------------------------
    def warmup(self, iterations: int = 2, num_points: int = 20000, seed: int = 0) -> None:
        """Run a few synthetic frames so that JIT compilation, allocations and graph captures happen now."""
        pts = warmup_cloud(self.config, num_points, seed)
        for _ in range(iterations):
            self.detect(pts, source="<warmup>")

    def close(self) -> None:
        """Release the executor's resources."""
        with self._lock:
            self.executor.close()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _score_threshold(value: float | None) -> float | None:
    """A per-call score threshold: None (the config's) or a number in ``[0, 1]``; else :class:`ConfigError`
    (a threshold of 2 would silently return nothing, a negative one every candidate)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"score_threshold: expected a number in [0, 1] or None, got {value!r}")
    return check_unit_interval("score_threshold", float(value))


def build_detector(ckpt: str | Path | None = None, engine_dir: str | Path | None = None, *,
                   config: PointPillarsConfig | str | Path | None = None, backend: Backend | str = "auto",
                   device: str | None = None, format: str | None = None, **options: Any) -> Detector:
    """The one factory of the tools and nodes: a detector on the engines / graphs in ``engine_dir``
    when it is given, else on the checkpoint ``ckpt`` (``None``: the shipped demo model)."""
    if engine_dir is not None:
        if ckpt is not None:
            from .errors import ConfigError

            raise ConfigError("give a checkpoint or an engine folder, not both (the engines carry their weights)")
        return Detector.from_engine_dir(engine_dir, config, backend=backend, device=device, **options)
    return Detector.from_checkpoint(ckpt, config, backend=backend, device=device, format=format, **options)


__all__ = [
    "DEMO_MODEL", "Detections", "Detector", "EmptyFrameWarning", "ModelSource", "NonFiniteBoxWarning", "PillarOverflowWarning",
    "build_detector", "resolve_weights", "warmup_cloud",
]
