"""Measuring exported graphs against the PyTorch model: array errors, detection agreement, and the
inputs and weights the measurements use (``tools/parity.py`` and the tests are built on these).

* :func:`compare_arrays` -> :class:`ErrorStats` (max absolute and relative error);
* :func:`part_errors`: each graph on the reference's own inputs (PFN, MFN, RPN isolated);
* :func:`compare_detections` (exact agreement, for FP32) and :func:`match_detections` (boxes
  matched by BEV IoU, for FP16);
* :func:`synthetic_pillars`: decorated pillars of any count (1 .. the config's max);
* :func:`parity_state_dict`: random weights whose outputs are not degenerate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import torch

from ..config import PointPillarsConfig
from ..model import PointPillars, build_model
from ..compare.detections import BoxMatch, DetectionDiff, compare_detections, match_detections  # noqa: F401  (re-exported)


# ---- arrays ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorStats:
    """``max_abs`` = max |got - ref|; ``max_rel`` = max |got - ref| / max(|ref|, 1e-3 * max|ref|)
    (elements far below the tensor's scale are measured against 1/1000 of it, so zeros in the
    reference do not make the ratio meaningless); ``ref_max`` = max |ref|; ``count`` elements."""

    max_abs: float
    max_rel: float
    ref_max: float
    count: int

    def merge(self, other: "ErrorStats") -> "ErrorStats":
        return ErrorStats(max(self.max_abs, other.max_abs), max(self.max_rel, other.max_rel),
                          max(self.ref_max, other.ref_max), self.count + other.count)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_arrays(ref: np.ndarray, got: np.ndarray) -> ErrorStats:
    """:class:`ErrorStats` of ``got`` against ``ref`` (same shape; compared in float64)."""
    r = np.asarray(ref, dtype=np.float64)
    g = np.asarray(got, dtype=np.float64)
    if r.shape != g.shape:
        raise ValueError(f"shapes differ: reference {r.shape}, got {g.shape}")
    if r.size == 0:
        return ErrorStats(0.0, 0.0, 0.0, 0)
    diff = np.abs(g - r)
    scale = float(np.abs(r).max())
    floor = max(1e-3 * scale, 1e-30)
    return ErrorStats(float(diff.max()), float((diff / np.maximum(np.abs(r), floor)).max()), scale, int(r.size))


def merge_stats(stats: Mapping[str, ErrorStats], into: dict[str, ErrorStats]) -> dict[str, ErrorStats]:
    """Fold per-frame stats into running maxima (``into`` is updated and returned)."""
    for k, s in stats.items():
        into[k] = into[k].merge(s) if k in into else s
    return into


# ---- per part -------------------------------------------------------------------------------
def torch_parts(model: PointPillars, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Reference intermediates: ``pillar_features``, ``canvas``, ``cls``, ``box``, ``dir`` (float32)."""
    with torch.inference_mode():
        pf = model.pfn(torch.from_numpy(np.asarray(feeds["features"], np.float32)), torch.from_numpy(np.asarray(feeds["num_points"])))
        canvas = model.mfn(pf, torch.from_numpy(np.asarray(feeds["coords"])))
        cls, box, dirs = model.rpn(canvas)
    return {"pillar_features": pf.numpy(), "canvas": canvas.numpy(), "cls": cls.numpy(), "box": box.numpy(), "dir": dirs.numpy()}


def part_errors(ref: Mapping[str, np.ndarray], backend: Any, feeds: Mapping[str, np.ndarray], rpn: bool = True) -> dict[str, ErrorStats]:
    """Each split graph of an :class:`~pointpillars_trt.network.onnxruntime.OnnxRuntimeBackend`
    on the reference's own inputs (cast to the graph's float type), against ``ref`` from
    :func:`torch_parts`. Keys: ``pfn``, ``mfn`` and (when ``rpn``) ``rpn.cls``, ``rpn.box``, ``rpn.dir``."""
    backend.activate()
    ft = np.float16 if backend.precision == "fp16" else np.float32
    out: dict[str, ErrorStats] = {}
    pf = backend.run_part("pfn", {"features": np.asarray(feeds["features"]).astype(ft), "num_points": feeds["num_points"]})
    out["pfn"] = compare_arrays(ref["pillar_features"], pf["pillar_features"])
    canvas = backend.run_part("mfn", {"pillar_features": ref["pillar_features"].astype(ft), "coords": feeds["coords"]})
    out["mfn"] = compare_arrays(ref["canvas"], canvas["canvas"])
    if rpn:
        heads = backend.run_part("rpn", {"canvas": ref["canvas"].astype(ft)})
        for k in ("cls", "box", "dir"):
            out[f"rpn.{k}"] = compare_arrays(ref[k], heads[k])
    return out


def head_errors(ref: Mapping[str, np.ndarray], heads: Mapping[str, np.ndarray]) -> dict[str, ErrorStats]:
    """Chained outputs (PFN -> MFN -> RPN in the backend) against the reference: ``chain.cls`` ..."""
    return {f"chain.{k}": compare_arrays(ref[k], heads[k]) for k in ("cls", "box", "dir")}


# ---- detections -----------------------------------------------------------------------------
def uncapped_threshold(postprocess: Any, heads: Mapping[str, np.ndarray]) -> float | None:
    """A score threshold under which the reference keeps fewer boxes than ``nms_post_max``.

    When the cap is reached (synthetic pillar sets fill the whole grid), which box comes last
    depends on scores equal to float precision; comparing at a higher threshold avoids that.
    Returns ``None`` when the config's threshold already stays under the cap."""
    det = postprocess(heads["cls"], heads["box"], heads["dir"])
    if len(det.scores) < postprocess.cfg.postprocess.nms_post_max:
        return None
    return threshold_in_gap(det.scores)


def threshold_in_gap(scores: np.ndarray) -> float:
    """A threshold halfway across the widest gap between neighbouring scores in the middle half of
    ``scores`` (sorted best first), so that no score lies within float error of it."""
    n = len(scores)
    s = np.asarray(scores, np.float64)[n // 4: max(3 * n // 4, n // 4 + 2)]
    gaps = s[:-1] - s[1:]
    k = int(np.argmax(gaps))
    return float((s[k] + s[k + 1]) / 2)


# ---- inputs and weights ---------------------------------------------------------------------
def synthetic_pillars(cfg: PointPillarsConfig, num_pillars: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Backend inputs with exactly ``num_pillars`` pillars in distinct random cells; each holds
    1..M points uniform in its cell (z across the range), decorated as the voxelizer does."""
    from ..voxelize import decorate_pillars

    v = cfg.voxel
    nx, ny, _ = v.grid_size
    m = v.max_points_per_pillar
    rng = np.random.default_rng(seed)
    cells = rng.choice(nx * ny, size=num_pillars, replace=False)
    coords = np.stack([cells % nx, cells // nx], axis=1).astype(np.int32)
    num_points = rng.integers(1, m + 1, size=num_pillars).astype(np.int32)
    lo = np.array(v.point_cloud_range[:3], np.float32)
    size = np.array(v.voxel_size, np.float32)
    u = rng.uniform(0.0, 1.0, size=(num_pillars, m, 4)).astype(np.float32)
    raw = np.zeros((num_pillars, m, 4), np.float32)
    raw[..., 0] = lo[0] + (coords[:, None, 0] + u[..., 0]) * size[0]
    raw[..., 1] = lo[1] + (coords[:, None, 1] + u[..., 1]) * size[1]
    raw[..., 2] = lo[2] + u[..., 2] * size[2]
    raw[..., 3] = u[..., 3]
    raw[np.arange(m)[None, :] >= num_points[:, None]] = 0.0
    features = np.zeros((num_pillars, m, v.num_decorated_features), np.float32)
    decorate_pillars(raw, num_points, coords, lo, size, features)
    return {"features": features, "num_points": num_points, "coords": coords}


def parity_state_dict(cfg: PointPillarsConfig, seed: int = 0, calibration: Mapping[str, np.ndarray] | None = None,
                      target_candidates: int = 200, box_residual_std: float = 0.15) -> dict[str, torch.Tensor]:
    """Random native weights (:func:`~pointpillars_trt.checkpoint.random_native_state_dict`) whose
    class-logit biases are shifted so that about ``target_candidates`` anchors pass the config's
    score threshold on ``calibration`` pillars (default: 2000 synthetic pillars), and whose box
    head is scaled so that its residuals have standard deviation ``box_residual_std`` there, as a
    trained head's do. Random weights otherwise put every anchor or none above the threshold and
    decode boxes hundreds of metres long, which tests nothing downstream."""
    from ..checkpoint import random_native_state_dict

    sd = random_native_state_dict(cfg, seed)
    model = build_model(cfg)
    model.load_state_dict(sd)
    feeds = calibration if calibration is not None else synthetic_pillars(cfg, min(2000, cfg.voxel.max_pillars), seed)
    with torch.inference_mode():
        cls, box, _ = model.rpn(model.mfn(model.pfn(torch.from_numpy(feeds["features"]), torch.from_numpy(feeds["num_points"])),
                                          torch.from_numpy(feeds["coords"])))
    logits = np.sort(cls.numpy().ravel())[::-1]
    k = min(max(target_candidates, 1), logits.size) - 1
    thr = cfg.postprocess.score_threshold
    shift = math.log(thr / (1.0 - thr)) - float(logits[k]) + 1e-3
    # box residuals of a trained head are O(0.1); random ones of O(1) give sizes of exp(residual)
    scale = box_residual_std / max(float(box.numpy().std()), 1e-12)
    sd = dict(sd)
    sd["rpn.conv_cls.bias"] = sd["rpn.conv_cls.bias"] + shift
    sd["rpn.conv_box.weight"] = sd["rpn.conv_box.weight"] * scale
    sd["rpn.conv_box.bias"] = sd["rpn.conv_box.bias"] * scale
    return sd
