"""The INT8 engine build from explicit Q/DQ graphs, through the FAKE tensorrt module (API shape only:
TensorRT cannot be installed here): a strongly typed network, no precision flag, and the graph's
quantization record carried into the plan's sidecar."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointpillars_trt.artifacts import Quantization, graph_sha256
from pointpillars_trt.errors import EngineError
from pointpillars_trt.tensorrt.build import BuildOptions, build_engine, check_graphs_consistent
from pointpillars_trt.tensorrt.contract import read_onnx_info
from tests.tensorrt.test_api_surface import fake_trt  # noqa: F401  (fixture)
from tests.tensorrt.test_engine_file import make_artifact

onnx = pytest.importorskip("onnx")

QUANT = Quantization(method="percentile", percentile=99.99, calibration="test frames", frames=("000001", "000002"),
                     keep_float=(), tool="onnxruntime.quantization test")


def qdq_graph(path, cfg, part="pfn"):
    """A PFN-shaped graph with the contract's I/O names: ``features`` -> Q -> DQ -> MatMul (int8
    weights through a per-channel DQ) -> ReduceMax -> ``pillar_features``; our metadata says int8."""
    from onnx import TensorProto, helper, numpy_helper

    c = 4
    ins = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["num_pillars", 32, 10]),
           helper.make_tensor_value_info("num_points", TensorProto.INT32, ["num_pillars"])]
    out = helper.make_tensor_value_info("pillar_features", TensorProto.FLOAT, ["num_pillars", c])
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.ones((10, c), np.int8), "w_q"), numpy_helper.from_array(np.full(c, 0.01, np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(c, np.int8), "w_z")]
    nodes = [helper.make_node("QuantizeLinear", ["features", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=1),
             helper.make_node("MatMul", ["dq", "w"], ["y"], name="pfn/MatMul_1"),
             helper.make_node("ReduceMax", ["y"], ["pillar_features"], axes=[1], keepdims=0)]
    model = helper.make_model(helper.make_graph(nodes, part, ins, [out], inits), opset_imports=[helper.make_opsetid("", 17)])
    meta = make_artifact(cfg, part, "int8", graph_sha256=graph_sha256(model), quantization=QUANT)
    helper.set_model_props(model, meta.to_props())
    onnx.save(model, str(path))
    return path


def test_int8_graphs_build_strongly_typed_without_a_precision_flag(tmp_path, kitti_config, fake_trt):  # noqa: F811
    info = read_onnx_info(qdq_graph(tmp_path / "pfn.onnx", kitti_config), "pfn")
    assert info.meta.precision == "int8" and info.meta.quantization == QUANT
    header = build_engine(info, tmp_path / "pfn.plan", BuildOptions(precision="int8", max_pillars=100), "NVIDIA H100", (9, 0))
    created = [args for m, args in fake_trt.CALLS if m == "Builder.create_network"]
    assert created == [(1 << int(fake_trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED),)]
    flags = [str(args[0]) for m, args in fake_trt.CALLS if m == "BuilderConfig.set_flag"]
    assert not [f for f in flags if "INT8" in f or "FP16" in f], flags  # Q/DQ nodes set the precision, no flag
    assert header.artifact.precision == "int8"
    sidecar = json.dumps(json.loads((tmp_path / "pfn.plan.json").read_text()))
    assert '"int8"' in sidecar and '"quantization"' in sidecar and "000002" in sidecar


def test_a_float_build_of_int8_graphs_is_refused_with_the_export_command(tmp_path, kitti_config):
    info = read_onnx_info(qdq_graph(tmp_path / "pfn.onnx", kitti_config), "pfn")
    with pytest.raises(EngineError, match="int8 graph but --precision fp16"):
        check_graphs_consistent([info], "fp16")
    fp32 = read_onnx_info(_float_graph(tmp_path, kitti_config), "pfn")
    with pytest.raises(EngineError, match="--int8 --activation-type int8 --calib DIR"):
        check_graphs_consistent([fp32], "int8")


def _float_graph(tmp_path, cfg):
    from tests.tensorrt.test_build_engines import tiny_graph

    return tiny_graph(tmp_path / "pfn_fp32.onnx", cfg, "pfn", "fp32")
