"""The RPN in its inference form: BatchNorm folded, convolution + bias + ReLU fused, one head.

Same function as :class:`~pointpillars_trt.model.rpn.RPN` in eval mode (up to float rounding);
fewer passes over the activations:

* every eval BatchNorm is folded into the (transposed) convolution before it (weights scaled per
  output channel, a bias added): :func:`fold_batchnorm`;
* on CUDA every backbone convolution runs as one cuDNN call with its bias and ReLU fused
  (``torch.cudnn_convolution_relu``) instead of a convolution, a bias kernel and a ReLU kernel;
  elsewhere (CPU) the same arithmetic runs as ``conv2d`` + in-place ReLU;
* each upsampling transposed convolution (kernel = stride = s) runs as a 1x1 convolution to
  ``Cout * s * s`` channels with the same fused bias + ReLU, and its depth-to-space rearrangement
  is the copy into the concatenated feature map that the ``torch.cat`` made anyway (no separate
  bias, ReLU or cat pass);
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


UPSAMPLE_MODES = ("conv", "deconv")


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


def deconv_as_conv(deconv: nn.ConvTranspose2d) -> nn.Conv2d:
    """The 1x1 convolution equal to a transposed convolution whose kernel equals its stride ``s``
    (no padding, no overlap) followed by depth-to-space. Output channels are ordered
    (sub-row ``i``, sub-column ``j``, channel ``o``): channel ``(i*s + j)*Cout + o`` of pixel
    ``(h, w)`` is channel ``o`` of output pixel ``(h*s + i, w*s + j)``, so in NHWC memory each
    (i, j) is one contiguous run of ``Cout`` values. The bias is repeated ``s*s`` times."""
    s = int(deconv.stride[0])
    if tuple(deconv.kernel_size) != (s, s) or tuple(deconv.stride) != (s, s) or tuple(deconv.padding) != (0, 0) or deconv.groups != 1:
        raise ValueError(f"deconv_as_conv: needs kernel == stride, no padding, one group; got {deconv}")
    w = deconv.weight  # [Cin, Cout, s, s]
    cin, cout = w.shape[0], w.shape[1]
    conv = nn.Conv2d(cin, cout * s * s, 1, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        conv.weight.copy_(w.permute(2, 3, 1, 0).reshape(cout * s * s, cin, 1, 1))
        bias = deconv.bias if deconv.bias is not None else torch.zeros(cout, device=w.device, dtype=w.dtype)
        conv.bias.copy_(bias.repeat(s * s))
    return conv


def depth_to_space_into(y: torch.Tensor, out: torch.Tensor, s: int) -> None:
    """Write ``y [N, s*s*Cout, h, w]`` (channels ordered as :func:`deconv_as_conv` makes them) into
    ``out [N, Cout, h*s, w*s]`` (a channel slice of a larger map is fine): one copy; with
    channels_last tensors both sides move runs of ``Cout`` contiguous values."""
    if y.is_cuda:
        from ..network.depth_to_space import depth_to_space_cuda, fits

        if fits(y, out, s):  # our kernel: 16-byte runs (torch's strided 6-D copy is ~5x slower here)
            depth_to_space_cuda(y, out, s)
            return
    n, c, h, w = y.shape
    cout = c // (s * s)
    src = y.permute(0, 2, 3, 1).unflatten(3, (s, s, cout)).permute(0, 1, 3, 2, 4, 5)  # [N, h, i, w, j, Cout]
    dst = out.permute(0, 2, 3, 1).unflatten(1, (h, s)).unflatten(3, (w, s))  # [N, h, i, w, j, Cout] view
    dst.copy_(src)


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

    def __init__(self, rpn: RPN, upsample: str = "conv") -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"InferenceRPN: upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.upsample = upsample
        folded = fold_batchnorm(rpn.eval())
        self.convs = nn.ModuleList()  # per block: its Conv2d layers (BN folded, ReLU implied)
        for seq in folded.blocks:
            self.convs.append(nn.ModuleList([m for m in seq if isinstance(m, nn.Conv2d)]))
        self.ups = nn.ModuleList()  # per block: the transposed convolution as a 1x1 convolution (see deconv_as_conv)
        self.up_strides: list[int] = []
        for seq in folded.deblocks:
            deconv = next(m for m in seq if isinstance(m, nn.ConvTranspose2d))
            self.ups.append(deconv_as_conv(deconv) if upsample == "conv" else deconv)
            self.up_strides.append(int(deconv.stride[0]))
        heads = (folded.conv_cls, folded.conv_box, folded.conv_dir)
        self.splits = tuple(int(h.out_channels) for h in heads)
        w0 = heads[0].weight
        self.head = nn.Conv2d(heads[0].in_channels, sum(self.splits), 1, device=w0.device, dtype=w0.dtype)
        with torch.no_grad():
            self.head.weight.copy_(torch.cat([h.weight for h in heads]))
            self.head.bias.copy_(torch.cat([h.bias for h in heads]))

    def features(self, canvas: torch.Tensor) -> torch.Tensor:
        out, ups = None, []
        x, offset = canvas, 0
        for convs, up, s in zip(self.convs, self.ups, self.up_strides):
            for conv in convs:
                x = conv_bias_relu(x, conv.weight, conv.bias, conv.stride, conv.padding)
            if self.upsample == "deconv":
                ups.append(F.conv_transpose2d(x, up.weight, up.bias, up.stride).relu_())
                continue
            y = conv_bias_relu(x, up.weight, up.bias, (1, 1), (0, 0))  # [N, s*s*Cout, h, w]
            n, c, h, w = y.shape
            cout = c // (s * s)
            if out is None:  # the concatenated map, allocated once the first upsampled size is known
                fmt = torch.channels_last if canvas.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
                out = torch.empty((n, self.head.in_channels, h * s, w * s), dtype=y.dtype, device=y.device, memory_format=fmt)
            depth_to_space_into(y, out[:, offset:offset + cout], s)
            offset += cout
        if self.upsample == "deconv":
            return torch.cat(ups, dim=1)
        return out

    def head_output(self, canvas: torch.Tensor) -> torch.Tensor:
        """All head channels ``[B, A*K + A*7 + A*D, ny/s, nx/s]`` (cls, then box, then dir)."""
        return self.head(self.features(canvas))

    def forward(self, canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cls, box, dirs = torch.split(self.head_output(canvas), self.splits, dim=1)
        return cls, box, dirs


__all__ = ["InferenceRPN", "UPSAMPLE_MODES", "conv_bias_relu", "deconv_as_conv", "depth_to_space_into", "fold_batchnorm"]
