"""tools/eval_kitti.py end to end on a KITTI-layout dataset built by the test."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "eval_kitti.py"


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("eval_kitti_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pred_dir_end_to_end(kitti_layout, tmp_path):
    pred = kitti_layout.write_predictions(tmp_path / "pred")
    out_json = tmp_path / "ap" / "result.json"
    proc = run_tool("--data-root", kitti_layout.root, "--pred-dir", pred, "--json", out_json, "--split", "val")
    assert proc.returncode == 0, proc.stderr
    assert "Car AP_R40@0.70, 0.70, 0.70:" in proc.stdout
    result = json.loads(out_json.read_text())
    assert set(result) == {"R11", "R40", "loose"} and set(result["loose"]) == {"R11", "R40"}
    for table in (result["R11"], result["R40"], result["loose"]["R11"], result["loose"]["R40"]):
        assert sorted(table) == ["Car", "Cyclist", "Pedestrian"]
        for cls in table:
            assert sorted(table[cls]) == ["3d", "aos", "bbox", "bev"]
            for metric in table[cls]:
                assert sorted(table[cls][metric]) == ["easy", "hard", "moderate"]
                assert list(table[cls][metric].values()) == pytest.approx([100.0] * 3, abs=1e-3)


def test_errors_exit_2_with_a_clear_message(kitti_layout, tmp_path):
    proc = run_tool("--data-root", kitti_layout.root, "--split", "test", "--pred-dir", tmp_path)
    assert proc.returncode == 2
    assert "ImageSets/test.txt: split file not found" in proc.stderr


def _main(tool, caplog, *args) -> int:
    caplog.clear()
    return tool.main([str(a) for a in args])


def test_error_cases_in_process(tool, kitti_layout, tmp_path, caplog):
    root = kitti_layout.root
    pred = kitti_layout.write_predictions(tmp_path / "pred")
    (pred / "123456.txt").write_text("")
    assert _main(tool, caplog, "--data-root", root, "--pred-dir", pred) == 2
    assert "result file(s) for frames not in the split: 123456.txt" in caplog.text
    (pred / "123456.txt").unlink()

    label = root / "training" / "label_2" / "000003.txt"
    label.write_text("Car 0.00 0 -1.33 333.28 177.65 489.60\n")
    assert _main(tool, caplog, "--data-root", root, "--pred-dir", pred) == 2
    assert "label_2/000003.txt:1: expected 15 or 16 fields" in caplog.text

    (root / "training" / "calib" / "000004.txt").unlink()
    assert _main(tool, caplog, "--data-root", root, "--pred-dir", pred) == 2
    assert "calib: 1 frame(s) of split 'val' have no file: 000004" in caplog.text

    (root / "training" / "label_2" / "000009.txt").unlink()
    assert _main(tool, caplog, "--data-root", root, "--pred-dir", pred) == 2
    assert "label_2: 1 frame(s) of split 'val' have no file: 000009" in caplog.text


def test_source_options(tool, tmp_path):
    for extra in (["--ckpt", "a.pth"], ["--engine-dir", "engines"]):
        with pytest.raises(SystemExit) as exc:
            tool.parse_args(["--data-root", str(tmp_path), "--pred-dir", str(tmp_path), *extra])
        assert exc.value.code == 2
    assert tool.parse_args(["--data-root", str(tmp_path)]).backend == "auto"
    assert tool.parse_args(["--data-root", str(tmp_path), "--engine-dir", "e", "--backend", "onnxruntime"]).backend == "onnxruntime"


@pytest.mark.slow
def test_demo_model_end_to_end_and_resume(kitti_layout, tmp_path):
    """Without --ckpt/--engine-dir/--pred-dir the shipped demo model runs (random weights if the
    package has none: the numbers are meaningless, the pipeline is what is tested)."""
    pytest.importorskip("pointpillars_trt.detector")
    (kitti_layout.root / "ImageSets" / "mini.txt").write_text("000000\n000001\n")
    out, out_json = tmp_path / "results", tmp_path / "ap.json"
    args = ("--data-root", kitti_layout.root, "--split", "mini", "--out-dir", out, "--json", out_json, "--no-progress")
    proc = run_tool(*args)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("*.txt")) == ["000000.txt", "000001.txt"]
    assert set(json.loads(out_json.read_text())) == {"R11", "R40", "loose"}
    again = run_tool(*args)
    assert again.returncode == 0, again.stderr
    assert "detected 0 frames" in again.stderr and "(2 already done)" in again.stderr
    other = run_tool(*args, "--backend", "onnxruntime")
    assert other.returncode == 2 and "holds results of another run" in other.stderr


def test_unwritable_json_is_found_before_the_run(kitti_layout, tmp_path):
    pred = kitti_layout.write_predictions(tmp_path / "pred")
    (tmp_path / "a_file").write_text("x")
    proc = run_tool("--data-root", kitti_layout.root, "--pred-dir", pred, "--json", tmp_path / "a_file" / "ap.json")
    assert proc.returncode == 2 and "a_file is a file, not a directory" in proc.stderr
    assert "split" not in proc.stderr and "Traceback" not in proc.stderr  # nothing ran
