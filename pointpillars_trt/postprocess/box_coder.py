"""Residual box coding (SECOND / OpenPCDet ``ResidualCoder``, mmdet3d ``DeltaXYZWLHRBBoxCoder``)."""

from __future__ import annotations

import numpy as np


def decode_boxes(deltas: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Residuals ``[N, 7]`` + anchors ``[N, 7]`` -> boxes ``[N, 7]`` (same layout as the anchors).

    ``x = dx * d + xa`` with ``d = sqrt(s0^2 + s1^2)``; ``z = dz * ha + za``;
    ``s = exp(ds) * sa``; ``rot = drot + rota``.
    """
    xa, ya, za, la, wa, ha, ra = np.moveaxis(anchors.astype(np.float32), -1, 0)
    xt, yt, zt, lt, wt, ht, rt = np.moveaxis(deltas.astype(np.float32), -1, 0)
    diag = np.sqrt(la * la + wa * wa)
    return np.stack(
        [xt * diag + xa, yt * diag + ya, zt * ha + za, np.exp(lt) * la, np.exp(wt) * wa, np.exp(ht) * ha, rt + ra],
        axis=-1,
    ).astype(np.float32)


def encode_boxes(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Inverse of :func:`decode_boxes` (used for training targets)."""
    xa, ya, za, la, wa, ha, ra = np.moveaxis(anchors.astype(np.float32), -1, 0)
    xg, yg, zg, lg, wg, hg, rg = np.moveaxis(boxes.astype(np.float32), -1, 0)
    diag = np.sqrt(la * la + wa * wa)
    return np.stack(
        [(xg - xa) / diag, (yg - ya) / diag, (zg - za) / ha, np.log(lg / la), np.log(wg / wa), np.log(hg / ha), rg - ra],
        axis=-1,
    ).astype(np.float32)


def limit_period(val: np.ndarray, offset: float = 0.5, period: float = np.pi) -> np.ndarray:
    """Map ``val`` into ``[-offset * period, (1 - offset) * period)``."""
    return val - np.floor(val / period + offset) * period


def apply_direction(yaw: np.ndarray, dir_labels: np.ndarray, offset: float, limit_offset: float, num_bins: int) -> np.ndarray:
    """Direction-classifier correction (OpenPCDet / mmdet3d):
    ``limit_period(yaw - offset, limit_offset, 2 pi / bins) + offset + 2 pi / bins * label``."""
    period = np.float32(2.0 * np.pi / num_bins)
    rot = limit_period(yaw - np.float32(offset), limit_offset, period)
    return (rot + np.float32(offset) + period * dir_labels.astype(np.float32)).astype(np.float32)


PI_F32 = np.float32(np.pi)
TWO_PI_F32 = np.float32(2.0 * np.pi)


def canonical_yaw(yaw: np.ndarray) -> np.ndarray:
    """Yaw ``[N]`` -> float32 in ``[-pi, pi)`` (pi as float32), every step in float32 exactly as
    ``kernels/postprocess.cu`` (``canonical_yaw``): ``y - floor(y / 2pi + 1/2) * 2pi``, then one
    ``2pi`` step back into range where rounding left the result on the wrong side."""
    y = np.asarray(yaw, dtype=np.float32)
    out = (y - np.floor(y / TWO_PI_F32 + np.float32(0.5)) * TWO_PI_F32).astype(np.float32)
    out = np.where(out >= PI_F32, out - TWO_PI_F32, out).astype(np.float32)
    return np.where(out < -PI_F32, out + TWO_PI_F32, out).astype(np.float32)


def to_canonical(boxes: np.ndarray, layout: str) -> np.ndarray:
    """Boxes in a head's ``layout`` -> canonical ``(x, y, z, l, w, h, yaw CCW)``.

    ``wlh_cw`` (mmdet3d v0.x, zhulf0804): ``(w, l, h, r)`` with the camera-style yaw ``r``
    describes the same box as ``(l, w, h, -r - pi / 2)``.
    """
    if layout == "lwh_ccw":
        return boxes
    out = boxes.copy()
    out[:, 3] = boxes[:, 4]
    out[:, 4] = boxes[:, 3]
    out[:, 6] = -boxes[:, 6] - np.float32(np.pi / 2)
    return out
