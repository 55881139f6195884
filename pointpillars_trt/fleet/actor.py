"""The detector stage: a Ray Data actor holding one :class:`~pointpillars_trt.detector.Detector`
(on a GPU actor the whole-frame GPU pipeline on the GPU Ray assigned it; on a CPU actor ONNX
Runtime), turning batches of frame rows into batches of result rows."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import PointPillarsError
from .results import result_table
from ..thread_warnings import caught_warnings


def _detect_guarded(detector, clouds: Sequence[np.ndarray], sources: Sequence[str], score_threshold: float | None
                    ) -> tuple[list[Any], list[list[str]], list[str]]:
    """``(detections, warnings, errors)`` of ``clouds``: one ``detect_batch`` call; when it
    raises (one bad cloud fails the whole call), each cloud again on its own, so that only the bad
    ones fail. A failure gives ``None`` and its one-line error. Thread-safe (the warnings are
    caught per thread, :func:`~pointpillars_trt.thread_warnings.caught_warnings`)."""
    with caught_warnings() as caught:
        try:
            dets = detector.detect_batch(clouds, score_threshold, sources)
            return dets, _warnings_per_source(caught, sources), [""] * len(clouds)
        except Exception:  # noqa: BLE001 - narrowed down frame by frame below
            pass
    out, notes, errors = [], [], []
    for cloud, source in zip(clouds, sources):
        with caught_warnings() as caught:
            try:
                out.append(detector.detect(cloud, score_threshold, source))
                errors.append("")
            except PointPillarsError as exc:
                out.append(None)
                errors.append(str(exc) if source in str(exc) else f"{source}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a bug: recorded, the run goes on
                out.append(None)
                errors.append(f"{source}: unexpected {type(exc).__name__}: {exc}")
        notes.append(caught)
    return out, notes, errors


def _warnings_per_source(lines: Sequence[str], sources: Sequence[str]) -> list[list[str]]:
    """The warning lines of a batch, given to the rows whose source they name (all rows when none)."""
    if not lines:
        return [[] for _ in sources]
    per = [[line for line in lines if s in line] for s in sources]
    orphans = [line for line in lines if not any(s in line for s in sources)]
    return [p + orphans for p in per]


def warm_up(detector, calls: int, batch_size: int) -> None:
    """``calls`` ``detect_batch`` calls of one executor step of synthetic clouds (``max_batch``
    frames, at most ``batch_size``): compilation, allocation and the CUDA-graph capture of a full
    step happen before the first frame (a host executor steps one frame at a time)."""
    from ..detector import warmup_cloud

    n = max(1, min(batch_size, int(getattr(getattr(detector, "executor", None), "max_batch", 1))))
    clouds = [warmup_cloud(detector.config, seed=i) for i in range(n)]
    for _ in range(calls):
        detector.detect_batch(clouds, sources=["<warmup>"] * n)


def frame_label(source: str, frame: str) -> str:
    """How messages name a frame: its file, or ``SOURCE [FRAME]`` (a KITTI split, a bag message)."""
    stem = os.path.splitext(os.path.basename(source))[0]  # Path(source).stem, a few times cheaper per row
    return source if stem == frame else f"{source} [{frame}]"


class DetectorActor:
    """``map_batches`` callable class: built once per actor with ``make_detector`` (a picklable
    zero-argument callable returning a Detector, e.g. ``functools.partial(build_detector, ckpt)``)
    and warmed up (:func:`warm_up`), then called with numpy batches of frame rows; returns a
    pyarrow table of result rows. An error building the detector is raised by the first call.
    Thread-safe: Ray may call one actor from several threads at once (``FleetOptions.actor_concurrency``);
    the detector serializes its executor step, the rest of one call overlaps it."""

    def __init__(self, make_detector: Callable[[], Any], score_threshold: float | None = None, warmup: int = 1,
                 batch_size: int = 1) -> None:
        self.detector, self.setup_error = None, None
        self.score_threshold = score_threshold
        try:
            self.detector = make_detector()
            warm_up(self.detector, warmup, batch_size)
        except PointPillarsError as exc:  # raised by the first call: Ray passes a task's error on, typed
            self.setup_error = exc

    def __call__(self, batch: dict[str, np.ndarray]):
        if self.setup_error is not None:
            raise self.setup_error
        errors = [str(e) for e in batch["error"]]
        sources = [frame_label(str(s), str(f)) for s, f in zip(batch["source"], batch["frame"])]
        ok = [i for i, e in enumerate(errors) if not e]
        dets: list[Any] = [None] * len(errors)
        notes: list[list[str]] = [[] for _ in errors]
        if ok:
            got, got_notes, got_errors = _detect_guarded(
                self.detector, [batch["points"][i] for i in ok], [sources[i] for i in ok], self.score_threshold)
            for j, i in enumerate(ok):
                dets[i], notes[i], errors[i] = got[j], got_notes[j], got_errors[j]
        return result_table(batch, dets, notes, errors)

    def __del__(self) -> None:
        detector = getattr(self, "detector", None)
        if detector is not None:
            detector.close()


__all__ = ["DetectorActor"]
