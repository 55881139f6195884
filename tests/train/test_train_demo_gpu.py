"""tools/train_demo_gpu.sh, the exact script of the GPU run, on the CPU with tiny sizes: it must not fail
there for a silly reason (options, paths, metadata, outputs), and it leaves in OUT only what the device
returns (at most 8 files: one archive per variant, the control's archive, timing.txt, summary.txt), with the
synthetic val AP of every variant and of the shipped model on the v3 and v5 val splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "tools" / "train_demo_gpu.sh"


@pytest.mark.slow
def test_tiny_run_leaves_one_archive_per_variant_and_the_summaries(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "DATA_ROOT": str(tmp_path / "data")}
    # two variants (the CPU trains them slowly), one of them a fine-tune of the shipped model; the device run trains three
    r = subprocess.run(["bash", str(SCRIPT), str(out), "--frames", "6", "--steps", "2", "--batch-size", "2", "--device", "cpu",
                        "--workers", "1", "--variants", "plain_s1 ft_twin_head", "--val-frames", "2"], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=1200)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["ft_twin_head.tar.gz", "plain_s1.tar.gz", "shipped.tar.gz", "summary.txt",
                                                        "timing.txt"]
    from safetensors import safe_open

    for v, seed in (("plain_s1", "1"), ("ft_twin_head", "0")):
        with tarfile.open(out / f"{v}.tar.gz") as tar:
            names = set(tar.getnames())
            assert {"model.safetensors", "train.log", "train.json", "data.json", "real.log", "val_v3.json", "val_v5.json"} <= names
            tar.extractall(tmp_path / v, filter="data")
        model = tmp_path / v / "model.safetensors"
        assert 1e6 < model.stat().st_size <= 10e6  # float16, <= 10 MB
        with safe_open(str(model), "pt") as f:
            meta = f.metadata()
        assert meta["data_generator_version"] == "6" and meta["data_seed"] == "1" and meta["seed"] == seed and "eval_ap" in meta
        assert "--object-sparsify 0.3" in meta["command"] and "--max-seconds" in meta["command"]
        assert ("--twin-negative-weight 3" in meta["command"]) == (v == "ft_twin_head")
        assert meta.get("init_checkpoint") == ("pointpillars_trt/data/demo_model.safetensors" if v == "ft_twin_head" else None)
        assert meta.get("frozen") == ("pfn,rpn.blocks,rpn.deblocks" if v == "ft_twin_head" else None)
        assert json.loads((tmp_path / v / "data.json").read_text())["generator_version"] == "6"
        assert "R40" in json.loads((tmp_path / v / "val_v3.json").read_text())
        assert (tmp_path / v / "train.log").read_text().count("trained 2 steps") == 1
        assert json.loads((tmp_path / v / "train.json").read_text())["steps"] == 2
    summary = (out / "summary.txt").read_text()
    assert "plain_s1: trained 2 steps" in summary and "ft_twin_head: trained 2 steps" in summary
    for who in ("plain_s1", "ft_twin_head", "shipped (control: the shipped model)"):
        for split in ("v3 val", "v5 val"):
            assert f"{who}: {split} R40 moderate 3D Car / Ped / Cyc: " in summary and "none: see the log" not in summary
    with tarfile.open(out / "shipped.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["val_v3.json", "val_v3.log", "val_v5.json", "val_v5.log"]
    assert "done" in (out / "timing.txt").read_text() and "frames in" in (out / "timing.txt").read_text()


@pytest.mark.parametrize("args, message", [(["--bogus", "1"], "unknown option --bogus"),
                                           (["--variants", "plain nope"], "unknown variant nope"),
                                           (["--steps"], "needs a value")])
def test_bad_options_exit_2(tmp_path, args, message):
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr
    assert not any(tmp_path.iterdir())
