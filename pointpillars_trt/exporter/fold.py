"""BatchNorm folding: the exported graphs hold no BatchNormalization node.

BN in eval mode is ``y = x * s + t`` with ``s = gamma / sqrt(var + eps)`` and
``t = beta - mean * s``; it is folded into the preceding linear map's weights and bias.
Folding is done in float64 and rounded to float32 once.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..model import PillarFeatureNet, RPN


def bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` float64 ``[C]`` of an eval-mode BatchNorm."""
    var = bn.running_var.detach().double().cpu().numpy()
    mean = bn.running_mean.detach().double().cpu().numpy()
    gamma = bn.weight.detach().double().cpu().numpy() if bn.weight is not None else np.ones_like(var)
    beta = bn.bias.detach().double().cpu().numpy() if bn.bias is not None else np.zeros_like(var)
    s = gamma / np.sqrt(var + bn.eps)
    return s, beta - mean * s


def fold_pfn(pfn: PillarFeatureNet) -> tuple[np.ndarray, np.ndarray]:
    """PFN linear + BN -> ``(weight [C_in, C_out], bias [C_out])`` float32, so that
    ``BN(linear(x)) == x @ weight + bias``."""
    s, t = bn_scale_shift(pfn.norm)
    w = pfn.linear.weight.detach().double().cpu().numpy()  # [C_out, C_in]
    b = t if pfn.linear.bias is None else pfn.linear.bias.detach().double().cpu().numpy() * s + t
    return (w * s[:, None]).T.astype(np.float32), b.astype(np.float32)


def _fold_conv(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Module:
    s, t = bn_scale_shift(bn)
    w = conv.weight.detach().double()
    # Conv2d weight is [out, in/g, kh, kw]; ConvTranspose2d's is [in, out/g, kh, kw]
    axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    if axis == 1 and conv.groups != 1:
        raise NotImplementedError("folding BN into a grouped transposed convolution")
    shape = [1] * w.ndim
    shape[axis] = -1
    new_w = w * torch.from_numpy(s).view(shape)
    b0 = conv.bias.detach().double().cpu().numpy() if conv.bias is not None else 0.0
    new_b = b0 * s + t
    folded = copy.deepcopy(conv)
    folded.weight = nn.Parameter(new_w.float())
    folded.bias = nn.Parameter(torch.from_numpy(new_b).float())
    return folded


def fold_sequential(seq: nn.Sequential) -> nn.Sequential:
    """A copy of ``seq`` with each (conv, BatchNorm2d) pair merged into one conv with bias."""
    out: list[nn.Module] = []
    mods = list(seq)
    i = 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(nxt, nn.BatchNorm2d):
            out.append(_fold_conv(m, nxt))
            i += 2
        else:
            out.append(copy.deepcopy(m))
            i += 1
    return nn.Sequential(*out)


def fold_rpn(rpn: RPN) -> RPN:
    """An eval-mode copy of ``rpn`` whose blocks and deblocks have no BatchNorm left."""
    folded = copy.deepcopy(rpn).eval()
    folded.blocks = nn.ModuleList(fold_sequential(b) for b in rpn.blocks)
    folded.deblocks = nn.ModuleList(fold_sequential(b) for b in rpn.deblocks)
    return folded.eval()
