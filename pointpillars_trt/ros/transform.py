"""A static rigid transform of the cloud into the detector's frame.

Given as 6 numbers ``x y z roll pitch yaw`` (metres, radians; ROS's fixed-axis RPY:
``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``, as ``tf2``/``static_transform_publisher``) or as 16 numbers,
a row-major 4x4 homogeneous matrix. The matrix maps points of the cloud's frame into the
detector frame: ``p_det = R @ p_cloud + t``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` as ``float64 [3, 3]``."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def parse_transform(values: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    """6 (``x y z roll pitch yaw``) or 16 (row-major 4x4) numbers -> ``float64 [4, 4]``; None/empty -> None.

    Raises:
        ConfigError: another count, non-finite values, a last row other than ``0 0 0 1``, or a
            rotation block that is not orthonormal with determinant +1 (within 1e-4).
    """
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        return None
    if not np.isfinite(arr).all():
        raise ConfigError(f"transform holds non-finite values: {arr.tolist()}")
    if arr.size == 6:
        m = np.eye(4)
        m[:3, :3] = rpy_matrix(*arr[3:6])
        m[:3, 3] = arr[:3]
        return m
    if arr.size != 16:
        raise ConfigError(
            f"transform needs 6 numbers (x y z roll pitch yaw) or 16 (a row-major 4x4 matrix), got {arr.size}"
        )
    m = arr.reshape(4, 4)
    if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-9):
        raise ConfigError(f"transform matrix: last row must be 0 0 0 1, got {m[3].tolist()}")
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
        raise ConfigError(f"transform matrix: the 3x3 block is not a rotation: {r.tolist()}")
    return m.copy()


def apply_transform(points: np.ndarray, matrix: np.ndarray | None, out: np.ndarray | None = None) -> np.ndarray:
    """``float32 [N, 4]`` points with ``xyz`` mapped by ``matrix`` (``[4, 4]``, in float64);
    intensity kept. ``out``: where to write them (``points`` itself is allowed); None: a copy."""
    if matrix is None:
        return points
    xyz = points[:, :3].astype(np.float64)
    if out is None:
        out = points.copy()
    elif out is not points:
        out[:, 3] = points[:, 3]
    out[:, :3] = xyz @ matrix[:3, :3].T + matrix[:3, 3]
    return out
