"""The exported graphs: ONNX checks, the I/O contract, TensorRT-supported operators only, folded
BatchNorm and constants, metadata; BN folding against the unfolded modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.helpers import SHARED
from pointpillars_trt import __version__
from pointpillars_trt.exporter import (
    OPS_USED, OPSET, check_graph, export_onnx, graph_op_types, parse_supported_operators, read_graph_metadata,
    state_dict_sha256,
)
from pointpillars_trt.exporter.fold import fold_pfn, fold_rpn
from pointpillars_trt.model import build_model

OPERATORS_MD = SHARED / "tensorrt-api" / "onnx-tensorrt-operators-10.0.md"
FLOAT, FLOAT16, INT32 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT32


def randomized_model(cfg, seed: int = 0):
    """A model with non-trivial BatchNorm statistics (so that folding is exercised)."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, kitti_config):
    """fp32 (with full.onnx) and fp16 graphs of one random model, exported once."""
    model = randomized_model(kitti_config)
    root = tmp_path_factory.mktemp("onnx")
    return {
        "model": model,
        "fp32": export_onnx(model, kitti_config, root / "fp32", fused=True),
        "fp16": export_onnx(model, kitti_config, root / "fp16", fp16=True, fused=True),
    }


def io(path: Path) -> tuple[dict, dict]:
    """``{name: (elem_type, shape)}`` of a graph's inputs and outputs; dims are ints or axis names."""
    g = onnx.load(str(path), load_external_data=False).graph

    def table(values):
        return {v.name: (v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values}

    return table(g.input), table(g.output)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_io_contract(exported, kitti_config, precision):
    cfg = kitti_config
    paths = exported[precision]
    assert sorted(paths) == ["full", "mfn", "pfn", "rpn"]
    ft = FLOAT if precision == "fp32" else FLOAT16
    nx, ny, _ = cfg.grid_size
    fx, fy = cfg.feature_map_size
    m, c, f = cfg.voxel.max_points_per_pillar, cfg.network.pfn_channels, cfg.voxel.num_decorated_features
    heads = {k: (FLOAT, [1, ch, fy, fx]) for k, ch in cfg.head_channels.items()}
    assert io(paths["pfn"]) == ({"features": (ft, ["num_pillars", m, f]), "num_points": (INT32, ["num_pillars"])},
                                {"pillar_features": (ft, ["num_pillars", c])})
    assert io(paths["mfn"]) == ({"pillar_features": (ft, ["num_pillars", c]), "coords": (INT32, ["num_pillars", 2])},
                                {"canvas": (ft, [1, c, ny, nx])})
    assert io(paths["rpn"]) == ({"canvas": (ft, [1, c, ny, nx])}, heads)
    assert io(paths["full"]) == ({"features": (ft, ["num_pillars", m, f]), "num_points": (INT32, ["num_pillars"]),
                                  "coords": (INT32, ["num_pillars", 2])}, heads)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graphs_pass_onnx_checks_and_use_only_tensorrt_operators(exported, precision):
    supported = parse_supported_operators(OPERATORS_MD) if OPERATORS_MD.is_file() else None
    for part, path in exported[precision].items():
        model = onnx.load(str(path))
        check_graph(model, str(path))  # checker full_check + strict shape inference
        assert model.opset_import[0].version == OPSET >= 17
        ops = graph_op_types(model)
        assert ops <= OPS_USED, (part, ops - OPS_USED)
        assert "BatchNormalization" not in ops and "Identity" not in ops and "Constant" not in ops
        if supported is not None:
            assert ops <= supported, f"{part}: not supported by onnx-tensorrt 10: {sorted(ops - supported)}"
        if part == "mfn":
            assert "ScatterND" in ops and not any(n.attribute for n in model.graph.node if n.op_type == "ScatterND")
    if supported is None:
        pytest.skip(f"{OPERATORS_MD} absent: TensorRT operator list not checked")


def test_operator_table_parses():
    if not OPERATORS_MD.is_file():
        pytest.skip(f"{OPERATORS_MD} absent")
    ops = parse_supported_operators(OPERATORS_MD)
    assert {"Conv", "ScatterND", "ReduceMax", "MatMul"} <= ops
    assert "AffineGrid" not in ops and "Bernoulli" not in ops  # marked N in the table


def test_constants_are_folded(exported):
    """onnx-graphsurgeon's constant folding finds nothing left to fold (the canvas zeros stay a
    ConstantOfShape rather than a 50 MB initializer)."""
    gs = pytest.importorskip("onnx_graphsurgeon")
    for part, path in exported["fp32"].items():
        model = onnx.load(str(path))
        graph = gs.import_onnx(model)
        before = len(graph.nodes)
        graph.fold_constants(size_threshold=1 << 20).cleanup()
        assert len(graph.nodes) == before, part


def test_metadata(exported, kitti_config):
    model = exported["model"]
    for precision in ("fp32", "fp16"):
        for part, path in exported[precision].items():
            meta = read_graph_metadata(path)
            assert (meta.part, meta.precision, meta.version) == (part, precision, __version__)
            assert meta.config == kitti_config and meta.config_hash == kitti_config.hash()
            assert meta.config_json == kitti_config.to_json()
            assert meta.weights_sha256 == state_dict_sha256(model.state_dict())
            assert meta.checkpoint_sha256_of == "state_dict" and meta.checkpoint_sha256 == meta.weights_sha256


def test_checkpoint_hash_is_the_file_hash(tmp_path, example_config):
    import hashlib

    ckpt = tmp_path / "weights.bin"
    ckpt.write_bytes(b"any checkpoint bytes")
    paths = export_onnx(build_model(example_config), example_config, tmp_path / "out", checkpoint_path=ckpt)
    meta = read_graph_metadata(paths["pfn"])
    assert meta.checkpoint_sha256_of == "file"
    assert meta.checkpoint_sha256 == hashlib.sha256(b"any checkpoint bytes").hexdigest()


def test_state_dict_hash_ignores_integer_buffers_and_sees_weights(kitti_config):
    sd = randomized_model(kitti_config).state_dict()
    h = state_dict_sha256(sd)
    no_counters = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert state_dict_sha256(no_counters) == h
    changed = dict(sd)
    changed["rpn.conv_box.bias"] = sd["rpn.conv_box.bias"] + 1e-6
    assert state_dict_sha256(changed) != h


def test_fold_pfn_matches_module(kitti_config):
    model = randomized_model(kitti_config, seed=1)
    w, b = fold_pfn(model.pfn)
    x = torch.randn(50, 7, kitti_config.voxel.num_decorated_features) * 20
    with torch.no_grad():
        ref = model.pfn.norm(model.pfn.linear(x).transpose(1, 2)).transpose(1, 2)
    np.testing.assert_allclose(x.numpy() @ w + b, ref.numpy(), rtol=1e-5, atol=1e-4)


def test_fold_rpn_matches_module(example_config):
    model = randomized_model(example_config, seed=2)
    folded = fold_rpn(model.rpn)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    canvas = torch.rand(1, example_config.network.pfn_channels, 32, 48)
    with torch.no_grad():
        for a, b in zip(model.rpn(canvas), folded(canvas)):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


def test_fp16_graphs_are_half_the_size(exported):
    for part in ("rpn", "full"):
        ratio = exported["fp16"][part].stat().st_size / exported["fp32"][part].stat().st_size
        assert 0.45 < ratio < 0.6, (part, ratio)


def test_read_metadata_errors(tmp_path):
    from pointpillars_trt.errors import EngineError

    with pytest.raises(EngineError, match="not found"):
        read_graph_metadata(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not onnx at all")
    with pytest.raises(EngineError):
        read_graph_metadata(tmp_path / "junk.onnx")
    g = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
                               [onnx.helper.make_tensor_value_info("x", FLOAT, [1])], [onnx.helper.make_tensor_value_info("y", FLOAT, [1])])
    onnx.save(onnx.helper.make_model(g), tmp_path / "foreign.onnx")
    with pytest.raises(EngineError, match="lacks the pointpillars_trt metadata"):
        read_graph_metadata(tmp_path / "foreign.onnx")
