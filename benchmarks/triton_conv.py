"""Convolution + bias + ReLU as one Triton implicit GEMM over NHWC (channels_last) tensors.

``y = relu(conv2d(x, weight, bias, stride, padding))`` for the RPN's backbone (3x3) and upsampling
(1x1) convolutions, an alternative to cuDNN's fused call (:func:`~pointpillars_trt.model.
inference_rpn.conv_bias_relu`) measured by ``benchmarks/bench_triton_conv.py``: an experiment for
issue 18, not used by the package. The pointer-load kernel was measured on an H200 (2026-12-03:
slower than cuDNN on most layers, no gain over the backbone; docs/PERFORMANCE.md); the TMA-box
kernel (:func:`conv_bias_relu_tma`) was checked only in Triton's interpreter, never timed.

The GEMM: ``M = B * Ho * Wo`` output pixels (rows of the NHWC output), ``N = Cout``, ``K = KH * KW *
Cin`` with ``k = (kh * KW + kw) * Cin + c``. One program computes a ``BLOCK_M x BLOCK_N`` tile; its
A tile for a ``k`` block is ``BLOCK_K`` contiguous input channels of one tap for each of its
``BLOCK_M`` output pixels (zero outside the input: the padding). ``BLOCK_K`` divides ``Cin``, so a
``k`` block never straddles two taps. Products accumulate in float32 in a fixed order (no split
over ``K``, no atomics): the same inputs give the same bits on every run. The bias is added to the
float32 sum, the ReLU applied, and the result rounded once to the output's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

try:  # Triton ships with CUDA builds of torch; the CPU wheel has none
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None

from pointpillars_trt.model.triton_head import available  # noqa: E402  (whether Triton imports; re-exported)


@dataclass(frozen=True)
class TileConfig:
    """One launch configuration of :func:`conv_bias_relu_nhwc`: the tile ``block_m x block_n``,
    the ``k`` step ``block_k`` (must divide ``Cin``), ``num_warps`` and ``num_stages`` (software
    pipelining depth), and ``group_m`` (tiles of ``group_m`` row blocks share their column blocks
    in L2)."""

    block_m: int = 128
    block_n: int = 64
    block_k: int = 64
    num_warps: int = 4
    num_stages: int = 3
    group_m: int = 8
    pdl: bool = False

    def label(self) -> str:
        return f"{self.block_m}x{self.block_n}x{self.block_k}/w{self.num_warps}/s{self.num_stages}{'/pdl' if self.pdl else ''}"


if triton is not None:

    @triton.jit
    def _conv_bias_relu_kernel(x_ptr, w_ptr, b_ptr, y_ptr, M, H, W, Ho, Wo, N, C: tl.constexpr,
                               STRIDE: tl.constexpr, PAD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
                               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                               GROUP_M: tl.constexpr, PDL: tl.constexpr):
        pid = tl.program_id(0)
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        group = GROUP_M * num_pid_n
        first_m = (pid // group) * GROUP_M
        rows = tl.minimum(num_pid_m - first_m, GROUP_M)
        pid_m = first_m + (pid % group) % rows
        pid_n = (pid % group) // rows

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        m_ok = offs_m < M
        n_ok = offs_n < N
        ow = offs_m % Wo
        t = offs_m // Wo
        oh = t % Ho
        b = t // Ho
        ih0 = oh * STRIDE - PAD
        iw0 = ow * STRIDE - PAD
        if PDL:
            tl.extra.cuda.gdc_wait()
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        K: tl.constexpr = KH * KW * C
        for k in range(0, K, BLOCK_K):
            tap = k // C
            c0 = k - tap * C
            kh = tap // KW
            kw = tap - kh * KW
            ih = ih0 + kh
            iw = iw0 + kw
            ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            pix = ((b * H + ih) * W + iw).to(tl.int64) * C + c0
            a = tl.load(x_ptr + pix[:, None] + offs_k[None, :], mask=ok[:, None], other=0.0)
            wk = k + offs_k
            w = tl.load(w_ptr + wk[:, None] * N + offs_n[None, :], mask=n_ok[None, :], other=0.0)
            acc = tl.dot(a, w, acc)
        if PDL:
            tl.extra.cuda.gdc_launch_dependents()
        bias = tl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)
        acc = tl.maximum(acc + bias[None, :], 0.0)
        out = y_ptr + offs_m.to(tl.int64)[:, None] * N + offs_n[None, :]
        tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])

    @triton.jit
    def _conv_tma_kernel(x_desc, w_desc, b_ptr, y_desc, Ho, Wo, N, C: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
                         PAD: tl.constexpr, ROWS: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_N: tl.constexpr,
                         BLOCK_K: tl.constexpr, PDL: tl.constexpr):
        # stride 1: the A tile of a tap is one box of the NHWC input, ROWS output rows x BLOCK_W pixels shifted by
        # (kh - PAD, kw - PAD); the tensor-memory accelerator fills what lies outside the input with zeros (the padding)
        pid = tl.program_id(0)
        num_n = tl.cdiv(N, BLOCK_N)
        segs = tl.cdiv(Wo, BLOCK_W)
        bands = tl.cdiv(Ho, ROWS)
        pid_n = pid % num_n  # neighbouring programs share their A boxes in L2
        t = pid // num_n
        seg = t % segs
        t = t // segs
        band = t % bands
        b = t // bands
        oh0, ow0, n0 = band * ROWS, seg * BLOCK_W, pid_n * BLOCK_N
        if PDL:
            tl.extra.cuda.gdc_wait()
        acc = tl.zeros((ROWS * BLOCK_W, BLOCK_N), dtype=tl.float32)
        K: tl.constexpr = KH * KW * C
        for k in range(0, K, BLOCK_K):
            tap = k // C
            c0 = k - tap * C
            kh = tap // KW
            kw = tap - kh * KW
            a = x_desc.load([b, oh0 + kh - PAD, ow0 + kw - PAD, c0]).reshape(ROWS * BLOCK_W, BLOCK_K)
            w = w_desc.load([k, n0])
            acc = tl.dot(a, w, acc)
        if PDL:
            tl.extra.cuda.gdc_launch_dependents()
        offs_n = n0 + tl.arange(0, BLOCK_N)
        bias = tl.load(b_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)
        acc = tl.maximum(acc + bias[None, :], 0.0)
        y_desc.store([b, oh0, ow0, n0], acc.to(y_desc.dtype).reshape(1, ROWS, BLOCK_W, BLOCK_N))


@dataclass(frozen=True)
class TmaConfig:
    """A launch configuration of :func:`conv_bias_relu_tma`: tiles of ``rows x block_w`` output
    pixels by ``block_n`` channels, ``block_k`` input channels per step; ``pdl``: launched as a
    programmatic dependent launch (sm_90+) that waits for the kernel before it."""

    rows: int = 2
    block_w: int = 64
    block_n: int = 64
    block_k: int = 64
    num_warps: int = 4
    num_stages: int = 3
    pdl: bool = False

    def label(self) -> str:
        return f"tma{self.rows}x{self.block_w}x{self.block_n}x{self.block_k}/w{self.num_warps}/s{self.num_stages}{'/pdl' if self.pdl else ''}"


def conv_bias_relu_tma(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor, kernel: int, pad: int,
                       cfg: TmaConfig = TmaConfig(), out: torch.Tensor | None = None) -> torch.Tensor:
    """As :func:`conv_bias_relu_nhwc` for stride 1, with the A and B tiles and the output moved by
    TMA boxes (``triton.tools.tensor_descriptor``)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    bsz, cin, h, w = x.shape
    k_rows, cout = packed.shape
    if cin % cfg.block_k or k_rows != kernel * kernel * cin or not x.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"conv_bias_relu_tma: x {tuple(x.shape)} strides {x.stride()}, packed {tuple(packed.shape)}, {cfg}")
    ho, wo = out_size(h, kernel, 1, pad), out_size(w, kernel, 1, pad)
    if out is None:
        out = torch.empty((bsz, cout, ho, wo), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    xd = TensorDescriptor.from_tensor(x.permute(0, 2, 3, 1), [1, cfg.rows, cfg.block_w, cfg.block_k])
    wd = TensorDescriptor.from_tensor(packed, [cfg.block_k, cfg.block_n])
    yd = TensorDescriptor.from_tensor(out.permute(0, 2, 3, 1), [1, cfg.rows, cfg.block_w, cfg.block_n])
    grid = (bsz * triton.cdiv(ho, cfg.rows) * triton.cdiv(wo, cfg.block_w) * triton.cdiv(cout, cfg.block_n),)
    extra = {"launch_pdl": True} if cfg.pdl else {}
    _conv_tma_kernel[grid](xd, wd, bias, yd, ho, wo, cout, C=cin, KH=kernel, KW=kernel, PAD=pad, ROWS=cfg.rows,
                           BLOCK_W=cfg.block_w, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, PDL=cfg.pdl,
                           num_warps=cfg.num_warps, num_stages=cfg.num_stages, **extra)
    return out


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight [Cout, Cin, KH, KW]`` as the GEMM's B matrix ``[KH * KW * Cin, Cout]`` (row ``(kh *
    KW + kw) * Cin + c``), contiguous."""
    cout, cin, kh, kw = weight.shape
    return weight.permute(2, 3, 1, 0).reshape(kh * kw * cin, cout).contiguous()


def out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a convolution along one axis (no dilation)."""
    return (size + 2 * pad - kernel) // stride + 1


def conv_bias_relu_nhwc(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor, kernel: int, stride: int, pad: int,
                        cfg: TileConfig = TileConfig(), out: torch.Tensor | None = None) -> torch.Tensor:
    """``relu(conv2d(x, weight, bias, stride, pad))`` with a square ``kernel``; ``x [B, Cin, H, W]``
    channels_last (NHWC memory), ``packed`` from :func:`pack_weight` (``[kernel^2 * Cin, Cout]``, x's
    dtype), ``bias [Cout]``. Returns ``[B, Cout, Ho, Wo]`` channels_last in x's dtype (written into
    ``out`` when given: same shape, channels_last). ``cfg.block_k`` must divide ``Cin``."""
    if triton is None:
        raise RuntimeError("conv_bias_relu_nhwc needs Triton (not installed)")
    bsz, cin, h, w = x.shape
    if not x.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"conv_bias_relu_nhwc: x must be channels_last, strides {x.stride()}")
    if cin % cfg.block_k:
        raise ValueError(f"conv_bias_relu_nhwc: block_k {cfg.block_k} does not divide Cin {cin}")
    k_rows, cout = packed.shape
    if k_rows != kernel * kernel * cin:
        raise ValueError(f"conv_bias_relu_nhwc: packed weight {tuple(packed.shape)} for kernel {kernel}, Cin {cin}")
    ho, wo = out_size(h, kernel, stride, pad), out_size(w, kernel, stride, pad)
    if out is None:
        out = torch.empty((bsz, cout, ho, wo), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    m = bsz * ho * wo
    grid = (triton.cdiv(m, cfg.block_m) * triton.cdiv(cout, cfg.block_n),)
    _conv_bias_relu_kernel[grid](x, packed, bias, out, m, h, w, ho, wo, cout, C=cin,
                                 STRIDE=stride, PAD=pad, KH=kernel, KW=kernel,
                                 BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m, PDL=cfg.pdl,
                                 num_warps=cfg.num_warps, num_stages=cfg.num_stages, **({"launch_pdl": True} if cfg.pdl else {}))
    return out


__all__ = ["TileConfig", "TmaConfig", "available", "conv_bias_relu_nhwc", "conv_bias_relu_tma", "out_size", "pack_weight"]
