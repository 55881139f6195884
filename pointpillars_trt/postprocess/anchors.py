"""Anchor generation from the config, in the checkpoint source's box layout."""

from __future__ import annotations

import numpy as np

from ..config import PointPillarsConfig


def anchor_positions(lo: float, hi: float, n: int, align_center: bool) -> np.ndarray:
    """``n`` anchor coordinates on ``[lo, hi]``, float32.

    ``align_center=False`` (OpenPCDet): ``lo + i * (hi - lo) / (n - 1)``, both ends included.
    ``align_center=True`` (mmdet3d, zhulf0804): cell centres ``lo + (i + 0.5) * (hi - lo) / n``.
    """
    i = np.arange(n, dtype=np.float32)
    if align_center:
        step = np.float32((hi - lo) / n)
        return (np.float32(lo) + (i + np.float32(0.5)) * step).astype(np.float32)
    step = np.float32((hi - lo) / max(n - 1, 1))
    return (np.float32(lo) + i * step).astype(np.float32)


def generate_anchors(cfg: PointPillarsConfig) -> np.ndarray:
    """Anchors ``[ny, nx, A, 7]`` float32, ``A`` ordered class-major, then size, then rotation.

    Each anchor is ``(x, y, z_centre, s0, s1, s2, rot)``. With ``head.box_layout == "lwh_ccw"``
    sizes are the config's ``(l, w, h)``; with ``"wlh_cw"`` they are ``(w, l, h)`` as that
    layout's networks were trained with, and rotations are used as written.
    ``z_centre = bottom_height + h / 2`` in every layout.
    """
    nx, ny = cfg.feature_map_size
    r = cfg.voxel.point_cloud_range
    xs = anchor_positions(r[0], r[3], nx, cfg.head.anchor_align_center)
    ys = anchor_positions(r[1], r[4], ny, cfg.head.anchor_align_center)
    per_loc = []
    for a in cfg.anchors:
        for size in a.sizes:
            l, w, h = size
            dims = (w, l, h) if cfg.head.box_layout == "wlh_cw" else (l, w, h)
            for rot in a.rotations:
                per_loc.append((a.bottom_height + h / 2.0, *dims, rot))
    per_loc_arr = np.asarray(per_loc, dtype=np.float32)  # [A, 5]
    A = per_loc_arr.shape[0]
    out = np.empty((ny, nx, A, 7), dtype=np.float32)
    out[..., 0] = xs[None, :, None]
    out[..., 1] = ys[:, None, None]
    out[..., 2:] = per_loc_arr[None, None]
    return out
