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


def test_parity_row():
    # the comparisons are pointpillars_trt.compare's (tests/compare/); this is the tool's line of them
    tool = load_tool()
    car = [10, 0, -1, 3.9, 1.6, 1.5, 0.1]
    ped = [20, 5, -1, 0.8, 0.6, 1.7, 0.0]
    ref = dets([car, ped], [0.9, 0.5], [0, 1])
    shifted = list(car)
    shifted[0] += 0.05
    got = dets([ped, shifted, car], [0.52, 0.88, 0.1], [1, 0, 2])
    heads = {o: np.full((1, 2, 3, 3), 4.0, np.float32) for o in tool.OUTPUTS}
    off = {**heads, "box": heads["box"] + 0.5}
    cells = tool.parity_row("a/b/000001.bin", 1234, "tensorrt", "torch", off, heads, got, ref).split()
    assert cells[:4] == ["a/b/000001.bin", "1234", "tensorrt", "torch"]
    assert [float(c) for c in cells[4:10]] == pytest.approx([0, 0, 0.5, 0.125, 0, 0], rel=0.05)  # abs, rel (1 digit) per output
    assert cells[10] == "3/2" and cells[11] == "2" and 0.9 < float(cells[12]) < 1.0 and float(cells[13]) == pytest.approx(0.02, abs=1e-4)
    with pytest.raises(ValueError, match="shapes differ"):
        tool.parity_row("f", 1, "tensorrt", "torch", {**heads, "cls": heads["cls"][:, :1]}, heads, got, ref)


def test_format_ms():
    tool = load_tool()
    assert tool.format_ms([1.0, 2.0, 3.0]).split() == ["2.000", "(p90", "2.800)"]
    assert tool.format_ms([]).strip() == "-"


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


def test_lane_report_flags_a_lane_that_differs():
    # --batch N: each frame of detect_batch against detect alone; a lane bug shows as DIFFERENT
    tool = load_tool()
    car = [10, 0, -1, 3.9, 1.6, 1.5, 0.1]
    one = dets([car], [0.9], [0])
    moved = list(car)
    moved[0] += 0.2
    lines, bad = tool.lane_report(["a", "b"], [one, one], [one, dets([moved], [0.9], [0])])
    assert bad == 1 and lines[0].endswith("same") and lines[1].endswith("DIFFERENT") and "lane  1" in lines[1]
