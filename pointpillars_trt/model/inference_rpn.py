"""The RPN in its inference form: BatchNorm folded, convolution + bias + ReLU fused, one head.

Same function as :class:`~pointpillars_trt.model.rpn.RPN` in eval mode (up to float rounding);
fewer passes over the activations:

* every eval BatchNorm is folded into the (transposed) convolution before it (weights scaled per
  output channel, a bias added): :func:`fold_batchnorm`;
* on CUDA every backbone convolution runs as one cuDNN call with its bias and ReLU fused
  (``torch.cudnn_convolution_relu``) instead of a convolution, a bias kernel and a ReLU kernel;
  elsewhere (CPU) the same arithmetic runs as ``conv2d`` + in-place ReLU;
* the three 1x1 heads (cls, box, dir) run as one convolution over the concatenated weights, and
  the outputs are channel slices of it (views, no copy).

Used by the GPU pipeline (``GpuPipeline(rpn="fused")``); the export path keeps the plain
:class:`RPN`, whose graph TensorRT fuses by itself.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .rpn import RPN


def fold_batchnorm(rpn: RPN) -> RPN:
    """A copy of ``rpn`` whose eval-mode BatchNorms are folded into the preceding (transposed)
    convolution and replaced by identities; ReLUs run in place. Same function in exact arithmetic."""
    rpn = copy.deepcopy(rpn)
    with torch.no_grad():
        for seq in list(rpn.blocks) + list(rpn.deblocks):
            mods = list(seq)
            for i, m in enumerate(mods):
                if isinstance(m, nn.ReLU):
                    m.inplace = True
                if not isinstance(m, nn.BatchNorm2d):
                    continue
                conv = mods[i - 1]
                scale = m.weight / torch.sqrt(m.running_var + m.eps)
                shift = m.bias - m.running_mean * scale
                if isinstance(conv, nn.ConvTranspose2d):  # weight [in, out, kh, kw]
                    conv.weight.mul_(scale.view(1, -1, 1, 1))
                else:  # weight [out, in, kh, kw]
                    conv.weight.mul_(scale.view(-1, 1, 1, 1))
                bias = shift if conv.bias is None else conv.bias * scale + shift
                conv.bias = nn.Parameter(bias.clone())
                seq[i] = nn.Identity()
    return rpn


def conv_bias_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: tuple[int, int],
                   padding: tuple[int, int]) -> torch.Tensor:
    """``relu(conv2d(x, weight, bias, stride, padding))``: one cuDNN call on CUDA, conv2d + in-place
    ReLU elsewhere. ``x [B, Cin, H, W]``, ``weight [Cout, Cin, kh, kw]``, ``bias [Cout]``."""
    if x.is_cuda and torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled:
        return torch.cudnn_convolution_relu(x, weight, bias, stride, padding, (1, 1), 1)
    return F.conv2d(x, weight, bias, stride, padding).relu_()


class InferenceRPN(nn.Module):
    """Eval-only RPN built from a trained :class:`RPN` (which is not modified).

    ``forward(canvas [B, C, ny, nx]) -> (cls, box, dir)`` with the shapes and channel order of
    :class:`RPN`; the three outputs are channel slices of one head tensor ``[B, A*(K+7+D), ...]``
    (``head_output`` keeps the last one for callers that want it whole).
    """

    def __init__(self, rpn: RPN) -> None:
        super().__init__()
        folded = fold_batchnorm(rpn.eval())
        self.convs = nn.ModuleList()  # per block: its Conv2d layers (BN folded, ReLU implied)
        for seq in folded.blocks:
            self.convs.append(nn.ModuleList([m for m in seq if isinstance(m, nn.Conv2d)]))
        self.deconvs = nn.ModuleList([next(m for m in seq if isinstance(m, nn.ConvTranspose2d)) for seq in folded.deblocks])
        heads = (folded.conv_cls, folded.conv_box, folded.conv_dir)
        self.splits = tuple(int(h.out_channels) for h in heads)
        w0 = heads[0].weight
        self.head = nn.Conv2d(heads[0].in_channels, sum(self.splits), 1, device=w0.device, dtype=w0.dtype)
        with torch.no_grad():
            self.head.weight.copy_(torch.cat([h.weight for h in heads]))
            self.head.bias.copy_(torch.cat([h.bias for h in heads]))

    def features(self, canvas: torch.Tensor) -> torch.Tensor:
        ups = []
        x = canvas
        for convs, deconv in zip(self.convs, self.deconvs):
            for conv in convs:
                x = conv_bias_relu(x, conv.weight, conv.bias, conv.stride, conv.padding)
            ups.append(F.conv_transpose2d(x, deconv.weight, deconv.bias, deconv.stride).relu_())
        return torch.cat(ups, dim=1)

    def head_output(self, canvas: torch.Tensor) -> torch.Tensor:
        """All head channels ``[B, A*K + A*7 + A*D, ny/s, nx/s]`` (cls, then box, then dir)."""
        return self.head(self.features(canvas))

    def forward(self, canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cls, box, dirs = torch.split(self.head_output(canvas), self.splits, dim=1)
        return cls, box, dirs


__all__ = ["InferenceRPN", "conv_bias_relu", "fold_batchnorm"]
