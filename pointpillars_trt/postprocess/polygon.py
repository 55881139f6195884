"""Convex-polygon geometry shared by NMS and the KITTI evaluation (numba)."""

from __future__ import annotations

import math

import numba


@numba.njit(cache=True)
def rect_corners(cx, cy, dx, dy, heading, out):
    """Corners of a rectangle centred at ``(cx, cy)`` with sides ``dx`` (along ``heading``) and
    ``dy``, rotated counter-clockwise by ``heading``, written counter-clockwise into ``out [4, 2]``."""
    c = math.cos(heading)
    s = math.sin(heading)
    hx = 0.5 * dx
    hy = 0.5 * dy
    for k in range(4):
        lx = hx if (k == 0 or k == 3) else -hx
        ly = hy if k < 2 else -hy
        out[k, 0] = cx + lx * c - ly * s
        out[k, 1] = cy + lx * s + ly * c


@numba.njit(cache=True)
def convex_intersection_area(a, b, buf_a, buf_b):
    """Area of the intersection of two counter-clockwise quadrilaterals ``a``, ``b`` [4, 2]
    (Sutherland-Hodgman clipping of ``a`` by each edge of ``b``; ``buf_*`` are [16, 2] scratch)."""
    n = 4
    for k in range(4):
        buf_a[k, 0] = a[k, 0]
        buf_a[k, 1] = a[k, 1]
    src = buf_a
    dst = buf_b
    for e in range(4):
        ex = b[e, 0]
        ey = b[e, 1]
        ux = b[(e + 1) % 4, 0] - ex
        uy = b[(e + 1) % 4, 1] - ey
        m = 0
        for k in range(n):
            px = src[k, 0]
            py = src[k, 1]
            qx = src[(k + 1) % n, 0]
            qy = src[(k + 1) % n, 1]
            dp = ux * (py - ey) - uy * (px - ex)  # >= 0: left of (inside) the edge
            dq = ux * (qy - ey) - uy * (qx - ex)
            if dp >= 0.0:
                dst[m, 0] = px
                dst[m, 1] = py
                m += 1
                if dq < 0.0:
                    t = dp / (dp - dq)
                    dst[m, 0] = px + t * (qx - px)
                    dst[m, 1] = py + t * (qy - py)
                    m += 1
            elif dq >= 0.0:
                t = dp / (dp - dq)
                dst[m, 0] = px + t * (qx - px)
                dst[m, 1] = py + t * (qy - py)
                m += 1
        n = m
        if n < 3:
            return 0.0
        tmp = src
        src = dst
        dst = tmp
    area = 0.0
    for k in range(n):
        area += src[k, 0] * src[(k + 1) % n, 1] - src[(k + 1) % n, 0] * src[k, 1]
    return max(0.5 * area, 0.0)
