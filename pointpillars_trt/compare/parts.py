"""Errors of the exported graphs part by part (PFN, MFN, RPN) against the PyTorch model.

The parts and their tensor names are the contract's (:mod:`pointpillars_trt.contract`). Each
part can be measured on the reference's own inputs (:func:`part_errors`, so errors do not
accumulate) or chained, pillars in and heads out (:func:`head_errors`).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..contract import PART_OUTPUTS
from .arrays import ErrorStats, array_errors, named_errors

HEADS = PART_OUTPUTS["rpn"]  # ("cls", "box", "dir")


def torch_parts(model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Reference intermediates of a :class:`~pointpillars_trt.model.PointPillars` on backend feeds.

    Args:
        model: the PyTorch model (eval mode, CPU).
        feeds: ``features [P, M, F]`` float32, ``num_points [P]`` int32, ``coords [P, 2]`` int32 (x, y cell).

    Returns:
        float32 arrays ``pillar_features [P, C]``, ``canvas [1, C, ny, nx]`` and the heads ``cls``,
        ``box``, ``dir`` ``[1, A*K | A*7 | A*D, ny, nx]``.
    """
    import torch

    with torch.inference_mode():
        pf = model.pfn(torch.from_numpy(np.asarray(feeds["features"], np.float32)), torch.from_numpy(np.asarray(feeds["num_points"])))
        canvas = model.mfn(pf, torch.from_numpy(np.asarray(feeds["coords"])))
        cls, box, dirs = model.rpn(canvas)
    return {"pillar_features": pf.numpy(), "canvas": canvas.numpy(), "cls": cls.numpy(), "box": box.numpy(), "dir": dirs.numpy()}


def part_errors(ref: Mapping[str, np.ndarray], backend: Any, feeds: Mapping[str, np.ndarray], rpn: bool = True) -> dict[str, ErrorStats]:
    """Each split graph of an :class:`~pointpillars_trt.network.onnxruntime.OnnxRuntimeBackend`
    on the reference's own inputs (cast to the graph's float type).

    Args:
        ref: :func:`torch_parts` of ``feeds``.
        backend: a split (not fused) backend with ``activate()``, ``precision`` and ``run_part(part, feeds)``.
        feeds: the backend feeds ``ref`` was computed from.
        rpn: also run the RPN graph (the slowest part) on the reference canvas.

    Returns:
        ErrorStats keyed ``pfn``, ``mfn`` and, when ``rpn``, ``rpn.cls``, ``rpn.box``, ``rpn.dir``.
    """
    backend.activate()
    ft = np.float16 if backend.precision == "fp16" else np.float32
    out: dict[str, ErrorStats] = {}
    pf = backend.run_part("pfn", {"features": np.asarray(feeds["features"]).astype(ft), "num_points": feeds["num_points"]})
    out["pfn"] = array_errors(ref["pillar_features"], pf["pillar_features"])
    canvas = backend.run_part("mfn", {"pillar_features": ref["pillar_features"].astype(ft), "coords": feeds["coords"]})
    out["mfn"] = array_errors(ref["canvas"], canvas["canvas"])
    if rpn:
        out.update(named_errors(ref, backend.run_part("rpn", {"canvas": ref["canvas"].astype(ft)}), HEADS, "rpn."))
    return out


def head_errors(ref: Mapping[str, np.ndarray], heads: Mapping[str, np.ndarray]) -> dict[str, ErrorStats]:
    """Chained head outputs (``cls``, ``box``, ``dir`` of PFN -> MFN -> RPN run in one backend)
    against the reference's; keys ``chain.cls``, ``chain.box``, ``chain.dir``."""
    return named_errors(ref, heads, HEADS, "chain.")
