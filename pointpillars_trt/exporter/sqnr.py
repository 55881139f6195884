"""Where an INT8 graph loses precision, without an AP run: the signal-to-quantization-noise ratio
(SQNR) of each quantized node's input and output in the Q/DQ graph against the float graph.

SQNR in dB is ``20 log10(|float| / |int8 - float|)`` over every value of every frame (ONNX
Runtime's ``qdq_loss_debug`` definition), accumulated frame by frame so that no more than one
frame's tensors are held. Both graphs run with Q/DQ simulated in float (ONNX Runtime, no graph
optimizations); their node names must match (the INT8 graphs are quantized from the exporter's own
float graphs, upsampling as Conv + DepthToSpace). A node whose output SQNR falls well below its
input's is where precision is lost (its weights or its input's quantization); a node whose input is
already low inherits the loss.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import onnx

from .quantize import plain_session, quantizable_nodes


def probes(model: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """``{node: (input tensor, output tensor)}`` of the quantizable (Conv / MatMul) nodes of ``model``."""
    by_name = {n.name: n for n in model.graph.node}
    return {name: (by_name[name].input[0], by_name[name].output[0]) for name in quantizable_nodes(model)}


def with_outputs(model: onnx.ModelProto, tensors: Iterable[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also returns ``tensors`` (float32; shapes left to ONNX Runtime)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {o.name for o in out.graph.output}
    out.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors if t not in present)
    return out


class Sqnr:
    """Per key, ``sum(float**2)`` and ``sum((int8 - float)**2)`` over the frames added; :meth:`db` the SQNR."""

    def __init__(self) -> None:
        self.signal: dict[str, float] = {}
        self.noise: dict[str, float] = {}

    def add(self, key: str, ref: np.ndarray, got: np.ndarray) -> None:
        ref, got = np.asarray(ref, np.float64).ravel(), np.asarray(got, np.float64).ravel()
        self.signal[key] = self.signal.get(key, 0.0) + float(ref @ ref)
        self.noise[key] = self.noise.get(key, 0.0) + float((got - ref) @ (got - ref))

    def db(self, key: str) -> float:
        eps = np.finfo(float).eps
        return round(20 * math.log10(max(math.sqrt(self.signal[key]), eps) / max(math.sqrt(self.noise[key]), eps)), 2)


def activation_sqnr(float_model: onnx.ModelProto, int8_model: onnx.ModelProto, feeds: Iterable[Mapping[str, np.ndarray]],
                    threads: int = 1) -> dict:
    """``{"nodes": {node: {"input_db": dB, "output_db": dB}}, "outputs": {output: dB}}``: the SQNR
    of each quantizable node's input and output, and of the graph outputs, of ``int8_model`` against
    ``float_model`` over ``feeds`` (input dicts, one per frame; ONNX Runtime with ``threads``).
    Nodes are paired by name, their tensors taken from each graph (ONNX Runtime's quantizer renames
    a Conv's output when it folds the ReLU after it: the Conv's own output, before the Q, is compared)."""
    ref_nodes, q_nodes = probes(float_model), probes(int8_model)
    nodes = [n for n in ref_nodes if n in q_nodes]
    outputs = [o.name for o in float_model.graph.output]

    def names(pairs: dict[str, tuple[str, str]]) -> list[str]:
        return outputs + sorted({t for n in nodes for t in pairs[n]} - set(outputs))

    ref_names, q_names = names(ref_nodes), names(q_nodes)
    ref_sess = plain_session(with_outputs(float_model, ref_names[len(outputs):]).SerializeToString(), threads)
    q_sess = plain_session(with_outputs(int8_model, q_names[len(outputs):]).SerializeToString(), threads)
    acc = Sqnr()
    for x in feeds:
        ref = dict(zip(ref_names, ref_sess.run(ref_names, dict(x))))
        got = dict(zip(q_names, q_sess.run(q_names, dict(x))))
        for o in outputs:
            acc.add(o, ref[o], got[o])
        for n in nodes:
            for side, r, g in zip(("in", "out"), ref_nodes[n], q_nodes[n]):
                acc.add(f"{n}:{side}", ref[r], got[g])
    return {"nodes": {n: {"input_db": acc.db(f"{n}:in"), "output_db": acc.db(f"{n}:out")} for n in nodes},
            "outputs": {o: acc.db(o) for o in outputs}}
