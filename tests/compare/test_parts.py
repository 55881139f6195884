"""compare/parts.py: the PyTorch reference intermediates and the chained head errors (the ONNX
Runtime per-part runs are checked in tests/network/test_onnxruntime.py)."""

from __future__ import annotations

import numpy as np

from pointpillars_trt.compare.parts import HEADS, head_errors, torch_parts
from pointpillars_trt.checkpoint import random_native_state_dict
from pointpillars_trt.exporter.parity import synthetic_pillars
from pointpillars_trt.model import build_model


def test_torch_parts_shapes_and_head_errors(example_config):
    cfg = example_config
    model = build_model(cfg)
    model.load_state_dict(random_native_state_dict(cfg, 3))
    model.eval()
    feeds = synthetic_pillars(cfg, 20, seed=1)
    ref = torch_parts(model, feeds)
    nx, ny, _ = cfg.voxel.grid_size
    assert ref["pillar_features"].shape[0] == 20 and ref["canvas"].shape[2:] == (ny, nx)
    assert all(ref[k].dtype == np.float32 and ref[k].shape[2:] == (ny, nx) for k in HEADS)
    same = head_errors(ref, ref)
    assert set(same) == {"chain.cls", "chain.box", "chain.dir"} and all(s.max_abs == 0.0 for s in same.values())
    off = head_errors(ref, {**ref, "box": ref["box"] + 0.25})
    assert abs(off["chain.box"].max_abs - 0.25) < 1e-6 and abs(off["chain.box"].mean_abs - 0.25) < 1e-6
    assert off["chain.box"].count == ref["box"].size and off["chain.cls"].max_abs == 0.0
