"""tools/compare_backends.py on real frames: torch vs ONNX Runtime agree box for box."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FRAMES = REPO.parent / "shared" / "data" / "kitti_frames" / "zhulf0804" / "velodyne_reduced"


@pytest.mark.skipif(not FRAMES.exists(), reason="../shared KITTI frames absent")
def test_torch_vs_onnxruntime(tmp_path):
    out = tmp_path / "cmp.json"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "compare_backends.py"), "--frames", str(FRAMES),
                           "--a", "torch", "--b", "onnxruntime", "--score", "0.1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    agr = report["agreement"]
    assert report["frames"] == 2 and agr["boxes_a"] > 0
    assert agr["found_in_b"] == agr["boxes_a"] and agr["found_in_a"] == agr["boxes_b"]
    assert agr["max_centre_dist"] < 1e-3 and agr["max_score_diff"] < 1e-4


def test_bad_frames_dir_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "compare_backends.py"), "--frames", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no point-cloud files" in proc.stderr
