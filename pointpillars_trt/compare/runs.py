"""Running detectors over the same frames and comparing their results (after Polygraphy's
``Comparator.run(runners) -> RunResults`` and ``compare_accuracy(results, ...)``).

    results = run_detectors({"torch": a, "onnxruntime": b}, frames)
    report = compare_runs(results, "torch", "onnxruntime", iou_threshold=0.9, min_score=0.3)
    report.total.recall, report.frames[0].match.min_iou, report.to_dict()

and :func:`summarize` for latency samples (the benchmarks and tools report these).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from .detections import BoxMatch, DetectionDiff, compare_detections, match_detections, select_above


@dataclass(frozen=True)
class RunResults:
    """The detections of every detector on every frame: ``detections[name][k]`` is detector
    ``name`` on ``frames[k]`` (each a ``Detections``, with its ``timings_ms``)."""

    frames: tuple[str, ...]
    detections: Mapping[str, tuple[Any, ...]]

    def __getitem__(self, name: str) -> tuple[Any, ...]:
        return self.detections[name]

    def timings_ms(self, name: str, stage: str = "total") -> list[float]:
        """Detector ``name``'s ``timings_ms[stage]`` of every frame (frames without that stage skipped)."""
        return [d.timings_ms[stage] for d in self.detections[name] if stage in d.timings_ms]


def run_detectors(detectors: Mapping[str, Any], frames: Iterable[tuple[str, np.ndarray]],
                  score_threshold: float | None = None) -> RunResults:
    """Every detector on every frame, frame by frame (detectors in the mapping's order).

    Args:
        detectors: name -> object with ``detect(points, score_threshold=None, source=...)``.
        frames: ``(name, points [N, F] float32)`` pairs; may be a generator (points are not kept).
        score_threshold: passed to every ``detect`` call (``None``: each detector's config).

    Returns:
        RunResults with one ``Detections`` per detector and frame.
    """
    names: list[str] = []
    out: dict[str, list[Any]] = {k: [] for k in detectors}
    for name, points in frames:
        names.append(name)
        for key, det in detectors.items():
            out[key].append(det.detect(points, score_threshold=score_threshold, source=name))
    return RunResults(tuple(names), {k: tuple(v) for k, v in out.items()})


@dataclass(frozen=True)
class FrameComparison:
    """One frame of two runs: the exact comparison (:func:`compare_detections`, all boxes) and the
    IoU match (:func:`match_detections`, boxes above the comparison's ``min_score``)."""

    name: str
    exact: DetectionDiff
    match: BoxMatch


def compare_frame(name: str, ref: Any, got: Any, iou_threshold: float = 0.5, min_score: float | None = None) -> FrameComparison:
    """:class:`FrameComparison` of detection sets ``ref`` and ``got`` (``boxes [N, 7]``, ``scores``, ``labels``)."""
    return FrameComparison(name, compare_detections(ref, got),
                           match_detections(select_above(ref, min_score), select_above(got, min_score), iou_threshold))


@dataclass(frozen=True)
class RunComparison:
    """Run ``other`` against run ``ref``, frame by frame and in total."""

    ref: str
    other: str
    iou_threshold: float
    min_score: float | None
    frames: tuple[FrameComparison, ...]

    @property
    def total(self) -> BoxMatch:
        """The IoU matches of all frames merged (:meth:`BoxMatch.merge`)."""
        return BoxMatch.total(f.match for f in self.frames)

    @property
    def n_identical(self) -> int:
        """Frames whose exact comparison agrees (:meth:`DetectionDiff.agrees`, default tolerances)."""
        return sum(f.exact.agrees() for f in self.frames)

    @property
    def exact_total(self) -> DetectionDiff:
        """The exact comparisons of all frames: counts summed, maxima of the maxima."""
        e = [f.exact for f in self.frames]
        return DetectionDiff(sum(d.n_ref for d in e), sum(d.n_got for d in e), sum(d.n_matched for d in e),
                             max((d.max_box_diff for d in e), default=0.0), max((d.max_score_diff for d in e), default=0.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the settings, ``total`` (with recall and precision) and ``frames``."""
        t = self.total
        return {"ref": self.ref, "other": self.other, "iou_threshold": self.iou_threshold, "min_score": self.min_score,
                "n_identical": self.n_identical, "exact_total": asdict(self.exact_total),
                "total": {**asdict(t), "recall": t.recall, "precision": t.precision},
                "frames": [{"name": f.name, "exact": asdict(f.exact), "match": asdict(f.match)} for f in self.frames]}


def compare_runs(results: RunResults, ref: str, other: str, iou_threshold: float = 0.5,
                 min_score: float | None = None) -> RunComparison:
    """Compare detector ``other``'s results with detector ``ref``'s on every frame of ``results``.

    Args:
        results: :func:`run_detectors`' output holding both names.
        ref, other: detector names in ``results``.
        iou_threshold: smallest BEV IoU of a matched pair.
        min_score: only boxes with a score above it are IoU-matched (``None``: all).

    Returns:
        RunComparison with one :class:`FrameComparison` per frame.
    """
    pairs = zip(results.frames, results[ref], results[other])
    return RunComparison(ref, other, iou_threshold, min_score,
                         tuple(compare_frame(n, a, b, iou_threshold, min_score) for n, a, b in pairs))


def summarize(samples_ms: Iterable[float]) -> dict[str, float]:
    """``median``, ``p90``, ``p99``, ``mean`` (float) and ``n`` (int) of latency samples.

    An empty input gives NaN statistics and ``n == 0``."""
    a = np.asarray(list(samples_ms), dtype=np.float64)
    if a.size == 0:
        return {"median": float("nan"), "p90": float("nan"), "p99": float("nan"), "mean": float("nan"), "n": 0}
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean()), "n": int(a.size)}
