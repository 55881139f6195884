"""Losses against reference formulas."""

from __future__ import annotations

import math

import pytest
import torch

from pointpillars_trt.train import (LossWeights, add_sin_difference, detection_loss, distillation_loss, range_ramp,
                                    sigmoid_focal_loss, truncation_weight)


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


def _two_positives():
    """One frame of 4 anchors (positives 0 and 3, background 1, ignored 2), 2 classes, 2 direction bins:
    ``(cls, box, dirs, labels, pos_index, box_targets, dir_targets)``."""
    torch.manual_seed(0)
    cls, box, dirs = torch.randn(1, 4, 2), torch.randn(1, 4, 7) * 0.1, torch.randn(1, 4, 2)
    labels = torch.tensor([[1, 0, -1, 2]], dtype=torch.int8)
    return cls, box, dirs, labels, torch.tensor([0, 3]), torch.randn(2, 7) * 0.1, torch.tensor([1, 0])


def test_positive_weight_scales_positive_classification_only():
    cls, box, dirs, labels, pos_index, box_t, dir_t = _two_positives()
    base = detection_loss(cls, box, dirs, labels, pos_index, box_t, dir_t)
    w = torch.tensor([2.0, 5.0, 5.0, 3.0])  # anchors 1 (background) and 2 (ignored) are not positives
    got = detection_loss(cls, box, dirs, labels, pos_index, box_t, dir_t, positive_weight=w)
    per_anchor = sigmoid_focal_loss(cls, torch.nn.functional.one_hot(labels.long().clamp(min=0), 3)[..., 1:].float()).sum(-1)[0]
    ref = (2.0 * per_anchor[0] + per_anchor[1] + 3.0 * per_anchor[3]) / 2
    torch.testing.assert_close(got["cls"], ref)
    torch.testing.assert_close(got["box"], base["box"])
    torch.testing.assert_close(got["dir"], base["dir"])


def test_truncation_weight():
    t = torch.tensor([0.0, 0.25, 1.0, 1.5])
    torch.testing.assert_close(truncation_weight(t, 3.0), torch.tensor([1.0, 1.5, 3.0, 3.0]))
    torch.testing.assert_close(truncation_weight(t, 1.0), torch.ones(4))


def test_box_weight_scales_box_and_direction_of_each_positive_only():
    cls, box, dirs, labels, pos_index, box_t, dir_t = _two_positives()
    base = detection_loss(cls, box, dirs, labels, pos_index, box_t, dir_t)
    only = [detection_loss(cls, box, dirs, labels, pos_index[[i]], box_t[[i]], dir_t[[i]]) for i in (0, 1)]
    got = detection_loss(cls, box, dirs, labels, pos_index, box_t, dir_t, box_weight=torch.tensor([2.0, 0.5]))
    torch.testing.assert_close(got["cls"], base["cls"])
    for k in ("box", "dir"):  # each positive's term (the norm, 2 positives, comes from the labels in both)
        torch.testing.assert_close(got[k], 2.0 * only[0][k] + 0.5 * only[1][k])


def _heads(seed: int, B: int = 2, N: int = 5, K: int = 3, D: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, K, generator=g), torch.randn(B, N, 7, generator=g) * 0.3, torch.randn(B, N, D, generator=g)


KD_LABELS = torch.tensor([[1, 0, -1, 2, 0], [0, -1, 0, 0, 0]], dtype=torch.int8)


def test_distillation_is_zero_with_a_zero_gradient_when_the_student_is_the_teacher():
    teacher = _heads(0)
    student = tuple(t.clone().requires_grad_(True) for t in teacher)
    out = distillation_loss(student, teacher, KD_LABELS)
    assert set(out) == {"kd_cls", "kd_box", "kd_dir", "kd"} and all(v.dtype == torch.float32 for v in out.values())
    assert all(v.item() == 0.0 for v in out.values())
    out["kd"].backward()
    for s in student:
        torch.testing.assert_close(s.grad, torch.zeros_like(s), atol=1e-7, rtol=0)


def test_distillation_is_positive_and_reaches_the_student_only():
    teacher = tuple(t.requires_grad_(True) for t in _heads(0))
    student = tuple(t.requires_grad_(True) for t in _heads(1))
    out = distillation_loss(student, teacher, KD_LABELS)
    assert all(out[k].item() > 0 for k in ("kd_cls", "kd_box", "kd_dir"))
    torch.testing.assert_close(out["kd"], out["kd_cls"] + out["kd_box"] + out["kd_dir"])
    out["kd"].backward()
    assert all(t.grad is None for t in teacher)
    assert all(torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0 for s in student)
    assert student[0].grad[0, 2].abs().sum() == 0 and student[0].grad[1, 1].abs().sum() == 0  # ignored: no cls term
    assert student[1].grad[0, 2].abs().sum() > 0  # box and dir: every anchor, weighted by the teacher's confidence


def test_distillation_small_case_by_hand():
    """One frame, one positive anchor of two (the other ignored), one class, two direction bins."""
    labels = torch.tensor([[1, -1]])
    t_box = torch.zeros(1, 2, 7)
    t_box[0, 0, 0], t_box[0, 1, 0] = 0.05, 1.0  # under and over beta = 1/9
    teacher = (torch.tensor([[[0.0], [math.log(3.0)]]]), t_box, torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]]))
    student = (torch.tensor([[[2.0], [-5.0]]]), torch.zeros(1, 2, 7), torch.zeros(1, 2, 2))
    w = LossWeights()
    out = distillation_loss(student, teacher, labels, w)

    sig2 = 1.0 / (1.0 + math.exp(-2.0))
    kd_cls = -0.5 * math.log(sig2) - 0.5 * math.log(1.0 - sig2) - math.log(2.0)  # p = 0.5; the ignored anchor is out
    box_w = (0.5 / 1.25, 0.75 / 1.25)  # sigmoid of the teacher's logits over their sum (the teacher's mass)
    kd_box = box_w[0] * 0.5 * 0.05**2 * 9.0 + box_w[1] * (1.0 - 0.5 / 9.0)
    kd_dir = box_w[0] * (0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5))  # the second anchor: q uniform, 0
    assert out["kd_cls"].item() == pytest.approx(kd_cls * w.cls, rel=1e-5)
    assert out["kd_box"].item() == pytest.approx(kd_box * w.box, rel=1e-5)
    assert out["kd_dir"].item() == pytest.approx(kd_dir * w.dir, rel=1e-5)


def test_twin_negative_weight_scales_the_background_twins_of_positives():
    """Anchors 0/1 and 2/3 are twins (one place, two rotations). Frame 0: anchor 0 positive, so its
    twin 1 (background) weighs W; anchor 3 is background with a background twin (weight 1); anchor 2
    is ignored. Frame 1: no positive, nothing changes."""
    B, N, K = 2, 4, 2
    torch.manual_seed(1)
    cls, box, dirs = torch.randn(B, N, K), torch.randn(B, N, 7) * 0.1, torch.randn(B, N, 2)
    labels = torch.tensor([[1, 0, -1, 0], [0, 0, 0, 0]], dtype=torch.int8)
    args = (cls, box, dirs, labels, torch.tensor([0]), torch.randn(1, 7) * 0.1, torch.tensor([1]), LossWeights())
    twins = torch.tensor([1, 0, 3, 2])
    base = detection_loss(*args)
    assert torch.equal(detection_loss(*args, twin_index=twins, twin_weight=1.0)["cls"], base["cls"])  # 1: off
    got = detection_loss(*args, twin_index=twins, twin_weight=4.0)
    onehot = torch.zeros(B, N, K)
    onehot[0, 0, 0] = 1
    fl = sigmoid_focal_loss(cls, onehot).sum(-1)  # [B, N]
    extra = 3.0 * fl[0, 1] / 1 / B  # (W - 1) x anchor 1's loss, frame 0's one positive, over B frames
    torch.testing.assert_close(got["cls"], base["cls"] + extra * LossWeights().cls)
    assert torch.equal(got["box"], base["box"]) and torch.equal(got["dir"], base["dir"])
    untwinned = detection_loss(*args, twin_index=torch.tensor([-1, -1, -1, -1]), twin_weight=4.0)
    torch.testing.assert_close(untwinned["cls"], base["cls"])
