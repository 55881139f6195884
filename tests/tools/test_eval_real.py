"""tools/eval_real.py on the real KITTI frames: the shipped demo model's numbers, and bad input (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import KITTI, REPO
from pointpillars_trt.errors import DatasetError
from pointpillars_trt.train.real_eval import FrameBoxes, Tally, Thresholds, match, read_pred_velo, score_frame

TOOL = REPO / "tools" / "eval_real.py"
needs_frames = pytest.mark.skipif(not (KITTI / "cuda_pointpillars" / "pred_velo").is_dir(), reason="real KITTI frames not found")


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=300)


@needs_frames
def test_demo_model_on_real_frames(tmp_path):
    """The demo model of docs/MODEL_CARD.md (generator v6 data, --object-ends): 18 of 22 reference cars at score > 0.3, 15 at > 0.5, 23 cars > 0.5 (6 false)."""
    out = tmp_path / "real.json"
    r = run_tool("--json", out, "--backend", "onnxruntime")
    assert r.returncode == 0, r.stderr
    s = json.loads(out.read_text())
    car = s["cuda_pointpillars"]["Car"]
    assert car["references"] == 22 and car["found"] == 18
    assert car["predicted_above_false_score"] == 23 and car["false"] == 6
    assert sum(v["references"] for v in car["by_range"].values()) == 22
    assert s["kitti_000134"]["Car"]["references"] == 3
    assert "cuda_pointpillars Car: found 18/22" in r.stdout
    strict = run_tool("--recall-score", "0.5", "--backend", "onnxruntime")
    assert "cuda_pointpillars Car: found 15/22" in strict.stdout


def test_bad_frames_dir_exits_2_with_one_line(tmp_path):
    r = run_tool("--frames", tmp_path / "nowhere")
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "cuda_pointpillars" / "velodyne_reduced").mkdir(parents=True)
    np.zeros((10, 4), np.float32).tofile(tmp_path / "cuda_pointpillars" / "velodyne_reduced" / "000000.bin")
    r = run_tool("--frames", tmp_path)
    assert r.returncode == 2 and "missing reference predictions" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "cuda_pointpillars" / "pred_velo").mkdir()
    (tmp_path / "cuda_pointpillars" / "pred_velo" / "000000.txt").write_text("1 2 3\n")
    r = run_tool("--frames", tmp_path)
    assert r.returncode == 2 and "9 finite columns" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_read_pred_velo_rejects_bad_class(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("1 2 3 4 2 1.5 0 7 0.9\n")
    with pytest.raises(DatasetError, match="class_id"):
        read_pred_velo(p)


def test_match_and_false_counts():
    car = np.array([[10.0, 0, -1, 4, 1.7, 1.5, 0]])
    far = np.array([[45.0, 5, -1, 4, 1.7, 1.5, 0]])
    ref = FrameBoxes(np.concatenate([car, far]), ("Car", "Car"), np.array([0.9, 0.8]))
    pred = FrameBoxes(np.concatenate([car + [0.2, 0, 0, 0, 0, 0, 0], car + [0, 20, 0, 0, 0, 0, 0]]), ("Car", "Car"), np.array([0.6, 0.7]))
    assert match(ref.of("Car"), pred.of("Car"), 0.5).tolist() == [True, False]
    tallies: dict[str, Tally] = {}
    score_frame(ref, pred, ("Car", "Pedestrian"), Thresholds(), tallies)
    d = tallies["Car"].to_dict()
    assert (d["references"], d["found"], d["false"], d["predicted_above_false_score"]) == (2, 1, 1, 2)
    assert d["by_range"]["0-20m"] == {"references": 1, "found": 1} and d["by_range"]["40m+"]["found"] == 0
    assert tallies["Pedestrian"].to_dict()["recall"] is None
