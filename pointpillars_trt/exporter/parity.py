"""The inputs and weights that parity measurements run on (``tools/parity.py`` and the tests):

* :func:`synthetic_pillars`: decorated pillars of any count (1 .. the config's max);
* :func:`parity_state_dict`: random weights whose outputs are not degenerate.

The measurements themselves (array errors, per-part errors, box matching) are in
:mod:`pointpillars_trt.compare`.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch

from ..config import PointPillarsConfig
from ..model import build_model


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
