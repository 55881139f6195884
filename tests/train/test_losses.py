"""Losses against reference formulas."""

from __future__ import annotations

import math

import torch

from pointpillars_trt.train import LossWeights, add_sin_difference, detection_loss, range_ramp, sigmoid_focal_loss


def test_focal_loss_matches_formula():
    x = torch.linspace(-6, 6, 49, dtype=torch.float64)
    for t in (0.0, 1.0):
        got = sigmoid_focal_loss(x, torch.full_like(x, t), alpha=0.25, gamma=2.0)
        p = torch.sigmoid(x)
        ref = -0.25 * (1 - p) ** 2 * torch.log(p) if t == 1.0 else -0.75 * p**2 * torch.log(1 - p)
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)


def test_sin_difference():
    a, b = torch.tensor([[0.0] * 6 + [2.0]]), torch.tensor([[0.0] * 6 + [0.5]])
    pa, pb = add_sin_difference(a, b)
    assert math.isclose((pa - pb)[0, 6].item(), math.sin(1.5), rel_tol=1e-6)
    # a yaw off by pi costs nothing (the direction classifier resolves it)
    pa, pb = add_sin_difference(a, torch.tensor([[0.0] * 6 + [2.0 - math.pi]]))
    assert abs((pa - pb)[0, 6].item()) < 1e-6


def test_detection_loss_normalisation():
    B, N, K = 2, 4, 2
    torch.manual_seed(0)
    cls = torch.randn(B, N, K)
    box = torch.randn(B, N, 7) * 0.1
    dirs = torch.randn(B, N, 2)
    labels = torch.tensor([[1, 0, -1, 2], [0, 0, 0, 0]], dtype=torch.int8)
    pos_index = torch.tensor([0, 3])
    box_t = torch.randn(2, 7) * 0.1
    dir_t = torch.tensor([1, 0])
    w = LossWeights()
    out = detection_loss(cls, box, dirs, labels, pos_index, box_t, dir_t, w)

    onehot = torch.zeros(B, N, K)
    onehot[0, 0, 0] = 1
    onehot[0, 3, 1] = 1
    fl = sigmoid_focal_loss(cls, onehot)
    cared = (labels >= 0).float()
    ref_cls = ((fl * cared[..., None])[0].sum() / 2 + (fl * cared[..., None])[1].sum() / 1) / B
    torch.testing.assert_close(out["cls"], ref_cls * w.cls)

    bp = box.reshape(-1, 7)[pos_index]
    d = bp - box_t
    d[:, 6] = torch.sin(bp[:, 6] - box_t[:, 6])
    n = d.abs()
    sl1 = torch.where(n < 1 / 9, 0.5 * n * n * 9, n - 0.5 / 9).sum()
    torch.testing.assert_close(out["box"], sl1 / 2 / B * w.box, rtol=1e-5, atol=1e-7)

    ce = torch.nn.functional.cross_entropy(dirs.reshape(-1, 2)[pos_index], dir_t, reduction="sum")
    torch.testing.assert_close(out["dir"], ce / 2 / B * w.dir)
    torch.testing.assert_close(out["total"], out["cls"] + out["box"] + out["dir"])


def test_loss_gradients_flow_and_are_finite():
    cls = torch.zeros(1, 3, 1, requires_grad=True)
    box = torch.zeros(1, 3, 7, requires_grad=True)
    dirs = torch.zeros(1, 3, 2, requires_grad=True)
    out = detection_loss(cls, box, dirs, torch.tensor([[1, 0, -1]]), torch.tensor([0]), torch.ones(1, 7), torch.tensor([1]))
    out["total"].backward()
    assert cls.grad[0, 2].abs().sum() == 0  # ignored anchor
    assert box.grad[0, 1:].abs().sum() == 0 and box.grad[0, 0].abs().sum() > 0
    assert torch.isfinite(cls.grad).all()


def test_range_ramp():
    xy = torch.tensor([[10.0, 0.0], [0.0, -20.0], [30.0, 40.0], [70.0, 0.0]])
    torch.testing.assert_close(range_ramp(xy, 3.0, 20.0, 60.0), torch.tensor([1.0, 1.0, 2.5, 3.0]))


def test_positive_weight_scales_positive_classification_only():
    torch.manual_seed(0)
    cls, box, dirs = torch.randn(1, 4, 2), torch.randn(1, 4, 7) * 0.1, torch.randn(1, 4, 2)
    labels = torch.tensor([[1, 0, -1, 2]], dtype=torch.int8)
    pos_index, box_t, dir_t = torch.tensor([0, 3]), torch.randn(2, 7) * 0.1, torch.tensor([1, 0])
    base = detection_loss(cls, box, dirs, labels, pos_index, box_t, dir_t)
    w = torch.tensor([2.0, 5.0, 5.0, 3.0])  # anchors 1 (background) and 2 (ignored) are not positives
    got = detection_loss(cls, box, dirs, labels, pos_index, box_t, dir_t, positive_weight=w)
    per_anchor = sigmoid_focal_loss(cls, torch.nn.functional.one_hot(labels.long().clamp(min=0), 3)[..., 1:].float()).sum(-1)[0]
    ref = (2.0 * per_anchor[0] + per_anchor[1] + 3.0 * per_anchor[3]) / 2
    torch.testing.assert_close(got["cls"], ref)
    torch.testing.assert_close(got["box"], base["box"])
    torch.testing.assert_close(got["dir"], base["dir"])
