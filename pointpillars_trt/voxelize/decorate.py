"""Point decoration: raw pillar points -> the PFN's 10-channel input (OpenPCDet's PillarVFE)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def decorate_pillars(raw, num_points, coords, pc_min, voxel_size, out):
    """Fill ``out [P, M, 10]`` from ``raw [P, M, 4]`` points (valid slots ``< num_points``).

    Channels: x, y, z, r; xyz minus the mean of the pillar's valid points; x, y, z minus the
    pillar centre ``(ix + 0.5) * vx + x_min``, ``(iy + 0.5) * vy + y_min``, ``z_min + vz / 2``.
    Invalid slots are zero. All arithmetic in float32, as OpenPCDet does on the GPU.
    """
    P = num_points.shape[0]
    M = raw.shape[1]
    half = np.float32(0.5)
    cz = np.float32(pc_min[2] + voxel_size[2] * half)
    for p in range(P):
        n = num_points[p]
        sx = np.float32(0.0)
        sy = np.float32(0.0)
        sz = np.float32(0.0)
        for j in range(n):
            sx += raw[p, j, 0]
            sy += raw[p, j, 1]
            sz += raw[p, j, 2]
        fn = np.float32(n)
        mx = sx / fn
        my = sy / fn
        mz = sz / fn
        cx = np.float32(coords[p, 0]) * voxel_size[0] + voxel_size[0] * half + pc_min[0]
        cy = np.float32(coords[p, 1]) * voxel_size[1] + voxel_size[1] * half + pc_min[1]
        for j in range(M):
            if j < n:
                x = raw[p, j, 0]
                y = raw[p, j, 1]
                z = raw[p, j, 2]
                out[p, j, 0] = x
                out[p, j, 1] = y
                out[p, j, 2] = z
                out[p, j, 3] = raw[p, j, 3]
                out[p, j, 4] = x - mx
                out[p, j, 5] = y - my
                out[p, j, 6] = z - mz
                out[p, j, 7] = x - cx
                out[p, j, 8] = y - cy
                out[p, j, 9] = z - cz
            else:
                for c in range(10):
                    out[p, j, c] = np.float32(0.0)
