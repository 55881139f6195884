"""Issue acceptance: a synthetic KITTI-layout dataset evaluated end to end through
tools/eval_kitti.py --ckpt, with the shipped demo model (frames of a seed it was not trained on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "pointpillars_trt" / "data" / "demo_model.safetensors"


@pytest.mark.slow
@pytest.mark.skipif(not DEMO.exists(), reason="no shipped demo model")
def test_synthetic_dataset_through_eval_kitti(tmp_path):
    data = tmp_path / "synthetic"
    gen = subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic.py"), "--out", str(data),
                          "--frames", "8", "--seed", "4242", "--val-fraction", "1.0"],
                         capture_output=True, text=True, timeout=600)
    assert gen.returncode == 0, gen.stderr
    out_json = tmp_path / "ap.json"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "eval_kitti.py"), "--data-root", str(data),
                           "--split", "val", "--ckpt", str(DEMO), "--out-dir", str(tmp_path / "results"),
                           "--json", str(out_json), "--no-progress"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    ap = json.loads(out_json.read_text())
    assert set(ap) == {"R11", "R40", "loose"}
    assert len(list((tmp_path / "results").glob("*.txt"))) == 8
    # a model trained on this simulator finds its cars: far above chance, below a perfect 100
    assert ap["R40"]["Car"]["3d"]["moderate"] > 50, proc.stdout
    assert "Car" in proc.stdout
