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
  the outputs are channel slices of it (views, no copy);
* on CUDA (channels_last) the concatenated full-resolution map is not even written (``split_head``,
  the default): the head is 1x1 and linear, so ``head(concat_k d2s(y_k)) = bias + sum_k d2s(W_k y_k)``
  with ``W_k`` the head weight's columns for branch ``k``. Each ``y_k`` times ``W_k^T`` is one GEMM on
  views whose product stays in float32 (fp16 inputs, fp32 accumulation and output:
  :func:`branch_product`), and one kernel adds the bias and the products, already in sub-pixel order
  with only the head's channels, in float32 and rounds once to the head's dtype:
  :func:`head_without_concat`. So in float16 the head is rounded once, as the convolution over the
  concatenated map rounds it (an earlier form rounded each branch's fp16 product before the sum and
  lost FP16-vs-FP32 box agreement: worst real frame 86.7 % against 97.4 %).
* on CUDA in float16 with Triton (``fused_neck``, the default), the upsampling convolutions and the
  head run as one Triton kernel (:func:`~pointpillars_trt.model.triton_head.neck_head`): neither the
  upsampled branches nor the float32 products are written to memory; the same arithmetic (the
  branches rounded to float16 after their bias and ReLU, float32 products and sums, one rounding).

Used by the device executor's torch networks (``network/device.py``, ``rpn="fused"``); the export
path keeps the plain :class:`RPN`, whose graph TensorRT fuses by itself.
"""

from __future__ import annotations

import copy
import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .rpn import RPN


UPSAMPLE_MODES = ("conv", "deconv")


def folded_conv(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(weight, bias)`` of ``conv`` with eval-mode ``bn`` (running statistics) folded in (``conv``'s own
    when ``bn`` is None), float32, differentiable in the conv weight and BN's affine parameters (QAT
    fine-tunes through it). Weight ``[out, in, kh, kw]``, or ``[in, out, kh, kw]`` for a transposed one."""
    if bn is None:
        return conv.weight, conv.bias
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
    return conv.weight * scale.view(shape), shift if conv.bias is None else conv.bias * scale + shift


def fold_batchnorm(rpn: RPN) -> RPN:
    """A copy of ``rpn`` whose eval-mode BatchNorms are folded into the preceding (transposed)
    convolution (:func:`folded_conv`) and replaced by identities; ReLUs run in place. Same function
    in exact arithmetic."""
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
                weight, bias = folded_conv(conv, m)
                conv.weight, conv.bias = nn.Parameter(weight), nn.Parameter(bias.clone())
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


def add_depth_to_space_into(out: torch.Tensor, terms: list[tuple[torch.Tensor, int]], bias: torch.Tensor | None = None) -> None:
    """``out [N, H, Hs, Ws] = (bias if given else 0) + sum_k d2s(z_k)``, where each term ``(z_k,
    s_k)`` holds ``N*Hs*Ws*H`` values in rows ``(n, y, x, i, j)`` of ``H`` channels (``y < Hs/s_k``,
    ``x < Ws/s_k``, sub-pixel ``(i, j)``): its row ``(n, y, x, i, j)`` lands on output pixel
    ``(y*s_k + i, x*s_k + j)``. Summed in the terms' dtype (float32 for a float16 ``out``) in the
    order bias, ``z_0``, ``z_1``, ..., then rounded once into ``out``: on CUDA one kernel (per four
    terms), elsewhere torch's adds on views of one accumulator."""
    if out.is_cuda:
        from ..network.depth_to_space import add_fits, depth_to_space_add_cuda

        if add_fits(out, terms, bias):
            depth_to_space_add_cuda(out, terms, bias)
            return
    n, hc, hs, ws = out.shape
    acc = torch.zeros((n, hs, ws, hc), dtype=terms[0][0].dtype if terms else out.dtype, device=out.device)
    if bias is not None:
        acc += bias.to(acc.dtype)  # 0 + bias: exact
    for z, s in terms:
        src = z.view(n, hs // s, ws // s, s, s, hc).permute(0, 1, 3, 2, 4, 5)  # [N, h, i, w, j, H]
        acc.view(n, hs // s, s, ws // s, s, hc).add_(src)
    out.permute(0, 2, 3, 1).copy_(acc)


@functools.lru_cache(maxsize=None)
def has_float32_gemm_output() -> bool:
    """Whether this torch has cuBLAS GEMMs with float16 inputs and a float32 output (``torch.mm(a,
    b, out_dtype=torch.float32)``, the ``aten::mm.dtype`` overload, torch >= 2.8)."""
    return hasattr(torch.ops.aten.mm, "dtype")


def branch_product(rows: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """``rows [M, Cout] @ wt [Cout, H] -> [M, H]``, float32 for float16/bfloat16 inputs (the
    products of two float16 values are exact in float32, the sums run in float32 and nothing is
    rounded to float16): on CUDA one cuBLAS GEMM with a float32 output (see
    :func:`has_float32_gemm_output`), elsewhere the same in float32 after an upcast. Other dtypes:
    a GEMM in their own dtype."""
    if rows.dtype not in (torch.float16, torch.bfloat16):
        return torch.mm(rows, wt)
    if rows.is_cuda:
        return torch.mm(rows, wt, out_dtype=torch.float32)
    return torch.mm(rows.float(), wt.float())


def head_without_concat(ys: list[torch.Tensor], strides: list[int], weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The 1x1 head ``weight [H, sum_k Cout_k]``, ``bias [H]`` over the concatenation of the
    depth-to-space'd branches ``ys[k] [N, s_k*s_k*Cout_k, h_k, w_k]`` (channels ordered as
    :func:`deconv_as_conv` makes them, ``h_k*s_k`` equal for all ``k``), without building that
    concatenation: ``bias + sum_k d2s(y_k^T W_k^T)`` with ``W_k`` the weight's columns of branch
    ``k``. A channels_last ``y_k`` viewed as rows ``(n, y, x, i, j)`` of ``Cout_k`` values is a
    matrix (no copy); its product with ``W_k^T`` (:func:`branch_product`: float32 for float16
    inputs) has rows of ``H`` values in the same order, and :func:`add_depth_to_space_into` sums the
    bias and all products and rounds once. Returns ``[N, H, h_0*s_0, w_0*s_0]``, channels_last, in
    ``ys``' dtype."""
    n, _, h, w = ys[0].shape
    hc = weight.shape[0]
    out = torch.empty((n, hc, h * strides[0], w * strides[0]), dtype=ys[0].dtype, device=ys[0].device, memory_format=torch.channels_last)
    terms, offset = [], 0
    with torch.no_grad():  # eval only
        for y, s in zip(ys, strides):
            cout = y.shape[1] // (s * s)
            rows = y.permute(0, 2, 3, 1).reshape(-1, cout)  # channels_last: a view
            terms.append((branch_product(rows, weight[:, offset:offset + cout].t()), s))  # [Cout_k, H] weight: a view
            offset += cout
        add_depth_to_space_into(out, terms, bias)
    return out


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
    (``head_output`` keeps the last one for callers that want it whole). ``fused_neck`` (default
    True): on CUDA in float16 with Triton installed and a geometry the kernel fits, the upsampling
    convolutions and the head run as one Triton kernel (:meth:`fuses_neck_on`). Otherwise
    ``split_head`` (default True): on CUDA with channels_last branches and a head width that is a
    multiple of 4, the head runs per branch (:func:`head_without_concat`, products kept in float32)
    instead of over the concatenated map; elsewhere, and with ``split_head=False``, over the
    concatenated map as one convolution.
    """

    def __init__(self, rpn: RPN, upsample: str = "conv", split_head: bool = True, fused_neck: bool = True) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"InferenceRPN: upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.upsample = upsample
        self.split_head = bool(split_head)
        self.fused_neck = bool(fused_neck)
        self._neck: tuple | None = None  # (the weights' placement, PackedNeckHead), made on first use
        self._neck_ran = False  # the fused kernel has run once (compiled) on this module
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

    def blocks(self, canvas: torch.Tensor) -> list[torch.Tensor]:
        """Each backbone block's output ``[N, C_k, h_k, w_k]`` (the input of its upsampling)."""
        xs, x = [], canvas
        for convs in self.convs:
            for conv in convs:
                x = conv_bias_relu(x, conv.weight, conv.bias, conv.stride, conv.padding)
            xs.append(x)
        return xs

    def upsampled(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """:meth:`branches` from the block outputs ``xs``."""
        if self.upsample == "deconv":
            return [F.conv_transpose2d(x, up.weight, up.bias, up.stride).relu_() for x, up in zip(xs, self.ups)]
        return [conv_bias_relu(x, up.weight, up.bias, (1, 1), (0, 0)) for x, up in zip(xs, self.ups)]

    def branches(self, canvas: torch.Tensor) -> list[torch.Tensor]:
        """Each block's upsampling output before depth-to-space, ReLU applied: ``[N, s*s*Cout, h, w]``
        (channels as :func:`deconv_as_conv` orders them; ``upsample="deconv"``: ``[N, Cout, h*s, w*s]``)."""
        return self.upsampled(self.blocks(canvas))

    def may_fuse_neck(self, x: torch.Tensor) -> bool:
        """Whether the fused kernel can run at all on block outputs like ``x``, before their geometry:
        ``fused_neck``, upsampling as 1x1 convolutions, a CUDA float16 tensor, Triton importable."""
        if not (self.fused_neck and self.upsample == "conv" and x.is_cuda and x.dtype == torch.float16):
            return False
        from . import triton_head

        return triton_head.available()

    def pack_neck(self):
        """The upsampling and head weights laid out for the fused kernel
        (:meth:`~pointpillars_trt.model.triton_head.PackedNeckHead.from_weights`)."""
        from .triton_head import PackedNeckHead

        with torch.no_grad():
            return PackedNeckHead.from_weights([(u.weight, u.bias) for u in self.ups], self.up_strides,
                                               self.head.weight[:, :, 0, 0], self.head.bias)

    def packed_neck(self, xs: list[torch.Tensor]):
        """The :class:`~pointpillars_trt.model.triton_head.PackedNeckHead` the fused kernel runs for
        the block outputs ``xs``, or None where it does not run (see :meth:`fuses_neck_on`). Packed
        once per placement of the weights (the module is eval-only: its weights do not change)."""
        if not self.may_fuse_neck(xs[0]):
            return None
        from . import triton_head

        key = (self.head.weight.data_ptr(), self.head.weight.dtype, tuple(u.weight.data_ptr() for u in self.ups))
        if self._neck is None or self._neck[0] != key:
            self._neck = (key, self.pack_neck())
        packed = self._neck[1]
        return packed if triton_head.unfit(xs, packed, triton_head.DEFAULT_TILES) is None else None

    def fuses_neck_on(self, xs: list[torch.Tensor]) -> bool:
        """Whether :meth:`head_output` runs the upsampling and the head as one Triton kernel for these
        block outputs: :meth:`may_fuse_neck`, and a geometry the kernel fits
        (:func:`~pointpillars_trt.model.triton_head.unfit`: one to three branches, channels_last,
        strides that divide the largest, which divides the map)."""
        return self.packed_neck(xs) is not None

    def head_form(self, canvas: torch.Tensor) -> str:
        """The head :meth:`head_output` runs on ``canvas``: ``fused`` (:meth:`fuses_neck_on`), ``split``
        (:meth:`splits_head_on`) or ``concat`` (one convolution over the concatenated map). Runs the
        backbone (and, unless fused, the upsampling) once to ask."""
        xs = self.blocks(canvas)
        if self.fuses_neck_on(xs):
            return "fused"
        return "split" if self.splits_head_on(self.upsampled(xs)) else "concat"

    def concat(self, ys: list[torch.Tensor]) -> torch.Tensor:
        """The concatenated full-resolution map ``[N, sum Cout, H, W]`` of :meth:`branches`' outputs
        (channels_last when they are)."""
        if self.upsample == "deconv":
            return torch.cat(ys, dim=1)
        n, _, h, w = ys[0].shape
        s0 = self.up_strides[0]
        fmt = torch.channels_last if ys[0].is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        out = torch.empty((n, self.head.in_channels, h * s0, w * s0), dtype=ys[0].dtype, device=ys[0].device, memory_format=fmt)
        offset = 0
        for y, s in zip(ys, self.up_strides):
            cout = y.shape[1] // (s * s)
            depth_to_space_into(y, out[:, offset:offset + cout], s)
            offset += cout
        return out

    def features(self, canvas: torch.Tensor) -> torch.Tensor:
        """The concatenated map the head reads (``[N, sum Cout, ny/s, nx/s]``)."""
        return self.concat(self.branches(canvas))

    def splits_head_on(self, ys: list[torch.Tensor]) -> bool:
        """Whether :meth:`head_output` runs the head per branch for these branch outputs: ``split_head``,
        upsampling as 1x1 convolutions, CUDA float16/float32 channels_last tensors, a head width that
        is a multiple of 4 (the add kernel's quads), and for float16 GEMMs with a float32 output."""
        y0 = ys[0]
        if not (self.split_head and self.upsample == "conv" and y0.is_cuda and y0.dtype in (torch.float16, torch.float32)):
            return False
        from ..network.depth_to_space import QUAD

        if self.head.out_channels % QUAD or (y0.dtype == torch.float16 and not has_float32_gemm_output()):
            return False
        return all(y.is_contiguous(memory_format=torch.channels_last) for y in ys)

    def head_output(self, canvas: torch.Tensor) -> torch.Tensor:
        """All head channels ``[B, A*K + A*7 + A*D, ny/s, nx/s]`` (cls, then box, then dir)."""
        xs = self.blocks(canvas)
        packed = self.packed_neck(xs)
        if packed is not None:
            from .triton_head import DEFAULT_TILES, neck_head

            try:  # the first call compiles the kernel (outside any graph capture: warm-up runs first)
                out = neck_head(xs, packed, DEFAULT_TILES)
            except Exception as exc:
                if self._neck_ran:  # it ran before: not a kernel this GPU or Triton cannot build
                    raise
                warnings.warn(f"InferenceRPN: the fused upsampling + head kernel failed ({type(exc).__name__}: "
                              f"{(str(exc).strip().splitlines() or [''])[0][:200]}); running the per-branch head instead",
                              RuntimeWarning, stacklevel=2)
                self.fused_neck = False
            else:
                self._neck_ran = True
                return out
        ys = self.upsampled(xs)
        if self.splits_head_on(ys):
            return head_without_concat(ys, self.up_strides, self.head.weight[:, :, 0, 0], self.head.bias)
        return self.head(self.concat(ys))

    def forward(self, canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cls, box, dirs = torch.split(self.head_output(canvas), self.splits, dim=1)
        return cls, box, dirs


__all__ = ["InferenceRPN", "UPSAMPLE_MODES", "add_depth_to_space_into", "branch_product", "conv_bias_relu", "deconv_as_conv",
           "depth_to_space_into", "fold_batchnorm", "folded_conv", "has_float32_gemm_output", "head_without_concat"]
