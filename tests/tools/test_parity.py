"""tools/parity.py (writes docs/ACCURACY.md) run for real on one KITTI frame, and its bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, kitti_frame_paths

TOOL = REPO / "tools" / "parity.py"
FRAMES = kitti_frame_paths()


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=900)


def table(text: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the markdown table under ``heading``."""
    body = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in r] for r in rows[2:]]


@pytest.mark.slow
@pytest.mark.skipif(not FRAMES, reason="../shared KITTI frames absent")
def test_report_on_one_frame(tmp_path):
    frames = tmp_path / "frames" / "one" / "velodyne_reduced"
    frames.mkdir(parents=True)
    (frames / "000000.bin").symlink_to(FRAMES[0])  # the real frame, not a copy
    out = tmp_path / "acc.md"
    proc = run_tool("--frames", str(tmp_path / "frames"), "--skip-example", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "max(|torch|, 0.001 * max|torch|)" in text  # the one relative-error floor (compare.arrays.REL_FLOOR)
    parts = {(r[0], r[1]): r for r in table(text, "## Per-part and chained errors")}
    assert parts[("fp32 split", "mfn")][2] == "0"  # the scatter only moves values
    assert float(parts[("fp32 split", "chain.cls")][2]) < 1e-3 and ("fp32 fused", "chain.box") in parts
    fp32 = {r[0]: r for r in table(text, "## FP32 graphs: final boxes")}
    assert fp32["fp32 split"][1] == "5" and fp32["fp32 split"][2] == "5/5"  # 1 frame + 4 synthetic sets, all identical
    assert fp32["fp32 fused"][2] == "5/5"
    fp16 = table(text, "## FP16 graphs: final boxes matched by IoU")
    assert fp16[0][0] == "fp16 split" and float(fp16[0][4]) > 0.9  # recall
    per_input = table(text, "## Per input")
    assert [r[0] for r in per_input] == ["one/000000", "1", "5", "12000", "40000"]
    assert all(r[5] == "yes" for r in per_input) and int(per_input[0][2]) > 0


def test_no_frames_exits_2(tmp_path):
    proc = run_tool("--frames", str(tmp_path), "--out", str(tmp_path / "acc.md"))
    assert proc.returncode == 2 and "no */velodyne_reduced/*.bin frames" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "acc.md").exists()
