"""Anchor target assignment against a brute-force reference of OpenPCDet's rules."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.postprocess import apply_direction, decode_boxes, iou_bev, limit_period
from pointpillars_trt.train import TargetAssigner, direction_bins


def aligned_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """OpenPCDet's boxes3d_nearest_bev_iou, brute force: [Na, Nb]."""
    def bev(x):
        r = np.abs(limit_period(x[:, 6], 0.5, np.pi))
        lw = np.where((r < np.pi / 4)[:, None], x[:, [3, 4]], x[:, [4, 3]])
        return np.concatenate([x[:, :2] - lw / 2, x[:, :2] + lw / 2], axis=1)
    ba, bb = bev(a.astype(np.float64)), bev(b.astype(np.float64))
    iw = np.clip(np.minimum(ba[:, None, 2], bb[None, :, 2]) - np.maximum(ba[:, None, 0], bb[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ba[:, None, 3], bb[None, :, 3]) - np.maximum(ba[:, None, 1], bb[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (ba[:, 2] - ba[:, 0]) * (ba[:, 3] - ba[:, 1])
    area_b = (bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def reference_labels(cfg, anchors, gt, gt_labels, iou_fn) -> np.ndarray:
    """OpenPCDet's AxisAlignedTargetAssigner labels (-1 / 0 / k + 1), class by class, on all anchors."""
    ny, nx, A, _ = anchors.shape
    labels = np.zeros((ny * nx, A), dtype=np.int64)
    a0 = 0
    for k, ac in enumerate(cfg.anchors):
        na = ac.num_anchors
        sub = anchors[:, :, a0 : a0 + na].reshape(-1, 7)
        g = gt[gt_labels == k]
        lab = np.zeros(len(sub), dtype=np.int64)
        if len(g):
            ov = iou_fn(sub, g)
            amax = ov.max(axis=1)
            gmax = ov.max(axis=0)
            gmax[gmax == 0] = -1
            forced = np.nonzero(ov == gmax[None, :])[0]
            lab[:] = -1
            lab[amax >= ac.matched_threshold] = k + 1
            lab[amax < ac.unmatched_threshold] = 0
            lab[forced] = k + 1
        labels[:, a0 : a0 + na] = lab.reshape(ny * nx, na)
        a0 += na
    return labels.reshape(-1)


def random_gt(cfg, rng, n=8):
    r = cfg.voxel.point_cloud_range
    sizes = np.array([a.sizes[0] for a in cfg.anchors])
    labels = rng.integers(0, cfg.num_classes, size=n)
    xy = rng.uniform([r[0] + 2, r[1] + 2], [r[3] - 2, r[4] - 2], size=(n, 2))
    lwh = sizes[labels] * rng.uniform(0.85, 1.15, size=(n, 3))
    yaw = rng.uniform(-np.pi, np.pi, size=n)
    return np.column_stack([xy, np.full(n, -1.0), lwh, yaw]).astype(np.float32), labels


def test_anchor_identical_to_gt_is_positive_with_zero_targets(kitti_config):
    cfg = kitti_config
    assigner = TargetAssigner(cfg)
    ny, nx, A, _ = assigner.anchors.shape
    iy, ix, a = ny // 2, nx // 3, 1  # Car anchor rotated by 1.57
    flat = (iy * nx + ix) * A + a
    gt = assigner.anchors_flat[flat][None].copy()
    t = assigner(gt, np.array([0]))
    assert t.labels[flat] == 1
    row = np.flatnonzero(t.pos_index == flat)[0]
    np.testing.assert_allclose(t.box_targets[row], 0.0, atol=1e-6)
    assert t.matched_gt[row] == 0
    # far anchors are background; anchors of other classes at the same place too (no GT of theirs)
    labels = t.labels.reshape(ny, nx, A)
    assert (labels[:, : max(ix - 20, 0)] == 0).all() and (labels[:, ix + 20 :] == 0).all()
    assert (labels[iy, ix, 2:] == 0).all()
    # an anchor a few cells along the car's length overlaps partly: ignored (0.45 <= IoU < 0.6)
    ious = aligned_iou(assigner.anchors[iy - 6 : iy + 7, ix, a], gt)[:, 0]
    mid = np.flatnonzero((ious >= 0.45) & (ious < 0.6))
    assert len(mid) > 0
    assert (labels[iy - 6 + mid, ix, a] == -1).all()
    assert (t.labels >= -1).all() and set(np.unique(t.labels)) <= {-1, 0, 1}


@pytest.mark.parametrize("mode", ["nearest_bev", "rotated"])
def test_labels_match_bruteforce_reference(kitti_config, mode):
    cfg = kitti_config
    assigner = TargetAssigner(cfg, iou=mode)
    rng = np.random.default_rng(3)
    iou_fn = aligned_iou if mode == "nearest_bev" else (lambda a, b: iou_bev(a, b))
    for _ in range(2):
        gt, lab = random_gt(cfg, rng)
        t = assigner(gt, lab)
        ref = reference_labels(cfg, assigner.anchors, gt, lab, iou_fn)
        np.testing.assert_array_equal(t.labels, ref)
        # box targets decode back to the matched boxes
        dec = decode_boxes(t.box_targets, assigner.anchors_flat[t.pos_index])
        np.testing.assert_allclose(dec, gt[t.matched_gt], atol=1e-4)
        assert (lab[t.matched_gt] + 1 == t.labels[t.pos_index]).all()


def test_every_gt_gets_a_positive_anchor(kitti_config):
    assigner = TargetAssigner(kitti_config)
    gt, lab = random_gt(kitti_config, np.random.default_rng(7), n=12)
    t = assigner(gt, lab)
    assert set(t.matched_gt.tolist()) == set(range(len(gt)))


def test_empty_frame_is_all_background(kitti_config):
    t = TargetAssigner(kitti_config)(np.zeros((0, 7), np.float32), np.zeros(0, np.int64))
    assert (t.labels == 0).all() and t.num_positive == 0 and t.box_targets.shape == (0, 7)


def test_direction_bins_openpcdet_formula():
    yaw = np.linspace(-7, 7, 301)
    offset = 0.78539
    expected = np.floor(limit_period(yaw - offset, 0, 2 * np.pi) / np.pi).astype(int)
    np.testing.assert_array_equal(direction_bins(yaw, offset, 0.0, 2), np.clip(expected, 0, 1))


@pytest.mark.parametrize("limit_offset", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("offset", [0.78539, 0.0, -np.pi / 2])
def test_direction_bins_invert_apply_direction(offset, limit_offset):
    rng = np.random.default_rng(0)
    yaw = rng.uniform(-2 * np.pi, 2 * np.pi, 500)
    yaw = yaw[np.abs(np.sin(yaw - offset)) > 1e-3]  # away from the bin edges
    bins = direction_bins(yaw, offset, limit_offset, 2)
    ambiguous = (yaw + np.pi * rng.integers(-2, 3, size=len(yaw))).astype(np.float32)  # what sin-diff regression allows
    out = apply_direction(ambiguous, bins, offset, limit_offset, 2)
    np.testing.assert_allclose(np.cos(out - yaw), 1.0, atol=1e-4)
