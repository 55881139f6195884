"""Random checkpoints: the inverse conversion reproduces the published key tables; the CLI tool."""

import importlib.util
from pathlib import Path

import pytest
import torch

from pointpillars_trt.checkpoint import FORMATS, load_checkpoint, make_source_state_dict, random_native_state_dict
from pointpillars_trt.config import load_config
from pointpillars_trt.model import build_model

from .sources import FOREIGN, random_pillars, native_features, read_tsv

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_checkpoint.py"


@pytest.mark.parametrize("fmt", FOREIGN)
def test_inverse_conversion_gives_exactly_the_published_names_and_shapes(fmt):
    table = read_tsv()[fmt]
    state = make_source_state_dict(fmt, load_config(), seed=0)
    assert {k: list(v.shape) for k, v in state.items()} == table
    assert list(state) == list(table)  # same order as the module definitions


def test_random_native_weights_are_deterministic_and_sane():
    cfg = load_config()
    a, b, c = (random_native_state_dict(cfg, s) for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["rpn.conv_cls.weight"], c["rpn.conv_cls.weight"])
    for key, t in a.items():
        if key.endswith("running_var"):
            assert 0.5 <= t.min() and t.max() <= 1.5
    model = build_model(cfg)
    model.load_state_dict(a)
    pts, num, coords = random_pillars(cfg, 200, seed=0)
    with torch.no_grad():
        pillars = model.pfn(native_features(cfg, pts, num, coords).float(), num)
        canvas = torch.zeros(1, pillars.shape[1], 64, 64)
        canvas[0, :, coords[:, 1] % 64, coords[:, 0] % 64] = pillars.T
        cls, box, _ = model.rpn(canvas)
    assert pillars.abs().max() < 20 and torch.isfinite(cls).all()
    assert box.abs().mean() < 10 and torch.sigmoid(cls).mean() < 0.2  # O(1) activations, prior-like scores


def load_tool():
    spec = importlib.util.spec_from_file_location("make_checkpoint_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fmt", FORMATS)
def test_make_checkpoint_tool(tmp_path, fmt, capsys):
    out = tmp_path / ("m.safetensors" if fmt == "native" else "m.pth")
    assert load_tool().main(["--format", fmt, "--out", str(out), "--seed", "3"]) == 0
    assert str(out) in capsys.readouterr().out
    ck = load_checkpoint(out)
    assert ck.format == fmt
    if fmt == "native":
        assert ck.metadata["seed"] == "3" and "--seed 3" in ck.metadata["command"]


def test_make_checkpoint_tool_reports_bad_input(tmp_path, capsys):
    tool = load_tool()
    assert tool.main(["--format", "native", "--out", str(tmp_path / "m.safetensors"), "--config", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err
    assert tool.main(["--format", "openpcdet", "--out", str(tmp_path / "missing" / "m.pth")]) == 2
