"""Rewrites of ONNX Runtime's Q/DQ graphs (:func:`tidy_qdq`) into the form its CPU runs in int8 throughout.

What ``quantize_static`` writes, profiled with ONNX Runtime's per-node profiler on the RPN
(docs/PERFORMANCE.md): a Quantize/Dequantize pair before the float heads that only rounded the
Concat, the upsampling DepthToSpace run in float, and (uint8) two convolutions left float because
their output had two Quantize nodes. Each rewrite keeps the values (or, for the float heads, drops
a rounding) and the Q/DQ on every int8 Conv's input and weights.
"""

from __future__ import annotations

import onnx

from ..artifacts import WEIGHTED_OPS


def tidy_qdq(model: onnx.ModelProto, float_nodes: set[str]) -> onnx.ModelProto:
    """:func:`float_readers`, :func:`one_quantize_per_tensor` and :func:`integer_depth_to_space` of
    ONNX Runtime's Q/DQ ``model`` (``float_nodes``: the nodes left float): the Q/DQ placement that
    ONNX Runtime's CPU runs with int8 kernels throughout (what each buys: docs/PERFORMANCE.md), still
    Q/DQ on the inputs and weights of every int8 Conv, as TensorRT's explicit quantization wants."""
    return integer_depth_to_space(one_quantize_per_tensor(float_readers(model, float_nodes)))


def one_quantize_per_tensor(model: onnx.ModelProto) -> onnx.ModelProto:
    """One QuantizeLinear per (Conv output, scale, zero point): ONNX Runtime's quantizer writes one
    ``Q -> DQ`` pair per reader (``DedicatedQDQPair``, so that each reader's ``DQ`` is its own), and
    where a Conv's output itself feeds two readers (uint8: the ReLU folded into the Q) the Conv
    then has two Qs and ONNX Runtime leaves it a float Conv. The DQs stay one per reader. Other
    tensors keep their pairs (int8: ONNX Runtime turns a ``Q -> DQ`` into uint8, the type of its x86
    int8 convolutions, only where the Q has one reader)."""
    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    drop = set()
    nodes = list(model.graph.node)  # held: the ids below are of these objects
    convs = {o for n in nodes if n.op_type in WEIGHTED_OPS for o in n.output}
    for q in (n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] in convs):
        key = (*q.input, tuple((a.name, onnx.helper.get_attribute_value(a)) for a in q.attribute))
        if key in first:
            rename[q.output[0]] = first[key]
            drop.add(id(q))
        else:
            first[key] = q.output[0]
    kept = [n for n in nodes if id(n) not in drop]
    for n in kept:
        n.input[:] = [rename.get(i, i) for i in n.input]
    return set_nodes(model, kept)


def set_nodes(model: onnx.ModelProto, nodes: list) -> onnx.ModelProto:
    """``model`` with ``nodes`` (its own node objects, held in a list, in the order to keep) as its graph's nodes."""
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def readers(model: onnx.ModelProto) -> dict[str, list]:
    """``{tensor: [nodes reading it]}`` of ``model``, in graph order."""
    out: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def float_readers(model: onnx.ModelProto, float_nodes: set[str]) -> onnx.ModelProto:
    """Drop each activation ``Q -> DQ...`` whose DQs are read only by ``float_nodes`` (nodes left in
    float, e.g. the float heads after the Concat): those nodes read the float tensor itself. The Q/DQ
    there only rounded the tensor to one int8 scale (the Concat's, over its three inputs of their own
    scales) and cost a quantize and a dequantize per reader, plus, in ONNX Runtime, one layout
    reorder per DQ copy instead of one for the tensor. Nothing int8 reads such a tensor, so
    TensorRT's explicit quantization loses no fusion."""
    consumers = readers(model)
    outputs = {o.name for o in model.graph.output}
    drop = set()
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        dqs = consumers.get(q.output[0], [])
        users = [r for d in dqs for r in consumers.get(d.output[0], [])]
        if (not dqs or any(d.op_type != "DequantizeLinear" or d.output[0] in outputs for d in dqs) or not users
                or any(r.name not in float_nodes for r in users)):
            continue
        for d in dqs:
            for r in consumers[d.output[0]]:
                r.input[:] = [q.input[0] if i == d.output[0] else i for i in r.input]
        drop |= {id(q), *map(id, dqs)}
    kept = [n for n in model.graph.node if id(n) not in drop]
    set_nodes(model, kept)
    used = {i for n in kept for i in n.input}
    unused = [t for t in model.graph.initializer if t.name not in used]
    for t in unused:
        model.graph.initializer.remove(t)
    return model


def integer_depth_to_space(model: onnx.ModelProto) -> onnx.ModelProto:
    """Each ``DQ -> DepthToSpace [-> Relu] -> Q`` (the upsampling layers as exported, each node read
    by the next alone) as ``DQ [-> Relu] -> Q -> DepthToSpace``, the Q's readers reading the
    DepthToSpace: the same values (DepthToSpace only moves them; the ReLU and a per-tensor Q act on
    each value alone), moved as int8, a quarter of the float bytes (ONNX Runtime's float
    DepthToSpace was about 8 % of the int8 RPN's time). The Conv before keeps its ``Q -> DQ`` pair
    (ONNX Runtime forms its int8 convolution from that pair only); TensorRT moves Q/DQ across
    shuffles itself."""
    consumers = readers(model)
    outputs = {o.name for o in model.graph.output}

    def only_reader(node):
        users = consumers.get(node.output[0], [])
        return users[0] if len(users) == 1 and node.output[0] not in outputs else None

    order = list(model.graph.node)
    for d2s in [n for n in order if n.op_type == "DepthToSpace"]:
        dq = next((n for n in order if d2s.input[0] in n.output), None)
        chain, nxt = [], only_reader(d2s)
        while nxt is not None and nxt.op_type == "Relu":
            chain.append(nxt)
            nxt = only_reader(nxt)
        if dq is None or dq.op_type != "DequantizeLinear" or only_reader(dq) is not d2s or nxt is None or nxt.op_type != "QuantizeLinear":
            continue
        q, first = nxt, (chain or [nxt])[0]
        first.input[0] = d2s.input[0]
        moved = f"{q.output[0]}_depth_to_space"
        for r in consumers.get(q.output[0], []):
            r.input[:] = [moved if i == q.output[0] else i for i in r.input]
        d2s.input[0], d2s.output[0] = q.output[0], moved
        order.remove(d2s)
        order.insert(order.index(q) + 1, d2s)
        stale = {n.output[0] for n in (*chain, q)}
        kept = [v for v in model.graph.value_info if v.name not in stale]
        del model.graph.value_info[:]
        model.graph.value_info.extend(kept)
    return set_nodes(model, order)
