"""The NMS mask kernel's polygon clip (``kernels/postprocess.cu``: ``clip_area``, ``separated``),
emulated step for step in Python floats (IEEE float64, no FMA, like the kernel compiled with
``--fmad=false``), against the CPU's ``polygon.convex_intersection_area`` to the bit.

The kernel keeps the clipped polygon in registers: fixed 5/6/7-vertex polygons after the first
three edges, writes as selects on the running count, vertex 0 repeated after the last one, the
fourth edge's vertices streamed into the shoelace sum; pairs that outgrow the fixed sizes take the
general clip. Its separating-axis reject must only drop pairs whose CPU intersection is exactly 0.0.
The GPU side of the same comparison (boxes as sets) is tests/postprocess/test_postprocess_cuda.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pointpillars_trt.postprocess.polygon import convex_intersection_area, rect_corners

GARBAGE = float("nan")  # slots never written (zeros in the kernel): NaN here shows any use of one


class Polygon:
    """``Polygon<NOUT>``: slots x/y[0..cap] (slot m repeats vertex 0 after ``close``), count m."""

    def __init__(self, cap):
        self.cap, self.m = cap, 0
        self.x, self.y = [GARBAGE] * (cap + 1), [GARBAGE] * (cap + 1)

    def emit(self, flag, vx, vy, bound):
        for j in range(self.cap):
            if j <= bound and flag and self.m == j:
                self.x[j], self.y[j] = vx(), vy()
        self.m += int(flag)

    def close(self):
        for j in range(1, self.cap + 1):
            if self.m == j:
                self.x[j], self.y[j] = self.x[0], self.y[0]


class ShoelaceSum:
    """``ShoelaceSum``: the emitted vertices' shoelace terms, in the CPU's order."""

    def __init__(self):
        self.area, self.fx, self.fy, self.lx, self.ly, self.m = 0.0, 0.0, 0.0, 0.0, 0.0, 0

    def emit(self, flag, vx, vy, bound):
        if flag:
            x, y = vx(), vy()
            if self.m > 0:
                self.area += self.lx * y - x * self.ly
            else:
                self.fx, self.fy = x, y
            self.lx, self.ly, self.m = x, y, self.m + 1

    def close(self):
        return self.area + (self.lx * self.fy - self.fx * self.ly)


def sh_step(sx, sy, n, nin, ex, ey, ux, uy, sink):
    """``sh_step<NIN>``; the crossing is computed lazily (the kernel computes and discards it)."""
    d = [ux * (sy[k] - ey) - uy * (sx[k] - ex) for k in range(nin + 1)]
    for k in range(nin):
        live, pin, dq = k < n, d[k] >= 0.0, d[k + 1]

        def cross(s, k=k, dq=dq):
            return s[k] + (d[k] / (d[k] - dq)) * (s[k + 1] - s[k])

        sink.emit(live and pin, lambda k=k: sx[k], lambda k=k: sy[k], 2 * k)
        sink.emit(live and (dq < 0.0 if pin else dq >= 0.0), lambda: cross(sx), lambda: cross(sy), 2 * k + 1)


def numba_max0(v):
    return 0.0 if 0.0 > v else v


def clip_area(a, b):
    """``clip_area``: (area, general) for corners ``a`` (subject) and ``b`` (clip), each [4, 2]."""
    poly = Polygon(4)
    poly.x = [float(v) for v in a[:, 0]] + [float(a[0, 0])]
    poly.y = [float(v) for v in a[:, 1]] + [float(a[0, 1])]
    n, dead, overflow = 4, False, False
    bx, by = [float(v) for v in b[:, 0]], [float(v) for v in b[:, 1]]
    for e, cap in enumerate((5, 6, 7, None)):
        sink = Polygon(cap) if cap else ShoelaceSum()
        f = (e + 1) % 4
        sh_step(poly.x, poly.y, n, 4 + e, bx[e], by[e], bx[f] - bx[e], by[f] - by[e], sink)
        if not dead and not overflow:
            overflow, dead = sink.m > (cap or 14), sink.m < 3
        if cap:
            sink.close()
            poly, n = sink, sink.m
    general = overflow and not dead
    return (0.0 if dead else numba_max0(0.5 * sink.close())), general


def clip_area_general(a, b):
    """``clip_area_general``: polygon.py's loop with its 16-vertex buffers."""
    src, n = [(float(p[0]), float(p[1])) for p in a], 4
    for e in range(4):
        ex, ey = float(b[e, 0]), float(b[e, 1])
        ux, uy = float(b[(e + 1) % 4, 0]) - ex, float(b[(e + 1) % 4, 1]) - ey
        dst = []
        for k in range(n):
            (px, py), (qx, qy) = src[k], src[(k + 1) % n]
            dp, dq = ux * (py - ey) - uy * (px - ex), ux * (qy - ey) - uy * (qx - ex)
            if dp >= 0.0:
                dst.append((px, py))
            if dq < 0.0 if dp >= 0.0 else dq >= 0.0:
                t = dp / (dp - dq)
                dst.append((px + t * (qx - px), py + t * (qy - py)))
        src, n = dst[:16], min(len(dst), 16)
        if n < 3:
            return 0.0
    area = 0.0
    for k in range(n):
        area += src[k][0] * src[(k + 1) % n][1] - src[(k + 1) % n][0] * src[k][1]
    return numba_max0(0.5 * area)


def kernel_area(a, b):
    area, general = clip_area(a, b)
    return clip_area_general(a, b) if general else area


def bev(box):
    """``make_bev``'s fields of the separating-axis test for a box (x, y, l, w, yaw)."""
    x, y, l, w, yaw = (float(v) for v in box)
    radius = 0.5 * math.sqrt(l * l + w * w)
    reach = abs(x) + abs(y) + radius
    ok = min(l, w) >= 1e-3 * reach and reach < 1e300
    return dict(x=x, y=y, c=math.cos(yaw), s=math.sin(yaw), hl=0.5 * l, hw=0.5 * w, reach=reach if ok else math.inf)


def separated(a, b):
    """``separated`` (a, b: ``bev`` dicts)."""
    dx, dy = b["x"] - a["x"], b["y"] - a["y"]
    C = abs(a["c"] * b["c"] + a["s"] * b["s"])
    S = abs(a["s"] * b["c"] - a["c"] * b["s"])
    gaps = (abs(dx * a["c"] + dy * a["s"]) - a["hl"] - (b["hl"] * C + b["hw"] * S),
            abs(dy * a["c"] - dx * a["s"]) - a["hw"] - (b["hl"] * S + b["hw"] * C),
            abs(dx * b["c"] + dy * b["s"]) - b["hl"] - (a["hl"] * C + a["hw"] * S),
            abs(dy * b["c"] - dx * b["s"]) - b["hw"] - (a["hl"] * S + a["hw"] * C))
    margin = 1e-6 * (a["reach"] + b["reach"])
    return any(g > margin for g in gaps)


def corners(box):
    out = np.empty((4, 2))
    rect_corners(box[0], box[1], box[2], box[3], box[4], out)
    return out


def cpu_area(ca, cb):
    return convex_intersection_area(ca, cb, np.empty((16, 2)), np.empty((16, 2)))


def same_bits(u, v):
    return np.float64(u).tobytes() == np.float64(v).tobytes() or (math.isnan(u) and math.isnan(v))


def random_pairs(rng, n):
    """Overlapping or near pairs (x, y, l, w, yaw) at ranges and sizes of all kinds."""
    for _ in range(n):
        scale = 10.0 ** rng.uniform(-3, 1.5)
        centre = rng.normal(0, 1, 2) * 10.0 ** rng.uniform(-1, 3)
        a = np.r_[centre, rng.uniform(0.2, 3, 2) * scale, rng.uniform(-4, 4)]
        b = np.r_[centre + rng.normal(0, 1, 2) * scale, rng.uniform(0.2, 3, 2) * scale, rng.uniform(-4, 4)]
        if rng.random() < 0.3:  # near-duplicates, like the candidates of one object
            b = a + rng.normal(0, 1, 5) * np.r_[1e-3, 1e-3, 1e-3, 1e-3, 1e-2] * scale ** np.r_[1, 1, 1, 1, 0]
        yield a, b


def degenerate_pairs():
    """Identical boxes, shared edges, touching corners, containment, quarter turns, tiny, flat, NaN."""
    a = np.array([1.5, -2.25, 4.0, 1.75, 0.3])
    c, s = math.cos(0.3), math.sin(0.3)
    out = [(a, a.copy()), (a, a + [4.0 * c, 4.0 * s, 0, 0, 0]), (a, a + [-1.75 * s, 1.75 * c, 0, 0, 0]),
           (a, a + [4.0 * c - 1.75 * s, 4.0 * s + 1.75 * c, 0, 0, 0]), (a, a * [1, 1, 0.5, 0.5, 1]),
           (a * [1, 1, 0.5, 0.5, 1], a), (a, a + [0, 0, 0, 0, math.pi]), (a, a * [1, 1, 0, 1, 1]), (a, a * [1, 1, 0, 0, 1]),
           (a, a + [0, 0, 0, 0, float("nan")]), (a, a + [1e-300, 0, 0, 0, 0])]
    for k in range(1, 8):
        out.append((a, a + [0, 0, 0, 0, k * math.pi / 2]))
        out.append(([0, 0, 2, 2, 0], [0, 0, 2, 2, k * math.pi / 2]))  # a square and its quarter turns
        out.append((a, a + [0, 0, 0, 0, 10.0 ** -k]))  # nearly parallel
        out.append(([80.0, -40.0, 10.0 ** -k, 2 * 10.0 ** -k, 0.1], [80.0, -40.0, 10.0 ** -k, 10.0 ** -k, 0.1 + 10.0 ** -k]))
        out.append(([3e5, 1e5, 10.0 ** (-k - 6), 10.0 ** (-k - 6), 1.0], [3e5, 1e5, 10.0 ** (-k - 6), 10.0 ** (-k - 6), 1.7]))
    return [(np.asarray(p, float), np.asarray(q, float)) for p, q in out]


def test_register_clip_is_the_cpu_clip_to_the_bit():
    rng = np.random.default_rng(18)
    pairs = list(random_pairs(rng, 6000)) + degenerate_pairs()
    general = 0
    for a, b in pairs:
        for p, q in ((a, b), (b, a)):
            cp, cq = corners(p), corners(q)
            want = cpu_area(cp, cq)
            got = kernel_area(cp, cq)
            assert same_bits(got, want), (p, q, got, want)
            general += clip_area(cp, cq)[1]
    assert general < 0.01 * len(pairs)  # the general clip is the exception


def test_any_quadrilaterals_overflow_into_the_general_clip_and_stay_the_cpu_clip():
    """Rectangles did not outgrow the fixed sizes in any search (ulp-sized boxes at 1e6 included);
    quadrilaterals of any shape (bow-ties: a line crosses them four times) do, so the fallback is
    reachable and must give the CPU's area too."""
    rng = np.random.default_rng(7)
    bow_tie = np.array([[0.0, 0.0], [2.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    square = np.array([[3.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [3.0, -1.0]])  # first edge y = 1: 4 crossings, 6 vertices
    quads = [(bow_tie, square)] + [(rng.uniform(-1, 1, (4, 2)), rng.uniform(-1, 1, (4, 2))) for _ in range(3000)]
    general = 0
    for ca, cb in quads:
        general += clip_area(ca, cb)[1]
        assert same_bits(kernel_area(ca, cb), cpu_area(ca, cb)), (ca, cb)
    assert clip_area(bow_tie, square)[1] and general > 100


@pytest.mark.parametrize("gap_in_margins", [1.5, 3.0, 30.0, 1e4])
def test_separating_axis_reject_drops_only_pairs_with_no_cpu_intersection(gap_in_margins):
    rng = np.random.default_rng(int(gap_in_margins * 10))
    rejected = 0
    for _ in range(1500):
        scale = 10.0 ** rng.uniform(-2, 1)
        a = np.r_[rng.normal(0, 1, 2) * 10.0 ** rng.uniform(0, 3), rng.uniform(0.3, 3, 2) * scale, rng.uniform(-4, 4)]
        b = np.r_[0, 0, rng.uniform(0.3, 3, 2) * scale, rng.uniform(-4, 4)]
        # b just outside one of a's sides (or a just outside one of b's), gap_in_margins margins away
        ba, bb = bev(a), bev(np.r_[a[:2], b[2:]])
        margin = 1e-6 * (ba["reach"] + bb["reach"])
        ang = a[4] + rng.integers(4) * math.pi / 2
        u = np.array([math.cos(ang), math.sin(ang)])
        half_a = 0.5 * (a[2] if rng.integers(4) % 2 == 0 else a[3])
        extent_b = 0.5 * (b[2] * abs(math.cos(b[4] - ang)) + b[3] * abs(math.sin(b[4] - ang)))
        shift = u * (half_a + extent_b + gap_in_margins * margin) + rng.normal(0, 0.2 * scale, 2) * np.r_[-u[1], u[0]]
        b[:2] = a[:2] + shift
        if separated(bev(a), bev(b)):
            rejected += 1
            for p, q in ((a, b), (b, a)):
                assert cpu_area(corners(p), corners(q)) == 0.0, (p, q)
    assert rejected > 0


def test_separating_axis_reject_leaves_overlaps_and_unsafe_boxes_to_the_clip():
    a = np.array([10.0, 5.0, 4.0, 1.6, 0.4])
    for b in (a, a + [1, 0, 0, 0, 0], a + [0, 0, 0, 0, 1.2], a * [1, 1, 0.1, 0.1, 1]):
        assert not separated(bev(a), bev(b))
    far = a + [100, 0, 0, 0, 0]
    assert separated(bev(a), bev(far))
    for bad in (a * [1, 1, 1e-4, 1, 1], a * [1, 1, -1, 1, 1], a + [0, 0, float("nan"), 0, 0], a + [0, 0, math.inf, 0, 0]):
        assert not separated(bev(bad), bev(far)) and not separated(bev(far), bev(bad))
