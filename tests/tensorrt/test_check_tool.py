"""tools/check_tensorrt.py: its comparisons (pure) and its behaviour without TensorRT."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pointpillars_trt.errors import BackendUnavailableError
from pointpillars_trt.postprocess import RawDetections

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "check_tensorrt.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("check_tensorrt_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def dets(boxes, scores, labels):
    return RawDetections(np.asarray(boxes, np.float32).reshape(-1, 7), np.asarray(scores, np.float32), np.asarray(labels, np.int64))


def test_tensor_errors():
    tool = load_tool()
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    assert tool.tensor_errors(a, a) == (0.0, 0.0)
    b = a.copy()
    b[1, 1] = 4.5
    absolute, rel = tool.tensor_errors(b, a)
    assert absolute == pytest.approx(0.5) and rel == pytest.approx(0.5 / (4.0 + 1e-3))
    with pytest.raises(ValueError, match="shapes differ"):
        tool.tensor_errors(a, a[:1])


def test_match_detections():
    tool = load_tool()
    car = [10, 0, -1, 3.9, 1.6, 1.5, 0.1]
    ped = [20, 5, -1, 0.8, 0.6, 1.7, 0.0]
    a = dets([car, ped], [0.9, 0.5], [0, 1])
    shifted = list(car)
    shifted[0] += 0.05
    b = dets([ped, shifted], [0.52, 0.88], [1, 0])
    m = tool.match_detections(a, b)
    assert m["n_a"] == 2 and m["n_b"] == 2 and m["matched"] == 2
    assert 0.9 < m["min_iou"] < 1.0 and m["max_dscore"] == pytest.approx(0.02, abs=1e-6)
    wrong_label = dets([car], [0.9], [2])
    assert tool.match_detections(a, wrong_label)["matched"] == 0
    assert tool.match_detections(a, dets([], [], []))["matched"] == 0


def test_tool_exits_2_without_tensorrt():
    from pointpillars_trt.tensorrt.api import load_tensorrt

    try:
        load_tensorrt()
        pytest.skip("TensorRT is installed")
    except BackendUnavailableError:
        pass
    r = subprocess.run([sys.executable, str(TOOL), "--frames", str(REPO)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert r.returncode == 2 and "TensorRT is not installed" in r.stderr
