"""The Ray Data pipeline: read tasks (CPU) -> an actor pool of detectors -> the writer.

::

    from functools import partial
    from pointpillars_trt.detector import build_detector
    from pointpillars_trt.fleet import FleetOptions, InputSpec, ResultStore, connect, plan_tasks, run_fleet

    connect("auto")                                   # or "local", "ray://head:10001"
    store = ResultStore("out.parquet", run={"ckpt": "model.pth"})
    tasks = plan_tasks(["drive.mcap", "frames/"], InputSpec(topic="/points"), done=store.done)
    summary = run_fleet(tasks, partial(build_detector, "model.pth"), store, FleetOptions())

Scaling: one detector actor per GPU (``num_gpus`` GPUs, each actor ``num_gpus=1``); on a
cluster without GPUs, ``cpu_actors`` ONNX Runtime actors of ``num_cpus`` CPUs each. Read tasks
take one CPU each and run wherever Ray has CPUs; Ray Data streams their frames through the
object store to the actors and backpressures reading when the actors fall behind. The rows come
back to the driver, which writes the Parquet parts (and label files).
"""

from __future__ import annotations

import logging
import pickle
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..config import check_unit_interval
from ..errors import BackendUnavailableError, ConfigError, PointPillarsError
from .actor import DetectorActor
from .labels import LabelWriter
from .plan import frame_count
from .store import ResultStore
from .tasks import BagTask, PointsTask, task_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetOptions:
    """``num_gpus``: GPUs to use, one detector actor each (None: every GPU of the cluster; 0:
    CPU actors); ``num_cpus``: CPUs per detector actor; ``cpu_actors``: detector actors on a
    cluster without GPUs (None: as many as the cluster's CPUs allow, keeping one for reading);
    ``batch_size``: frames per ``detect_batch`` call; ``score_threshold``: None for the config's;
    ``progress``: Ray Data's progress bars; ``warmup``: warm-up batches per actor;
    ``actor_concurrency``: batches each detector actor runs at once, in threads (Ray Data's
    ``max_concurrent_calls_per_actor`` with ``enable_true_multi_threading``): the detector holds a
    lock only around its executor step (the GPU), so one batch's unpacking, validation and result
    rows, and Ray's batching around them, overlap another batch's GPU step; 1 runs one batch at a
    time (Ray's default, the behaviour before this option)."""

    num_gpus: int | None = None
    num_cpus: float = 1.0
    cpu_actors: int | None = None
    batch_size: int = 64
    score_threshold: float | None = None
    progress: bool = True
    warmup: int = 1
    actor_concurrency: int = 3

    def __post_init__(self) -> None:
        for name in ("num_gpus", "cpu_actors"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if self.batch_size < 1 or self.num_cpus <= 0:
            raise ConfigError(f"batch_size must be >= 1 and num_cpus > 0, got {self.batch_size} and {self.num_cpus}")
        if self.actor_concurrency < 1:
            raise ConfigError(f"actor_concurrency must be >= 1, got {self.actor_concurrency}")
        if self.score_threshold is not None:
            check_unit_interval("score_threshold", self.score_threshold)


@dataclass(frozen=True)
class FleetSummary:
    """What a run did: ``frames`` rows written, ``failed`` of them with an error, ``skipped``
    frames an earlier run had written, ``seconds`` of the pipeline, ``actors`` and their kind."""

    frames: int
    failed: int
    skipped: int
    seconds: float
    actors: int
    gpu: bool

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        kind = "GPU" if self.gpu else "CPU"
        return (f"{self.frames} frames ({self.failed} failed, {self.skipped} already done) in {self.seconds:.1f} s: "
                f"{self.frames_per_second:.1f} frames/s on {self.actors} {kind} actor(s)")


def connect(address: str = "local", **init: Any) -> None:
    """Join or start Ray once: ``local`` starts a Ray on this machine, ``auto`` joins the cluster
    this machine belongs to, ``ray://HOST:PORT`` connects through Ray Client, ``HOST:PORT`` to that
    cluster's head (``init``: more
    ``ray.init`` arguments, e.g. ``num_cpus``). Does nothing when Ray is initialized already."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(f"fleet inference needs Ray Data: pip install 'pointpillars_trt[fleet]' ({exc})") from exc

    if ray.is_initialized():
        return
    if not address:
        raise ConfigError("address must be local, auto, ray://HOST:PORT or a cluster's HOST:PORT")
    try:
        ray.init(address=None if address == "local" else address, include_dashboard=False, **init)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot connect to Ray at {address!r}: {exc}") from exc


def actor_resources(options: FleetOptions) -> tuple[int, dict[str, float], bool]:
    """``(actors, resources of one actor, on GPUs)`` for the cluster Ray is connected to."""
    import ray

    cluster = ray.cluster_resources()
    have = int(cluster.get("GPU", 0))
    gpus = have if options.num_gpus is None else options.num_gpus
    if gpus > have:  # not an error: an autoscaling cluster adds GPU nodes on demand; a fixed one would wait forever
        log.warning("%d GPU actors asked for; the cluster has %d GPU(s) now, so the pool waits until it has %d", gpus, have, gpus)
    if gpus:
        return gpus, {"num_gpus": 1, "num_cpus": options.num_cpus}, True
    cpus = float(cluster.get("CPU", 1))
    actors = options.cpu_actors or max(1, int((cpus - 1) // options.num_cpus))
    return actors, {"num_cpus": options.num_cpus}, False


def actor_pool(actors: int, concurrency: int):
    """Ray Data's pool of ``actors`` detector actors, each running ``concurrency`` batches at once in
    threads (1: Ray's default, one at a time)."""
    import ray.data

    if concurrency == 1:
        return ray.data.ActorPoolStrategy(size=actors)
    return ray.data.ActorPoolStrategy(size=actors, max_concurrent_calls_per_actor=concurrency, enable_true_multi_threading=True)


def dataset(tasks: Sequence[PointsTask | BagTask], make_detector: Callable[[], Any], options: FleetOptions):
    """The Ray dataset of result rows (pyarrow batches), and ``(actors, on GPUs)``."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = options.progress
    ctx.execution_options.preserve_order = False
    ctx.raise_original_map_exception = True  # a typed error of an actor reaches the driver as itself
    actors, resources, gpu = actor_resources(options)
    ds = ray.data.from_items([{"task": pickle.dumps(t)} for t in tasks], override_num_blocks=max(1, len(tasks)))
    ds = ds.flat_map(task_frames, num_cpus=1)
    ds = ds.map_batches(DetectorActor, fn_constructor_args=(make_detector, options.score_threshold, options.warmup, options.batch_size),
                        batch_size=options.batch_size, batch_format="numpy",
                        compute=actor_pool(actors, options.actor_concurrency), **resources)
    return ds, actors, gpu


def _typed_cause(exc: BaseException) -> PointPillarsError | None:
    """The PointPillarsError a Ray error carries (an actor that could not build its detector), if any:
    the innermost of the chain (Ray's wrapper is an instance of the error's class too)."""
    found, seen = None, exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, PointPillarsError):
            found = seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    return found


def _typed_trace(record: logging.LogRecord) -> bool:
    """False for Ray Data's log records carrying the traceback of a PointPillarsError (the tool
    reports it in one line) and for those of ``ray.data.exceptions`` (the error that ends the run
    is raised to the caller, with its traceback unless it is typed); True for every other record."""
    exc = record.exc_info[1] if record.exc_info else None
    return record.name != "ray.data.exceptions" and (exc is None or _typed_cause(exc) is None)


@contextmanager
def typed_errors_quiet():
    """Within: Ray Data's handlers drop the tracebacks of typed errors (see :func:`_typed_trace`)."""
    handlers = [h for name in ("ray.data", "ray") for h in logging.getLogger(name).handlers]
    for h in handlers:
        h.addFilter(_typed_trace)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(_typed_trace)


def _consume(ds, store: ResultStore, labels: LabelWriter | None, on_error: Callable[[str], None] | None) -> int:
    """Write the result batches of ``ds`` as they come; returns how many rows have an error."""
    failed = 0
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        store.add(table)
        errors = table.column("error")
        failed += table.num_rows - errors.null_count
        for error in errors.drop_null().to_pylist() if on_error else ():
            on_error(error)
        if labels is not None:
            labels.write_table(table)
    return failed


def run_fleet(tasks: Sequence[PointsTask | BagTask], make_detector: Callable[[], Any], store: ResultStore,
              options: FleetOptions = FleetOptions(), labels: LabelWriter | None = None,
              on_error: Callable[[str], None] | None = None) -> FleetSummary:
    """Run every frame of ``tasks`` through detector actors built by ``make_detector`` (a picklable
    zero-argument callable) into ``store`` (and ``labels``); finishes the store. ``on_error`` gets
    the error of each frame that failed. Ray must be connected (:func:`connect`). Rows written ==
    frames of the tasks (checked)."""
    expected, failed, t0 = frame_count(tasks), 0, time.perf_counter()
    rows_before = store.rows
    actors, gpu = 0, False
    if expected:
        ds, actors, gpu = dataset(tasks, make_detector, options)
        try:
            with typed_errors_quiet():
                failed = _consume(ds, store, labels, on_error)
        except Exception as exc:
            store.flush()  # what ran is kept for the next run
            cause = _typed_cause(exc)
            if cause is not None:
                raise cause from None
            raise
    seconds = time.perf_counter() - t0
    store.finish()
    written = store.rows - rows_before
    if written != expected:
        raise PointPillarsError(f"{store.path}: {written} rows written for {expected} frames (a bug: please report it)")
    return FleetSummary(written, failed, len(store.done), seconds, actors, gpu)


__all__ = ["FleetOptions", "FleetSummary", "connect", "run_fleet"]
