"""exporter/qdq_rewrites.py on small graphs run by real ONNX Runtime sessions: each rewrite keeps the values."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from pointpillars_trt.exporter.qdq_rewrites import integer_depth_to_space  # noqa: E402


def test_integer_depth_to_space_gives_the_same_values():
    s, z = numpy_helper.from_array(np.float32(0.05), "s"), numpy_helper.from_array(np.int8(0), "z")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]), helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DepthToSpace", ["xd"], ["d"], blocksize=2, mode="DCR"), helper.make_node("Relu", ["d"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"]), helper.make_node("DequantizeLinear", ["rq", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 3, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 10])], [s, z])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = {"x": np.random.default_rng(0).normal(size=(1, 8, 3, 5)).astype(np.float32)}
    before = ort.InferenceSession(model.SerializeToString()).run(None, x)[0]
    moved = integer_depth_to_space(model)
    assert [n.op_type for n in moved.graph.node] == ["QuantizeLinear", "DequantizeLinear", "Relu", "QuantizeLinear", "DepthToSpace",
                                                     "DequantizeLinear"]
    onnx.checker.check_model(moved)
    np.testing.assert_array_equal(ort.InferenceSession(moved.SerializeToString()).run(None, x)[0], before)
