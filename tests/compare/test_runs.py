"""compare/runs.py: detectors over frames (a real torch and a real ONNX Runtime detector on real
KITTI frames), the run comparison, and latency summaries."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from pointpillars_trt.compare.detections import BoxMatch
from pointpillars_trt.compare.runs import RunResults, compare_runs, run_detectors, summarize
from pointpillars_trt.postprocess import RawDetections
from tests.helpers import kitti_frame_paths


def brute_force_percentile(samples, q) -> float:
    """Linear interpolation between the order statistics (numpy's default)."""
    s = sorted(samples)
    pos = (len(s) - 1) * q / 100
    lo = math.floor(pos)
    return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (pos - lo)


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_summarize_matches_brute_force(n):
    samples = list(np.random.default_rng(n).exponential(3.0, n))
    s = summarize(samples)
    assert s["n"] == n and isinstance(s["n"], int)
    assert s["median"] == pytest.approx(brute_force_percentile(samples, 50))
    assert s["p90"] == pytest.approx(brute_force_percentile(samples, 90))
    assert s["p99"] == pytest.approx(brute_force_percentile(samples, 99))
    assert s["mean"] == pytest.approx(sum(samples) / n)
    assert summarize(iter(samples)) == s


def test_summarize_empty():
    s = summarize([])
    assert s["n"] == 0 and all(math.isnan(s[k]) for k in ("median", "p90", "p99", "mean"))


def dets(boxes, scores, labels) -> RawDetections:
    return RawDetections(np.asarray(boxes, np.float32).reshape(-1, 7), np.asarray(scores, np.float32),
                         np.asarray(labels, np.int64))


def test_compare_runs_per_frame_and_total():
    car, ped = [10, 0, -1, 3.9, 1.6, 1.5, 0.1], [20, 5, -1, 0.8, 0.6, 1.7, 0.0]
    moved = [10.3, 0, -1, 3.9, 1.6, 1.5, 0.1]
    results = RunResults(("a", "b", "c"), {
        "ref": (dets([car, ped], [0.9, 0.2], [0, 1]), dets([car], [0.8], [0]), dets([], [], [])),
        "other": (dets([car, ped], [0.9, 0.2], [0, 1]), dets([moved], [0.7], [0]), dets([ped], [0.5], [1])),
    })
    rep = compare_runs(results, "ref", "other", iou_threshold=0.5, min_score=0.3)
    assert [f.name for f in rep.frames] == ["a", "b", "c"]
    assert rep.frames[0].exact.agrees() and rep.frames[0].match.n_ref == 1  # the 0.2 pedestrian is below min_score
    assert not rep.frames[1].exact.agrees() and rep.frames[1].match.n_matched == 1
    e = rep.exact_total
    assert rep.n_identical == 1 and e.max_box_diff == pytest.approx(0.3, abs=1e-6) and e.max_score_diff == pytest.approx(0.1, abs=1e-6)
    assert (e.n_ref, e.n_got, e.n_matched) == (3, 4, 3)
    t = rep.total
    assert (t.n_ref, t.n_got, t.n_matched) == (2, 3, 2) and t.recall == 1.0 and t.precision == pytest.approx(2 / 3)
    assert t.max_score_diff == pytest.approx(0.1, abs=1e-6) and t.max_center_diff == pytest.approx(0.3, abs=1e-6)
    assert t == BoxMatch.total(f.match for f in rep.frames)
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["total"]["recall"] == 1.0 and d["n_identical"] == 1 and len(d["frames"]) == 3
    assert d["frames"][1]["match"]["n_matched"] == 1 and d["min_score"] == 0.3


FRAMES = [p for p in kitti_frame_paths() if p.parent.parent.name == "zhulf0804"]


@pytest.mark.skipif(len(FRAMES) < 2, reason="../shared zhulf0804 KITTI frames absent")
def test_torch_vs_onnxruntime_on_real_frames():
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.io.pointcloud import load_points

    detectors = {"torch": Detector.from_checkpoint(backend="torch", device="cpu"),
                 "onnxruntime": Detector.from_checkpoint(backend="onnxruntime", device="cpu")}
    frames = ((p.stem, load_points(p)) for p in FRAMES[:2])  # a generator: points are not kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no empty frame
        results = run_detectors(detectors, frames, score_threshold=0.1)
    assert results.frames == tuple(p.stem for p in FRAMES[:2])
    assert [len(v) for v in results.detections.values()] == [2, 2]
    assert all(len(d) > 0 for d in results["torch"]), "the demo model finds boxes on real frames"
    assert all(d.scores.min() > 0.1 for d in results["onnxruntime"])
    assert len(results.timings_ms("torch")) == 2 and summarize(results.timings_ms("onnxruntime"))["n"] == 2

    rep = compare_runs(results, "torch", "onnxruntime", iou_threshold=0.9)
    assert rep.n_identical == 2, rep.frames  # FP32 graphs reproduce the model box for box
    t = rep.total
    assert t.n_matched == t.n_ref == t.n_got == sum(len(d) for d in results["torch"])
    assert t.min_iou > 0.999 and t.max_center_diff < 1e-3 and t.max_score_diff < 1e-4
    for d in detectors.values():
        d.close()
