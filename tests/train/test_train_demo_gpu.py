"""tools/train_demo_gpu.sh, the exact script of the GPU run, on the CPU with tiny sizes: it must not fail
there for a silly reason (options, paths, metadata, outputs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "tools" / "train_demo_gpu.sh"


@pytest.mark.slow
def test_tiny_run_writes_both_models_and_their_records(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "DATA_ROOT": str(tmp_path / "data")}
    r = subprocess.run(["bash", str(SCRIPT), str(out), "--frames", "6", "--steps", "2", "--batch-size", "2", "--device", "cpu",
                        "--workers", "1"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for v, mix in (("plain", "0.0"), ("mix", "0.3")):
        model = out / v / "model.safetensors"
        assert 1e6 < model.stat().st_size <= 10e6  # float16, <= 10 MB
        from safetensors import safe_open

        with safe_open(str(model), "pt") as f:
            meta = f.metadata()
        assert meta["data_generator_version"] == "2" and meta["data_generator_mix"] == mix
        assert "--object-sparsify 0.3" in meta["command"] and "eval_ap" in meta
        assert json.loads((out / f"{v}_data.json").read_text())["generator_version"] == "2"
        assert (out / v / "train.log").read_text().count("trained 2 steps") == 1
        assert json.loads((out / v / "train.json").read_text())["steps"] == 2
    assert "done" in (out / "timing.txt").read_text()


def test_bad_option_exits_2(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path), "--bogus", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr
