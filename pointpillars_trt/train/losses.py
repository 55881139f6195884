"""OpenPCDet's anchor-head losses: sigmoid focal classification, smooth-L1 box regression with the
sin-difference yaw, and direction cross-entropy, each normalised by the frame's positive count; and the
distillation loss of a student's head outputs against a teacher's (QAT imitating the float model)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    """OpenPCDet's ``LOSS_WEIGHTS`` for PointPillars."""

    cls: float = 1.0
    box: float = 2.0
    dir: float = 0.2
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    smooth_l1_beta: float = 1.0 / 9.0


def bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Element-wise binary cross-entropy ``-t log(sigmoid(x)) - (1 - t) log(1 - sigmoid(x))`` of logits
    ``x`` against targets ``t`` in [0, 1] (soft targets allowed), in the stable form."""
    return logits.clamp(min=0) - logits * targets + torch.log1p(torch.exp(-logits.abs()))


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Element-wise focal loss ``alpha_t (1 - p_t)^gamma BCE(logits, targets)`` (same shape as the input)."""
    p = torch.sigmoid(logits)
    alpha_w = targets * alpha + (1.0 - targets) * (1.0 - alpha)
    pt = targets * (1.0 - p) + (1.0 - targets) * p
    return alpha_w * pt.pow(gamma) * bce_with_logits(logits, targets)


def add_sin_difference(pred: torch.Tensor, target: torch.Tensor, dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the yaw codes with ``sin(a) cos(b)`` and ``cos(a) sin(b)``: their difference is ``sin(a - b)``."""
    a, b = pred[..., dim : dim + 1], target[..., dim : dim + 1]
    pred = torch.cat([pred[..., :dim], torch.sin(a) * torch.cos(b), pred[..., dim + 1 :]], dim=-1)
    target = torch.cat([target[..., :dim], torch.cos(a) * torch.sin(b), target[..., dim + 1 :]], dim=-1)
    return pred, target


def smooth_l1(diff: torch.Tensor, beta: float) -> torch.Tensor:
    """Element-wise Huber-style smooth-L1 of ``diff``: ``0.5 d^2 / beta`` below ``beta``, ``|d| - beta / 2`` above."""
    n = diff.abs()
    return torch.where(n < beta, 0.5 * n * n / beta, n - 0.5 * beta) if beta > 0 else n


def detection_loss(
    cls_preds: torch.Tensor,
    box_preds: torch.Tensor,
    dir_preds: torch.Tensor,
    labels: torch.Tensor,
    pos_index: torch.Tensor,
    box_targets: torch.Tensor,
    dir_targets: torch.Tensor,
    weights: LossWeights = LossWeights(),
    positive_weight: torch.Tensor | None = None,
    box_weight: torch.Tensor | None = None,
    twin_index: torch.Tensor | None = None,
    twin_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The three losses of a batch, each summed over anchors and divided by the batch size.

    * ``cls_preds [B, N, K]``, ``box_preds [B, N, 7]``, ``dir_preds [B, N, D]`` (any float dtype;
      computed in float32);
    * ``labels [B, N]`` (``-1`` ignore, ``0`` background, ``k + 1`` class ``k``);
    * ``pos_index [P]`` flat indices ``b * N + n`` of the positive anchors, with their
      ``box_targets [P, 7]`` and ``dir_targets [P]``.

    Per frame, classification weights are 1 for cared anchors (positive or background) and box and
    direction weights 1 for positives, all divided by the frame's number of positives (at least 1).
    ``positive_weight [N]`` (optional, e.g. :func:`range_ramp`) multiplies the classification weight
    of the positive anchors (all classes of that anchor); background anchors keep 1. ``box_weight [P]``
    (optional, e.g. :func:`truncation_weight`) multiplies the box and direction weights of the positives.
    ``twin_index [N]`` (optional, e.g. :func:`~.trainer.rotation_twins`: each anchor's twin at the same
    place, class and size with the other rotation, ``-1`` for none) with ``twin_weight``: a background
    anchor whose twin is positive gets ``twin_weight`` times its classification weight (the wrong
    rotation on an object: a hard negative; 1: off).
    Returns ``{"cls", "box", "dir", "total"}`` with the weights of ``weights`` applied.
    """
    B, N, K = cls_preds.shape
    labels = labels.long()
    positives = labels > 0
    norm = positives.sum(dim=1, keepdim=True).clamp(min=1).float()  # [B, 1]
    cls_w = (labels >= 0).float() / norm
    if positive_weight is not None:
        cls_w = torch.where(positives, cls_w * positive_weight.to(cls_w.device, cls_w.dtype)[None, :], cls_w)
    if twin_index is not None and twin_weight != 1.0:
        twins = twin_index.to(labels.device)
        has = twins >= 0
        twin_pos = torch.zeros_like(positives)
        twin_pos[:, has] = positives[:, twins[has]]
        cls_w = torch.where((labels == 0) & twin_pos, cls_w * twin_weight, cls_w)
    one_hot = F.one_hot(labels.clamp(min=0), K + 1)[..., 1:].float()
    cls_loss = (sigmoid_focal_loss(cls_preds.float(), one_hot, weights.focal_alpha, weights.focal_gamma) * cls_w[..., None]).sum() / B

    pos_w = (1.0 / norm[:, 0])[torch.div(pos_index, N, rounding_mode="floor")]  # [P]
    if box_weight is not None:
        pos_w = pos_w * box_weight.to(pos_w.device, pos_w.dtype)
    bp = box_preds.reshape(B * N, -1)[pos_index].float()
    bp, bt = add_sin_difference(bp, box_targets.float())
    box_loss = (smooth_l1(bp - bt, weights.smooth_l1_beta).sum(dim=1) * pos_w).sum() / B

    dp = dir_preds.reshape(B * N, -1)[pos_index].float()
    dir_loss = (F.cross_entropy(dp, dir_targets.long(), reduction="none") * pos_w).sum() / B

    out = {"cls": cls_loss * weights.cls, "box": box_loss * weights.box, "dir": dir_loss * weights.dir}
    out["total"] = out["cls"] + out["box"] + out["dir"]
    return out


def distillation_loss(
    student: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    teacher: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
    weights: LossWeights = LossWeights(),
) -> dict[str, torch.Tensor]:
    """How far the ``student``'s head outputs are from the ``teacher``'s, per batch (knowledge distillation).

    ``student`` and ``teacher`` are ``(cls [B, N, K] logits, box [B, N, 7] codes, dir [B, N, D] logits)``
    as :func:`~.batched.flatten_head_batch` gives them (any float dtype; computed in float32); the
    teacher is detached (gradients reach the student only). ``labels [B, N]`` as in
    :func:`detection_loss`. With ``p = sigmoid(teacher cls)``, ``q = softmax(teacher dir)``:

    * ``kd_cls``: ``BCE(student cls, p) - BCE(teacher cls, p)`` (the Bernoulli KL divergence: the
      cross-entropy minus the teacher's own entropy, same gradient) summed over classes and cared
      anchors (``labels >= 0``);
    * ``kd_box``: smooth-L1 (``weights.smooth_l1_beta``) of the student's minus the teacher's codes, the
      yaw through :func:`add_sin_difference`, summed over the 7 codes, weighted per anchor by the
      teacher's best class probability ``max_k p`` (every anchor) and divided per frame by that weight's
      sum (the teacher's mass, at least 1): a mean over what the teacher sees, of the scale of
      :func:`detection_loss`'s box term however many anchors the grid has;
    * ``kd_dir``: ``sum_d q (log q - log_softmax(student dir))`` (cross-entropy against ``q`` minus its
      entropy), with the weights of ``kd_box``.

    ``kd_cls`` is divided per frame by the positive count (at least 1), as in :func:`detection_loss`; each
    is summed over frames, divided by ``B`` and weighted by ``weights.cls`` / ``box`` / ``dir``; all are 0
    where student == teacher.
    Returns float32 ``{"kd_cls", "kd_box", "kd_dir", "kd"}``, ``kd`` their sum.
    """
    s_cls, s_box, s_dir = (t.float() for t in student)
    t_cls, t_box, t_dir = (t.detach().float() for t in teacher)
    B = s_cls.shape[0]
    labels = labels.long()
    norm = (labels > 0).sum(dim=1, keepdim=True).clamp(min=1).float()  # [B, 1]
    p = torch.sigmoid(t_cls)
    cls_w = (labels >= 0).float() / norm  # [B, N]
    kl_cls = bce_with_logits(s_cls, p) - bce_with_logits(t_cls, p)
    cls_loss = (kl_cls * cls_w[..., None]).sum() / B

    conf = p.amax(dim=-1)  # [B, N]
    soft_w = conf / conf.sum(dim=1, keepdim=True).clamp(min=1.0)
    sb, tb = add_sin_difference(s_box, t_box)
    box_loss = (smooth_l1(sb - tb, weights.smooth_l1_beta).sum(dim=-1) * soft_w).sum() / B
    kl_dir = (F.softmax(t_dir, dim=-1) * (F.log_softmax(t_dir, dim=-1) - F.log_softmax(s_dir, dim=-1))).sum(dim=-1)
    dir_loss = (kl_dir * soft_w).sum() / B

    out = {"kd_cls": cls_loss * weights.cls, "kd_box": box_loss * weights.box, "kd_dir": dir_loss * weights.dir}
    out["kd"] = out["kd_cls"] + out["kd_box"] + out["kd_dir"]
    return out


def range_ramp(xy: torch.Tensor, far_weight: float, lo: float, hi: float) -> torch.Tensor:
    """``[N]`` float32 weights of points ``xy [N, >=2]`` (x, y in metres about the sensor): 1 at BEV
    range <= ``lo``, rising linearly to ``far_weight`` at range >= ``hi`` (``0 <= lo < hi``)."""
    r = torch.hypot(xy[:, 0].float(), xy[:, 1].float())
    t = ((r - lo) / (hi - lo)).clamp(0.0, 1.0)
    return 1.0 + (far_weight - 1.0) * t


def truncation_weight(truncation: torch.Tensor, cut_weight: float) -> torch.Tensor:
    """``[P]`` box weights of positives whose matched boxes have ``truncation [P]`` (0..1, the share
    outside the image): ``1 + (cut_weight - 1) * truncation`` (1 for whole objects, ``cut_weight`` for
    an object wholly outside; ``cut_weight`` 1: all 1)."""
    return 1.0 + (float(cut_weight) - 1.0) * truncation.float().clamp(0.0, 1.0)
