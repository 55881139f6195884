"""Each source's published test-time pipeline, re-implemented from its documented behaviour
(../shared/checkpoint-formats/README.md and the public model code), independently of the package:
numpy only, no call into ``pointpillars_trt`` (the networks are tests/checkpoint/sources.py's).

* OpenPCDet (``DataProcessor.mask_points_by_range``, ``AnchorHeadSingle.generate_predicted_boxes``,
  ``post_processing`` + ``class_agnostic_nms``, ``iou3d_nms_utils.nms_gpu``): points with x, y in
  the closed range; every anchor decoded (z centre) with the direction fix; best class score
  ``>= 0.1``; top 4096 by score; one rotated NMS (suppress IoU > 0.01); keep 500.
* mmdet3d 1.x (``PointsRangeFilter``, ``Anchor3DHead._predict_by_feat_single``,
  ``box3d_multiclass_nms``, ``mmcv.ops.nms_bev``): points strictly inside the range on x, y, z;
  top 100 anchors by best class score; decode (z bottom); per class score ``> 0.1`` and a rotated
  NMS (IoU > 0.01) on ``xyxyr`` BEV boxes; keep the best 50; the direction fix after NMS.
* zhulf0804 (``point_range_filter``, ``PointPillars.get_predicted_bboxes_single``, ``nms_cuda``):
  as mmdet3d, boxes ``(w, l, h)`` with a camera-style yaw: the NMS rectangle is ``w`` along x and
  ``l`` along y turned clockwise by the yaw; the direction fix is ``limit_period(r, 1, pi) +
  (1 - label) * pi``.

Outputs are converted to the LiDAR box convention of the package's ``Detections`` for comparison:
``(x, y, z centre, length, width, height, yaw CCW)``, labels as class names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32
RANGE = (0.0, -39.68, -3.0, 69.12, 39.68, 1.0)
VOXEL = (0.16, 0.16, 4.0)
MAX_POINTS, MAX_VOXELS = 32, 40000
ROTATIONS = (0.0, 1.57)
# per class in the source's order: (name, (l, w, h), anchor bottom z)
KITTI_ANCHORS = {"Car": ((3.9, 1.6, 1.56), -1.78), "Pedestrian": ((0.8, 0.6, 1.73), -0.6), "Cyclist": ((1.76, 0.6, 1.73), -0.6)}


@dataclass(frozen=True)
class SourceResult:
    """``boxes [N, 7]`` (x, y, z centre, l, w, h, yaw CCW), ``scores [N]``, ``names [N]``."""

    boxes: np.ndarray
    scores: np.ndarray
    names: tuple[str, ...]


# ---- points -> pillars ----------------------------------------------------------------------------
def range_filter(points: np.ndarray, fmt: str) -> np.ndarray:
    """The source's point-range filter, float32 comparisons."""
    p, r = points.astype(F32), np.asarray(RANGE, F32)
    if fmt == "openpcdet":
        keep = (p[:, 0] >= r[0]) & (p[:, 0] <= r[3]) & (p[:, 1] >= r[1]) & (p[:, 1] <= r[4])
    else:
        keep = np.all((p[:, :3] > r[:3]) & (p[:, :3] < r[3:]), axis=1)
    return p[keep]


def hard_voxelize(points: np.ndarray):
    """spconv / mmcv hard voxelization: cell ``floor((p - min) / voxel)`` (float32) inside the grid;
    the first ``MAX_POINTS`` points of a cell in input order; at most ``MAX_VOXELS`` cells, first
    seen first. Returns zero-padded points ``[P, M, 4]``, counts ``[P]``, ``(ix, iy) [P, 2]``."""
    lo, vs = np.asarray(RANGE[:3], F32), np.asarray(VOXEL, F32)
    grid = np.round((np.asarray(RANGE[3:]) - RANGE[:3]) / VOXEL).astype(np.int64)
    cells = np.floor((points[:, :3] - lo) / vs)
    ok = np.all((cells >= 0) & (cells < grid), axis=1)
    pts, cells = points[ok], cells[ok].astype(np.int64)
    flat = cells[:, 1] * grid[0] + cells[:, 0]
    uniq, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    seen_rank = np.empty(len(uniq), np.int64)
    seen_rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    pillar = seen_rank[inverse]  # pillar id of each point, in first-seen order
    order = np.argsort(pillar, kind="stable")
    start = np.searchsorted(pillar[order], np.arange(len(uniq)))
    slot = np.empty(len(pts), np.int64)
    slot[order] = np.arange(len(pts)) - start[pillar[order]]
    take = (slot < MAX_POINTS) & (pillar < MAX_VOXELS)
    P = min(len(uniq), MAX_VOXELS)
    out = np.zeros((P, MAX_POINTS, 4), F32)
    out[pillar[take], slot[take]] = pts[take]
    num = np.bincount(pillar[take], minlength=P)[:P]
    coords = np.zeros((P, 2), np.int64)
    coords[pillar[take], 0], coords[pillar[take], 1] = cells[take, 0], cells[take, 1]
    return out, num, coords


# ---- anchors and decoding --------------------------------------------------------------------------
def anchors(fmt: str, classes: tuple[str, ...], nx: int, ny: int) -> np.ndarray:
    """``[ny * nx * A, 7]`` float32 in the head's row order (y, x, class, rotation).

    OpenPCDet: ``x_i = x_min + i (x_max - x_min) / (nx - 1)``, z the box centre, ``(l, w, h)``.
    mmdet3d: cell centres, z the box bottom, ``(l, w, h)``. zhulf0804: cell centres, z bottom, ``(w, l, h)``.
    """
    r = RANGE
    if fmt == "openpcdet":
        xs = r[0] + np.arange(nx, dtype=np.float64) * (r[3] - r[0]) / (nx - 1)
        ys = r[1] + np.arange(ny, dtype=np.float64) * (r[4] - r[1]) / (ny - 1)
    else:
        xs = r[0] + (np.arange(nx) + 0.5) * (r[3] - r[0]) / nx
        ys = r[1] + (np.arange(ny) + 0.5) * (r[4] - r[1]) / ny
    per_loc = []
    for name in classes:
        (l, w, h), bottom = KITTI_ANCHORS[name]
        z = bottom + h / 2 if fmt == "openpcdet" else bottom
        size = (w, l, h) if fmt == "zhulf0804" else (l, w, h)
        per_loc += [(z, *size, rot) for rot in ROTATIONS]
    A = len(per_loc)
    out = np.empty((ny, nx, A, 7))
    out[..., 0] = xs[None, :, None]
    out[..., 1] = ys[:, None, None]
    out[..., 2:] = np.asarray(per_loc)[None, None]
    return out.reshape(-1, 7).astype(F32)


def decode(deltas: np.ndarray, anc: np.ndarray, bottom_z: bool) -> np.ndarray:
    """Residual decoding in float32; ``bottom_z`` (mmdet3d, zhulf0804): anchors and boxes carry the bottom z."""
    xa, ya, za, sa0, sa1, ha, ra = (anc[:, i] for i in range(7))
    t = deltas.astype(F32)
    if bottom_z:
        za = za + ha / F32(2)
    diag = np.sqrt(sa0 * sa0 + sa1 * sa1)
    h = np.exp(t[:, 5]) * ha
    z = t[:, 2] * ha + za
    if bottom_z:
        z = z - h / F32(2)
    return np.stack([t[:, 0] * diag + xa, t[:, 1] * diag + ya, z, np.exp(t[:, 3]) * sa0, np.exp(t[:, 4]) * sa1, h,
                     t[:, 6] + ra], axis=1).astype(F32)


def limit_period(val: np.ndarray, offset: float, period: float) -> np.ndarray:
    return (val - np.floor(val / F32(period) + F32(offset)) * F32(period)).astype(F32)


def rows(cls_map, box_map, dir_map, k: int):
    """Head maps ``[1, C, ny, nx]`` -> per-anchor rows (y, x, anchor) ``[R, k]``, ``[R, 7]``, ``[R, 2]``."""
    def flat(m, c):
        return np.ascontiguousarray(np.asarray(m)[0].transpose(1, 2, 0)).reshape(-1, c)

    return flat(cls_map, k), flat(box_map, 7), flat(dir_map, 2)


# ---- rotated IoU (convex polygons: vertices inside the other, plus edge crossings) -----------------
def rectangles(cx, cy, sx, sy, angle) -> np.ndarray:
    """``[N, 4, 2]`` counter-clockwise corners of ``sx x sy`` rectangles turned CCW by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    lx = np.array([0.5, -0.5, -0.5, 0.5])[None] * sx[:, None]
    ly = np.array([0.5, 0.5, -0.5, -0.5])[None] * sy[:, None]
    return np.stack([cx[:, None] + lx * c[:, None] - ly * s[:, None], cy[:, None] + lx * s[:, None] + ly * c[:, None]], -1)


def _cross(o, a, b):
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (b[..., 0] - o[..., 0])


def _inside(points, poly):
    """``points [M, P, 2]`` inside convex CCW ``poly [M, 4, 2]`` (boundary included) -> ``[M, P]``."""
    ok = np.ones(points.shape[:2], bool)
    for e in range(4):
        ok &= _cross(poly[:, e, None], poly[:, (e + 1) % 4, None], points) >= -1e-12
    return ok


def iou_one_to_many(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of the polygon ``a [4, 2]`` with each of ``b [M, 4, 2]`` (float64)."""
    A = np.broadcast_to(a, b.shape)
    pts = [A, b]
    valid = [_inside(A, b), _inside(b, A)]
    for i in range(4):
        p, r = A[:, i], A[:, (i + 1) % 4] - A[:, i]
        for j in range(4):
            q, s = b[:, j], b[:, (j + 1) % 4] - b[:, j]
            den = r[:, 0] * s[:, 1] - r[:, 1] * s[:, 0]
            qp = q - p
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (qp[:, 0] * s[:, 1] - qp[:, 1] * s[:, 0]) / den
                u = (qp[:, 0] * r[:, 1] - qp[:, 1] * r[:, 0]) / den
            ok = (den != 0) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
            pts.append((p + t[:, None] * r)[:, None])
            valid.append(ok[:, None])
    P, V = np.concatenate(pts, 1), np.concatenate(valid, 1)
    count = V.sum(1)
    centre = (P * V[..., None]).sum(1) / np.maximum(count, 1)[:, None]
    ang = np.where(V, np.arctan2(P[..., 1] - centre[:, None, 1], P[..., 0] - centre[:, None, 0]), np.inf)
    order = np.argsort(ang, axis=1)
    pos = np.minimum(np.arange(P.shape[1])[None], np.maximum(count, 1)[:, None] - 1)
    S = np.take_along_axis(P, np.take_along_axis(order, pos, 1)[..., None], 1)
    inter = 0.5 * np.abs((S[:, :, 0] * np.roll(S[:, :, 1], -1, 1) - np.roll(S[:, :, 0], -1, 1) * S[:, :, 1]).sum(1))
    inter = np.where(count >= 3, inter, 0.0)
    area = lambda poly: 0.5 * np.abs((poly[..., 0] * np.roll(poly[..., 1], -1, -1) - np.roll(poly[..., 0], -1, -1) * poly[..., 1]).sum(-1))
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def rotated_nms(polys: np.ndarray, scores: np.ndarray, thresh: float) -> np.ndarray:
    """Greedy NMS in descending score order, suppressing IoU > ``thresh`` (the sources' CUDA kernels)."""
    order = np.argsort(-scores, kind="stable")
    polys = polys[order]
    centre = polys.mean(1)
    radius = np.sqrt(((polys - centre[:, None]) ** 2).sum(-1)).max(1)
    alive = np.ones(len(order), bool)
    keep = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(order[i])
        rest = np.flatnonzero(alive[i + 1:]) + i + 1
        near = rest[((centre[rest] - centre[i]) ** 2).sum(1) <= (radius[rest] + radius[i]) ** 2]
        if len(near):
            alive[near[iou_one_to_many(polys[i], polys[near]) > thresh]] = False
    return np.asarray(keep, np.int64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (F32(1) / (F32(1) + np.exp(-x.astype(F32)))).astype(F32)


# ---- the three post-processings -------------------------------------------------------------------
def openpcdet_post(cls_map, box_map, dir_map, classes) -> SourceResult:
    k = len(classes)
    ny, nx = np.asarray(cls_map).shape[2:]
    cls, box, dirs = rows(cls_map, box_map, dir_map, k)
    boxes = decode(box, anchors("openpcdet", classes, nx, ny), bottom_z=False)
    boxes[:, 6] = limit_period(boxes[:, 6] - F32(0.78539), 0.0, np.pi) + F32(0.78539) + F32(np.pi) * dirs.argmax(1).astype(F32)
    probs = sigmoid(cls)
    score, label = probs.max(1), probs.argmax(1)
    idx = np.flatnonzero(score >= F32(0.1))
    idx = idx[np.argsort(-score[idx], kind="stable")][:4096]
    b = boxes[idx].astype(np.float64)
    keep = idx[rotated_nms(rectangles(b[:, 0], b[:, 1], b[:, 3], b[:, 4], b[:, 6]), score[idx], 0.01)][:500]
    return SourceResult(boxes[keep], score[keep], tuple(classes[i] for i in label[keep]))


def _topk_then_class_nms(cls_map, box_map, dir_map, classes, fmt):
    """mmdet3d / zhulf0804: top 100 by best class score, decode, per class score > 0.1 + NMS, best 50."""
    k = len(classes)
    ny, nx = np.asarray(cls_map).shape[2:]
    cls, box, dirs = rows(cls_map, box_map, dir_map, k)
    probs = sigmoid(cls)
    top = np.argsort(-probs.max(1), kind="stable")[:100]
    boxes = decode(box[top], anchors(fmt, classes, nx, ny)[top], bottom_z=True)
    probs, dir_label = probs[top], dirs[top].argmax(1)
    b = boxes.astype(np.float64)
    if fmt == "zhulf0804":  # (w along x, l along y) turned clockwise by the camera yaw
        polys = rectangles(b[:, 0], b[:, 1], b[:, 3], b[:, 4], -b[:, 6])
    else:  # xyxyr -> xywhr as mmcv.ops.nms_bev does, turned counter-clockwise by the yaw
        x1, y1, x2, y2 = b[:, 0] - b[:, 3] / 2, b[:, 1] - b[:, 4] / 2, b[:, 0] + b[:, 3] / 2, b[:, 1] + b[:, 4] / 2
        polys = rectangles((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, b[:, 6])
    sel, scores, labels = [], [], []
    for c in range(k):
        idx = np.flatnonzero(probs[:, c] > F32(0.1))
        keep = idx[rotated_nms(polys[idx], probs[idx, c], 0.01)]
        sel.append(keep), scores.append(probs[keep, c]), labels.append(np.full(len(keep), c))
    sel, scores, labels = np.concatenate(sel), np.concatenate(scores), np.concatenate(labels)
    if len(sel) > 50:
        best = np.argsort(-scores, kind="stable")[:50]
        sel, scores, labels = sel[best], scores[best], labels[best]
    return boxes[sel], scores, labels, dir_label[sel]


def mmdet3d_post(cls_map, box_map, dir_map, classes) -> SourceResult:
    boxes, scores, labels, dir_label = _topk_then_class_nms(cls_map, box_map, dir_map, classes, "mmdet3d")
    off = F32(-np.pi / 2)
    boxes[:, 6] = limit_period(boxes[:, 6] - off, 0.0, np.pi) + off + F32(np.pi) * dir_label.astype(F32)
    boxes[:, 2] += boxes[:, 5] / F32(2)  # bottom -> centre
    return SourceResult(boxes, scores, tuple(classes[i] for i in labels))


def zhulf0804_post(cls_map, box_map, dir_map, classes) -> SourceResult:
    boxes, scores, labels, dir_label = _topk_then_class_nms(cls_map, box_map, dir_map, classes, "zhulf0804")
    r = limit_period(boxes[:, 6], 1.0, np.pi) + (F32(1) - dir_label.astype(F32)) * F32(np.pi)
    out = boxes.copy()
    out[:, 2] += boxes[:, 5] / F32(2)
    out[:, 3], out[:, 4] = boxes[:, 4], boxes[:, 3]  # (w, l) -> (l, w)
    out[:, 6] = -r - F32(np.pi / 2)  # camera-style yaw -> LiDAR CCW
    return SourceResult(out, scores, tuple(classes[i] for i in labels))


POST = {"openpcdet": openpcdet_post, "mmdet3d": mmdet3d_post, "zhulf0804": zhulf0804_post}
