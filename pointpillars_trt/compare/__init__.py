"""Comparing runs: array error statistics, one detection matcher, and detectors over frames.

* :mod:`.arrays`: :class:`ErrorStats`, :func:`array_errors` (the one relative-error floor);
* :mod:`.parts`: the exported graphs part by part against the PyTorch model;
* :mod:`.detections`: :func:`compare_detections` (exact) and :func:`match_detections` (by IoU);
* :mod:`.runs`: :func:`run_detectors` -> :class:`RunResults`, :func:`compare_runs`, :func:`summarize`.
"""

from .arrays import REL_FLOOR, ErrorStats, array_errors, merge_stats
from .detections import BoxMatch, DetectionDiff, compare_detections, match_detections, select_above
from .runs import FrameComparison, RunComparison, RunResults, compare_frame, compare_runs, run_detectors, summarize

__all__ = [
    "REL_FLOOR", "BoxMatch", "DetectionDiff", "ErrorStats", "FrameComparison", "RunComparison", "RunResults",
    "array_errors", "compare_detections", "compare_frame", "compare_runs", "match_detections", "merge_stats",
    "run_detectors", "select_above", "summarize",
]
