"""tools/qat.py on a tiny dataset and config: the initial INT8 export, two fine-tuning steps, the checkpoint's
metadata and ranges; the QAT checkpoint's INT8 export (export_onnx.py --calib-ranges) runs in a real ONNX
Runtime session through the Detector; one step distilled from the float model (--distill) reusing the initial
export; bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pointpillars_trt.checkpoint import load_checkpoint, save_native
from pointpillars_trt.model import build_model

from tests.helpers import REPO
from tests.train.tiny_data import frame, scene_boxes, tiny_config, write_dataset

pytest.importorskip("onnxruntime")


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(data root, float checkpoint)``: the tiny KITTI-layout dataset and a random tiny model."""
    root = write_dataset(tmp_path_factory.mktemp("qat_data"), scene_boxes())
    (root / "dataset.json").write_text(json.dumps({"generator_version": "test-7", "generator_mix": 0.5, "seed": 1, "frames": 2}))
    torch.manual_seed(0)
    cfg = tiny_config()
    ckpt = save_native(tmp_path_factory.mktemp("qat_ckpt") / "float.safetensors", build_model(cfg).state_dict(), cfg)
    return root, ckpt


def test_qat_tool_writes_a_checkpoint_whose_int8_export_runs(tiny, tmp_path):
    root, ckpt = tiny
    out = tmp_path / "qat.safetensors"
    proc = _run("tools/qat.py", "--data", str(root), "--ckpt", str(ckpt), "--out", str(out), "--steps", "2", "--batch-size", "1",
                "--workers", "0", "--calib-frames", "2", "--calib-threads", "1", "--learn-scales", "--log-every", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = load_checkpoint(out)
    meta = loaded.metadata
    assert (meta["qat_steps"], meta["qat_learn_scales"], meta["qat_activation_type"]) == ("2", "true", "int8")
    assert meta["data_generator_version"] == "test-7" and meta["data_generator_mix"] == "0.5" and meta["qat_base"] == str(ckpt)
    assert meta["qat_distill"] == "0.0"
    assert set(loaded.state_dict) == set(load_checkpoint(ckpt).state_dict)  # the same keys: a plain float checkpoint
    ranges = tmp_path / "qat.calibration.json"
    summary = json.loads((tmp_path / "qat.json").read_text())
    assert summary["steps"] == 2 and summary["scales"] and ranges.is_file() and "kd" not in summary["history"][0]

    int8 = tmp_path / "int8"
    export = ("export/export_onnx.py", "--ckpt", str(out), "--out-dir", str(int8), "--fused", "--int8", "--calib", str(root),
              "--calib-frames", "2", "--calib-ranges", str(ranges))
    proc = _run(*export)  # the default activation type (uint8) with the int8 ranges it was fine-tuned against
    errors = [line for line in proc.stderr.splitlines() if line.startswith("export_onnx: ERROR: ")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(errors) == 1
    assert "fine-tuned against are int8" in errors[0] and "--activation-type int8" in errors[0]
    assert not (int8 / "full.onnx").exists()
    proc = _run(*export, "--activation-type", "int8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.train.qat import read_qdq
    import onnx

    points, _ = read_qdq(onnx.load(str(int8 / "full.onnx")))
    for name, scale in summary["scales"].items():
        assert points[name].scale == pytest.approx(scale, rel=1e-5), name
    det = Detector.from_engine_dir(int8, backend="onnxruntime", device="cpu", threads=1)
    try:
        assert det.detect(frame(scene_boxes()[0][0], seed=0), source="tiny").boxes.shape[1] == 7
    finally:
        det.close()

    # an initial export of other weights is refused
    proc = _run("tools/qat.py", "--data", str(root), "--ckpt", str(out), "--out", str(tmp_path / "b.safetensors"), "--steps", "1",
                "--batch-size", "1", "--workers", "0", "--ptq-dir", str(tmp_path / "qat.ptq"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "not the int8 INT8 export of these weights" in proc.stderr

    # distilled from the frozen float model, from the same initial export
    kd = tmp_path / "kd.safetensors"
    proc = _run("tools/qat.py", "--data", str(root), "--ckpt", str(ckpt), "--out", str(kd), "--steps", "1", "--batch-size", "1",
                "--workers", "0", "--ptq-dir", str(tmp_path / "qat.ptq"), "--learn-scales", "--distill", "0.5", "--log-every", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing the INT8 export" in proc.stderr and " kd " in proc.stderr
    assert load_checkpoint(kd).metadata["qat_distill"] == "0.5"
    (rec,) = json.loads((tmp_path / "kd.json").read_text())["history"]
    assert rec["kd"] > 0 and rec["loss"] == pytest.approx(rec["cls"] + rec["box"] + rec["dir"] + 0.5 * rec["kd"], rel=1e-5)


@pytest.mark.parametrize("args, message", [([], "split file not found"), (["--distill", "-1"], "--distill >= 0")])
def test_qat_tool_bad_input_exits_2(tmp_path, args, message):
    proc = _run("tools/qat.py", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "q.safetensors"), *args, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr


def test_int8_sweep_measures_a_qat_checkpoint_against_its_float_reference(tmp_path):
    """tools/int8_sweep.py --ckpt QAT --reference-ckpt FLOAT --ranges R: the FP32 graphs come from FLOAT, every
    candidate's from QAT with R as its ranges (no calibration), those sharing a calibration from the first's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("int8_sweep_qat", REPO / "tools" / "int8_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    sys.modules["int8_sweep_qat"] = sweep
    spec.loader.exec_module(sweep)

    class Recorder:  # the process pool's submit, recorded instead of run
        def __init__(self):
            self.calls = []

        def submit(self, fn, *args):
            self.calls.append(args)
            return len(self.calls)

    cands = [sweep.parse_candidate(s) for s in ("entropy-64+first+head", "entropy-64+first")]
    variants = sweep.plan(cands, None, [])
    pool = Recorder()
    runner = sweep.Sweep(pool, tmp_path, tmp_path / "data", tmp_path / "qat.safetensors", ["000001"], 1,
                         reference=tmp_path / "float.safetensors", ranges=tmp_path / "qat.calibration.json")
    for v in variants.values():
        runner._build(v)
    built = {args[1].name: (args[0].name, args[4]) for args in pool.calls}
    assert built["fp32"] == ("float.safetensors", None)
    assert built["entropy-64+first+head"] == ("qat.safetensors", tmp_path / "qat.calibration.json")
    assert built["entropy-64+first"] == ("qat.safetensors", runner.graphs_dir("entropy-64+first+head") / "calibration.json")
