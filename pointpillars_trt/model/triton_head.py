"""The RPN's upsampling convolutions and its head in one Triton kernel (float16, channels_last).

What :class:`~pointpillars_trt.model.inference_rpn.InferenceRPN` computes after its backbone, for
branches ``k`` with block outputs ``x_k [B, Cin_k, Hf/s_k, Wf/s_k]`` and upsampling strides ``s_k``:

    y_k  = relu(x_k W_up_k^T + b_up_k)            (the 1x1 convolution to s_k^2 * Cout_k channels;
                                                   float32 sum, rounded once to float16 like cuDNN's)
    head = b_head + sum_k d2s(y_k) W_head_k^T      (float32 products and sums, rounded once)

with ``d2s`` the depth-to-space of :func:`~pointpillars_trt.model.inference_rpn.deconv_as_conv`.
Neither ``y_k`` nor the float32 products are written to memory: one program takes ``BLOCK_M``
full-resolution pixels that share their position inside the coarsest branch's ``S x S`` cell
(``S = max s_k``), so for every branch they share the sub-pixel ``(Y mod s_k, X mod s_k)`` and thus
the ``Cout_k`` rows of ``W_up_k`` they need: each branch is two chained matrix products on tiles
(``[BLOCK_M, Cin_k] x [Cin_k, Cout_k]``, then ``[BLOCK_M, Cout_k] x [Cout_k, HP]``), accumulated in
float32 in a fixed order (no atomics: the same inputs give the same bits on every run).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

try:  # Triton ships with CUDA builds of torch; the CPU wheel has none
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None


@dataclass(frozen=True)
class HeadTiles:
    """Launch configuration of :func:`neck_head`: ``block_m`` pixels per program, ``block_k``
    input channels per step of the upsampling product (a branch with fewer takes all of its
    ``Cin`` in one step), ``num_warps``, ``num_stages``."""

    block_m: int = 64  # the defaults: the fastest of 12 tile choices at batch 1 and 16 on an H200 (docs/PERFORMANCE.md)
    block_k: int = 32
    num_warps: int = 4
    num_stages: int = 3

    def label(self) -> str:
        return f"head{self.block_m}x{self.block_k}/w{self.num_warps}/s{self.num_stages}"


def available() -> bool:
    """Whether Triton is importable (it is not in the CPU wheel of torch)."""
    return triton is not None


def next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


if triton is not None:

    @triton.jit
    def _branch(z, x_ptr, wu_ptr, bu_ptr, wh_ptr, b, Y, X, ok, Hf, Wf, i, j,
                S: tl.constexpr, CIN: tl.constexpr, COUT: tl.constexpr, HP: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
        hk = Hf // S
        wk = Wf // S
        sub = (i % S) * S + (j % S)  # the same for every pixel of the program
        row = ((b * hk + Y // S) * wk + X // S).to(tl.int64) * CIN
        offs_k = tl.arange(0, BLOCK_K)
        offs_o = tl.arange(0, COUT)
        acc = tl.zeros((BLOCK_M, COUT), dtype=tl.float32)
        for c0 in range(0, CIN, BLOCK_K):
            a = tl.load(x_ptr + row[:, None] + c0 + offs_k[None, :], mask=ok[:, None], other=0.0)
            w = tl.load(wu_ptr + ((sub * CIN + c0 + offs_k) * COUT)[:, None] + offs_o[None, :])
            acc = tl.dot(a, w, acc)
        bias = tl.load(bu_ptr + sub * COUT + offs_o).to(tl.float32)
        y = tl.maximum(acc + bias[None, :], 0.0).to(x_ptr.dtype.element_ty)
        wh = tl.load(wh_ptr + offs_o[:, None] * HP + tl.arange(0, HP)[None, :])
        return tl.dot(y, wh, z)

    @triton.jit
    def _neck_head_kernel(x0, wu0, bu0, wh0, x1, wu1, bu1, wh1, x2, wu2, bu2, wh2, bh_ptr, out_ptr, Hc, Wc,
                          NB: tl.constexpr, S: tl.constexpr, H_OUT: tl.constexpr, HP: tl.constexpr,
                          S0: tl.constexpr, CIN0: tl.constexpr, COUT0: tl.constexpr, BK0: tl.constexpr,
                          S1: tl.constexpr, CIN1: tl.constexpr, COUT1: tl.constexpr, BK1: tl.constexpr,
                          S2: tl.constexpr, CIN2: tl.constexpr, COUT2: tl.constexpr, BK2: tl.constexpr,
                          BLOCK_M: tl.constexpr):
        pid = tl.program_id(0)
        cells = Hc * Wc
        tiles = tl.cdiv(cells, BLOCK_M)
        tile = pid % tiles
        t = pid // tiles
        sub = t % (S * S)
        b = t // (S * S)
        i = sub // S
        j = sub - i * S
        offs = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        ok = offs < cells
        Y = (offs // Wc) * S + i
        X = (offs % Wc) * S + j
        Hf = Hc * S
        Wf = Wc * S
        z = tl.zeros((BLOCK_M, HP), dtype=tl.float32)
        z = _branch(z, x0, wu0, bu0, wh0, b, Y, X, ok, Hf, Wf, i, j, S0, CIN0, COUT0, HP, BLOCK_M, BK0)
        if NB > 1:
            z = _branch(z, x1, wu1, bu1, wh1, b, Y, X, ok, Hf, Wf, i, j, S1, CIN1, COUT1, HP, BLOCK_M, BK1)
        if NB > 2:
            z = _branch(z, x2, wu2, bu2, wh2, b, Y, X, ok, Hf, Wf, i, j, S2, CIN2, COUT2, HP, BLOCK_M, BK2)
        offs_h = tl.arange(0, HP)
        bias = tl.load(bh_ptr + offs_h, mask=offs_h < H_OUT, other=0.0).to(tl.float32)
        z = z + bias[None, :]
        pix = ((b * Hf + Y) * Wf + X).to(tl.int64) * H_OUT
        tl.store(out_ptr + pix[:, None] + offs_h[None, :], z.to(out_ptr.dtype.element_ty),
                 mask=ok[:, None] & (offs_h < H_OUT)[None, :])


@dataclass(frozen=True)
class PackedNeckHead:
    """The weights of the upsampling convolutions and the head, laid out for :func:`neck_head`:
    per branch ``up [s^2, Cin, Cout]`` (sub-pixel ``i * s + j``), ``up_bias [s^2 * Cout]`` and
    ``head [Cout, HP]`` (this branch's columns of the head weight, transposed, zero-padded to
    ``HP = next_pow2(H)`` columns); ``bias [H]``; ``strides`` and ``couts`` per branch."""

    up: tuple[torch.Tensor, ...]
    up_bias: tuple[torch.Tensor, ...]
    head: tuple[torch.Tensor, ...]
    bias: torch.Tensor
    strides: tuple[int, ...]
    couts: tuple[int, ...]
    width: int

    @staticmethod
    def from_weights(ups: list[tuple[torch.Tensor, torch.Tensor]], strides: list[int], head_weight: torch.Tensor,
                     head_bias: torch.Tensor) -> "PackedNeckHead":
        """``ups``: per branch the 1x1 convolution ``(weight [s^2 * Cout, Cin, 1, 1], bias [s^2 * Cout])``
        of :func:`~pointpillars_trt.model.inference_rpn.deconv_as_conv`; ``head_weight [H, sum Cout]``,
        ``head_bias [H]``."""
        hc = int(head_weight.shape[0])
        hp = next_pow2(max(16, hc))
        packs, biases, heads, couts, offset = [], [], [], [], 0
        for (w, bias), s in zip(ups, strides):
            cin = int(w.shape[1])
            cout = int(w.shape[0]) // (s * s)
            packs.append(w.reshape(s * s, cout, cin).permute(0, 2, 1).contiguous())
            biases.append(bias.contiguous())
            h = torch.zeros((cout, hp), dtype=head_weight.dtype, device=head_weight.device)
            h[:, :hc] = head_weight[:, offset:offset + cout].t()
            heads.append(h)
            couts.append(cout)
            offset += cout
        return PackedNeckHead(tuple(packs), tuple(biases), tuple(heads), head_bias.contiguous(), tuple(int(s) for s in strides),
                              tuple(couts), hc)


DEFAULT_TILES = HeadTiles()


def step_k(cin: int, tiles: HeadTiles) -> int:
    """The input channels one step of a branch's upsampling product takes: ``block_k``, or all of a
    smaller ``Cin`` (the product's K; a power of two of at least 16 for the tensor cores)."""
    return min(tiles.block_k, cin)


def unfit(xs: list[torch.Tensor], packed: PackedNeckHead, tiles: HeadTiles) -> str | None:
    """Why :func:`neck_head` cannot run on the block outputs ``xs`` with ``packed`` and ``tiles``, or
    None when it can: one to three branches, each channels_last with the packed weights' channels,
    strides that divide the largest ``S``, which divides the full-resolution map, ``Cin_k`` a
    multiple of its step (:func:`step_k`), each ``Cout_k`` and each step a power of two of at least
    16; tensors on one device, of one dtype."""
    nb = len(xs)
    if not 1 <= nb <= 3 or nb != len(packed.strides):
        return f"{nb} branches for {len(packed.strides)} packed ones (the kernel takes 1 to 3)"
    big = max(packed.strides)
    _, _, h0, w0 = xs[0].shape
    hf, wf = h0 * packed.strides[0], w0 * packed.strides[0]
    if hf % big or wf % big:
        return f"a {hf} x {wf} map is not a whole number of {big} x {big} cells"
    for cout in packed.couts:
        if cout < 16 or cout & (cout - 1):
            return f"upsampling width {cout} is not a power of two of at least 16"
    for x, s, up in zip(xs, packed.strides, packed.up):
        k = step_k(int(x.shape[1]), tiles)
        if k < 16 or k & (k - 1):
            return f"branch {tuple(x.shape)}: a step of {k} input channels is not a power of two of at least 16"
        if big % s or tuple(x.shape[2:]) != (hf // s, wf // s) or x.shape[1] != up.shape[1] or x.shape[1] % k:
            return f"branch {tuple(x.shape)}, stride {s}: does not fit a {hf} x {wf} map of {big} x {big} cells with {tiles}"
        if not x.is_contiguous(memory_format=torch.channels_last) or x.dtype != xs[0].dtype or x.device != up.device:
            return f"branch {tuple(x.shape)}: needs channels_last {xs[0].dtype} on {up.device}, got strides {x.stride()} {x.dtype} {x.device}"
    return None


def neck_head(xs: list[torch.Tensor], packed: PackedNeckHead, tiles: HeadTiles = DEFAULT_TILES,
              out: torch.Tensor | None = None) -> torch.Tensor:
    """The head ``[B, H, Hf, Wf]`` (channels_last, xs' dtype) from the block outputs ``xs[k] [B,
    Cin_k, Hf/s_k, Wf/s_k]`` (channels_last): see the module docstring and :func:`unfit`. Enqueued
    on torch's current stream (capturable in a CUDA graph once compiled)."""
    if triton is None:
        raise RuntimeError("neck_head needs Triton (not installed)")
    if (why := unfit(xs, packed, tiles)) is not None:
        raise ValueError(f"neck_head: {why}")
    nb, big = len(xs), max(packed.strides)
    bsz, _, h0, w0 = xs[0].shape
    hf, wf = h0 * packed.strides[0], w0 * packed.strides[0]
    if out is None:
        out = torch.empty((bsz, packed.width, hf, wf), dtype=xs[0].dtype, device=xs[0].device, memory_format=torch.channels_last)
    hc, wc = hf // big, wf // big
    args, meta = [], {}
    for k in range(3):
        kk = min(k, nb - 1)  # unused branches repeat the last one's tensors (never read: NB guards them)
        args += [xs[kk], packed.up[kk], packed.up_bias[kk], packed.head[kk]]
        cin = int(xs[kk].shape[1])
        meta.update({f"S{k}": packed.strides[kk], f"CIN{k}": cin, f"COUT{k}": packed.couts[kk], f"BK{k}": step_k(cin, tiles)})
    grid = (bsz * big * big * triton.cdiv(hc * wc, tiles.block_m),)
    _neck_head_kernel[grid](*args, packed.bias, out, hc, wc, NB=nb, S=big, H_OUT=packed.width, HP=int(packed.head[0].shape[1]),
                            BLOCK_M=tiles.block_m, num_warps=tiles.num_warps, num_stages=tiles.num_stages,
                            **meta)
    return out


__all__ = ["DEFAULT_TILES", "HeadTiles", "PackedNeckHead", "available", "neck_head", "next_pow2", "unfit"]
