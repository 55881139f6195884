"""tools/qat_gpu.sh, the exact script of the GPU run, on the CPU with tiny sizes: options, paths, the shared
initial INT8 export, the checkpoint's metadata, and only what the device returns in OUT (one archive per
variant with a float16 checkpoint under 16 MiB, timing.txt, summary.txt)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "tools" / "qat_gpu.sh"
pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_tiny_run_leaves_one_archive_per_variant_and_the_summaries(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "DATA_ROOT": str(tmp_path / "data")}
    r = subprocess.run(["bash", str(SCRIPT), str(out), "--frames", "8", "--steps", "1", "--batch-size", "1", "--device", "cpu",
                        "--workers", "0", "--gen-workers", "1", "--calib-frames", "2", "--variants", "lsq_kd uint8", "--budget", "1200", "--distill-weight", "0.5"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1500)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["lsq_kd.tar.gz", "summary.txt", "timing.txt", "uint8.tar.gz"]
    assert (out / "lsq_kd.tar.gz").stat().st_size < 16 * 2**20
    with tarfile.open(out / "lsq_kd.tar.gz") as tar:
        assert set(tar.getnames()) == {"qat.safetensors", "qat.calibration.json", "qat.json", "qat.log", "data.json"}
        tar.extractall(tmp_path / "lsq", filter="data")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "lsq" / "qat.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["data_generator_version"] == "6" and meta["qat_learn_scales"] == "true" and meta["dtype"] == "float16"
    assert meta["qat_distill"] == "0.5"
    assert "reusing the INT8 export" in (tmp_path / "lsq" / "qat.log").read_text()
    assert json.loads((tmp_path / "lsq" / "qat.json").read_text())["steps"] == 1
    summary = (out / "summary.txt").read_text()
    assert "lsq_kd: fine-tuned 1 steps" in summary and "uint8: fine-tuned 1 steps" in summary  # both exports (run at once) served
    assert "done" in (out / "timing.txt").read_text()


@pytest.mark.parametrize("args, message", [(["--bogus", "1"], "unknown option --bogus"),
                                           (["--variants", "fixed lsq_kd uint8_lsq_kd nope"], "unknown variant nope"),
                                           (["--distill-weight"], "needs a value"),
                                           (["--steps"], "needs a value")])
def test_bad_options_exit_2(tmp_path, args, message):
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr
    assert not any(tmp_path.iterdir())
