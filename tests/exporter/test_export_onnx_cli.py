"""export/export_onnx.py: random model, every checkpoint format, --fp16/--fused, exit code 2."""

from __future__ import annotations

import importlib.util
import logging

import pytest

from tests.helpers import REPO
from pointpillars_trt.exporter import read_graph_metadata, state_dict_sha256

spec = importlib.util.spec_from_file_location("export_onnx_cli", REPO / "export" / "export_onnx.py")
cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cli)


def test_default_model_fused_fp16(tmp_path, caplog):
    """Without --ckpt: the shipped demo model, or random weights when the package has none."""
    from pointpillars_trt.detector import DEMO_MODEL

    caplog.set_level(logging.INFO)
    assert cli.main(["--out-dir", str(tmp_path), "--fp16", "--fused"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.onnx", "mfn.onnx", "pfn.onnx", "rpn.onnx"]
    meta = read_graph_metadata(tmp_path / "full.onnx")
    assert (meta.part, meta.precision) == ("full", "fp16")
    if DEMO_MODEL.is_file():
        assert meta.checkpoint_sha256_of == "file" and str(DEMO_MODEL) in caplog.text
    else:
        assert meta.checkpoint_sha256_of == "state_dict" and "RANDOM weights" in caplog.text


def test_other_config_checkpoint(tmp_path, example_config):
    ckpt_mod = pytest.importorskip("pointpillars_trt.checkpoint")
    ckpt = ckpt_mod.write_checkpoint(tmp_path / "example.safetensors", "native", example_config, seed=1)
    assert cli.main(["--ckpt", str(ckpt), "--out-dir", str(tmp_path / "onnx"), "--fused"]) == 0
    meta = read_graph_metadata(tmp_path / "onnx" / "full.onnx")
    assert (meta.config, meta.precision, meta.checkpoint_sha256_of) == (example_config, "fp32", "file")


@pytest.mark.parametrize("fmt", ["native", "openpcdet", "mmdet3d", "zhulf0804"])
def test_every_checkpoint_format(tmp_path, fmt, kitti_config):
    ckpt_mod = pytest.importorskip("pointpillars_trt.checkpoint")
    ckpt = ckpt_mod.write_checkpoint(tmp_path / f"random.{'safetensors' if fmt == 'native' else 'pth'}", fmt, kitti_config, seed=3)
    out = tmp_path / "onnx"
    assert cli.main(["--ckpt", str(ckpt), "--out-dir", str(out)]) == 0
    loaded = ckpt_mod.load_checkpoint(ckpt)
    for part in ("pfn", "mfn", "rpn"):
        meta = read_graph_metadata(out / f"{part}.onnx")
        assert meta.checkpoint_sha256_of == "file"
        assert meta.weights_sha256 == state_dict_sha256(loaded.state_dict)
        assert meta.config == loaded.config


def test_bad_inputs_exit_2(tmp_path, caplog):
    assert cli.main(["--ckpt", str(tmp_path / "missing.pth"), "--out-dir", str(tmp_path)]) == 2
    assert cli.main(["--config", str(tmp_path / "nope.yaml"), "--out-dir", str(tmp_path)]) == 2
    assert "nope.yaml" in caplog.text
