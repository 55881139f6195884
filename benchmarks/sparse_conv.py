"""The RPN's first block on a mostly empty canvas: 3x3 convolutions that skip the tiles whose output is a
known constant (issue 18; an experiment measured by ``benchmarks/bench_triton_conv.py --only sparse``, not
used by the package).

Why: the PFN's canvas is zero except at the pillars (2.7 % of the KITTI FOV cells on the 10 real frames),
so most of the first convolution's output is ``relu(bias)``, and most of the next convolutions' output is the
constant those make of it. Counted on the CPU for the 10 frames, tiles of 8 x 16 output pixels that do need
computing: 29 % for block 0's strided convolution, 50-54 % for its three others, 73-83 % in block 1 and
94-100 % in block 2 (docs/PERFORMANCE.md, 2026-12-04).

What it computes, per layer ``L`` of a chain of ``relu(conv3x3(x, w_L, pad 1, stride s_L) + b_L)``:

* the constant ``c_L`` (:func:`chain_constants`): the output where the whole 3 x 3 window holds the
  previous constant (``c_-1 = 0``, the empty canvas), ``relu(sum_taps w_L c_{L-1} + b_L)`` in float32 from
  the rounded ``c_{L-1}``, rounded to the tensors' dtype: what a dense convolution gives there, up to the
  order of its sums;
* per output pixel a mark, 1 where the output need not be ``c_L``:
  - layer 0: a pillar lies in the pixel's window (:func:`mark_first_outputs` from the pillar coordinates);
  - later layers: the window holds a marked pixel of the layer before, or reaches over the map's border
    (the zero padding is not the constant);
* per output tile of ``TILE_H x TILE_W`` pixels, computed when it holds a marked pixel, as an implicit GEMM
  (float32 sums in a fixed order, bias, ReLU, one rounding; its unmarked pixels get ``c_L``), otherwise
  filled with ``c_L``. Each layer's output is written in full, so the next layer reads a whole map.
  The marks are per pixel, not per tile, so a tile is computed only where the exact non-constant region
  reaches it (tile-level marks grew by a whole tile per layer: 49 / 74 / 89 % of block 0's later tiles on
  frame 000000, H100 run of 2026-12-06, against 50-54 % counted per pixel).

Layer 0's marks are cleared by layer 0 as it reads them, so a captured graph needs no memset for the next
frame. One program computes all ``Cout`` channels of a tile (``Cout`` <= 128).
"""

from __future__ import annotations

import torch

from benchmarks.triton_conv import out_size, pack_weight

try:  # Triton ships with CUDA builds of torch; the CPU wheel has none
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None

TILE_H, TILE_W = 8, 16


def chain_constants(weights: list[torch.Tensor], biases: list[torch.Tensor]) -> list[torch.Tensor]:
    """``c_L [Cout_L]`` for each layer (see the module docstring), in the weights' dtype and device;
    ``weights[L] [Cout, Cin, 3, 3]``, ``biases[L] [Cout]``."""
    out, c = [], torch.zeros(weights[0].shape[1], dtype=weights[0].dtype, device=weights[0].device)
    for w, b in zip(weights, biases):
        c = torch.relu(w.float().sum(dim=(2, 3)) @ c.float() + b.float()).to(w.dtype)
        out.append(c)
    return out


def tiles_of(h: int, w: int) -> tuple[int, int]:
    """Tile rows and columns covering an ``h x w`` output."""
    return -(-h // TILE_H), -(-w // TILE_W)


if triton is not None:

    @triton.jit
    def _mark_kernel(coords_ptr, count_ptr, marks_ptr, P, ny, nx, Ho, Wo, BLOCK: tl.constexpr):
        # pillar i at canvas (iy, ix) is read by the outputs (oh, ow) of a stride-2, pad-1 3x3 convolution with
        # 2*oh - 1 <= iy <= 2*oh + 1: oh in [iy // 2, (iy + 1) // 2]; the same for ow. Mark those outputs.
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        n = tl.load(count_ptr)
        ok = (i < n) & (i < P)
        ix = tl.load(coords_ptr + 2 * i, mask=ok, other=0)
        iy = tl.load(coords_ptr + 2 * i + 1, mask=ok, other=0)
        for dy in tl.static_range(2):
            for dx in tl.static_range(2):
                oh = (iy + dy) // 2
                ow = (ix + dx) // 2
                m = ok & (oh < Ho) & (ow < Wo) & (iy >= 0) & (ix >= 0) & (iy < ny) & (ix < nx)
                tl.store(marks_ptr + oh * Wo + ow, 1, mask=m)

    @triton.jit
    def _const_conv_kernel(x_ptr, w_ptr, b_ptr, c_ptr, y_ptr, min_ptr, mout_ptr, fout_ptr, H, W, Ho, Wo, TR, TC,
                           C: tl.constexpr, N: tl.constexpr, STRIDE: tl.constexpr, FIRST: tl.constexpr,
                           TH: tl.constexpr, TW: tl.constexpr, BLOCK_K: tl.constexpr):
        pid = tl.program_id(0)
        tc = pid % TC
        t = pid // TC
        tr = t % TR
        b = t // TR
        p = tl.arange(0, TH * TW)
        oh = tr * TH + p // TW
        ow = tc * TW + p % TW
        pix_ok = (oh < Ho) & (ow < Wo)
        opix = (b * Ho + oh) * Wo + ow
        if FIRST:  # marked from the pillars; cleared for the next frame
            m = tl.load(min_ptr + opix, mask=pix_ok, other=0) != 0
            tl.store(min_ptr + opix, tl.zeros((TH * TW,), dtype=tl.int8), mask=pix_ok)
        else:  # a window that reaches a non-constant input or the zero padding
            m = tl.zeros((TH * TW,), dtype=tl.int1)
            for dh in tl.static_range(3):
                for dw in tl.static_range(3):
                    mh = oh * STRIDE - 1 + dh
                    mw = ow * STRIDE - 1 + dw
                    inb = (mh >= 0) & (mh < H) & (mw >= 0) & (mw < W)
                    v = tl.load(min_ptr + (b * H + mh) * W + mw, mask=pix_ok & inb, other=0)
                    m = m | (v != 0) | ~inb
            m = m & pix_ok
        tl.store(mout_ptr + opix, m.to(tl.int8), mask=pix_ok)
        active = tl.max(m.to(tl.int32), axis=0) != 0
        tl.store(fout_ptr + pid, active.to(tl.int8))
        offs_n = tl.arange(0, N)
        if active:
            offs_k = tl.arange(0, BLOCK_K)
            acc = tl.zeros((TH * TW, N), dtype=tl.float32)
            for k in range(0, 9 * C, BLOCK_K):
                tap = k // C
                c0 = k - tap * C
                kh = tap // 3
                kw = tap - kh * 3
                ih = oh * STRIDE - 1 + kh
                iw = ow * STRIDE - 1 + kw
                ok = pix_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                pix = ((b * H + ih) * W + iw).to(tl.int64) * C + c0
                a = tl.load(x_ptr + pix[:, None] + offs_k[None, :], mask=ok[:, None], other=0.0)
                wt = tl.load(w_ptr + (k + offs_k)[:, None] * N + offs_n[None, :])
                acc = tl.dot(a, wt, acc)
            bias = tl.load(b_ptr + offs_n).to(tl.float32)
            const = tl.load(c_ptr + offs_n).to(tl.float32)
            y = tl.where(m[:, None], tl.maximum(acc + bias[None, :], 0.0), const[None, :])  # unmarked pixels: exactly c_L
        else:
            y = tl.zeros((TH * TW, N), dtype=tl.float32) + tl.load(c_ptr + offs_n).to(tl.float32)[None, :]
        out = y_ptr + opix.to(tl.int64)[:, None] * N + offs_n[None, :]
        tl.store(out, y.to(y_ptr.dtype.element_ty), mask=pix_ok[:, None])


def mark_first_outputs(coords: torch.Tensor, count: torch.Tensor, marks: torch.Tensor, canvas_hw: tuple[int, int]) -> None:
    """Set ``marks`` (int8 ``[Ho, Wo]``, a stride-2 first convolution's output pixels, zero on entry) to 1
    where the 3 x 3 window holds a pillar of ``coords`` (int32 ``[P, 2]`` as ``(ix, iy)``, the first
    ``count[0]`` valid; one frame)."""
    ny, nx = canvas_hw
    ho, wo = out_size(ny, 3, 2, 1), out_size(nx, 3, 2, 1)
    if tuple(marks.shape) != (ho, wo):
        raise ValueError(f"mark_first_outputs: marks {tuple(marks.shape)} is not the first layer's output {(ho, wo)}")
    p = coords.shape[0]
    block = 256
    _mark_kernel[(max(1, triton.cdiv(p, block)),)](coords, count, marks, p, ny, nx, ho, wo, BLOCK=block)


class ConstAwareChain:
    """A chain of 3x3, pad-1 convolutions + bias + ReLU (``weights[L] [Cout, Cin, 3, 3]``, ``strides[L]``;
    the first stride 2) run on one ``[1, Cin, ny, nx]`` channels_last canvas that is zero away from its
    pillars. Owns its flags and outputs (fixed addresses, so a CUDA graph can hold it)."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor], strides: list[int], canvas_hw: tuple[int, int],
                 num_warps: int = 4, num_stages: int = 2) -> None:
        if triton is None:
            raise RuntimeError("ConstAwareChain needs Triton (not installed)")
        if strides[0] != 2:
            raise ValueError(f"ConstAwareChain: the first convolution must have stride 2 (its tiles are marked from pillars), got {strides}")
        dev, dt = weights[0].device, weights[0].dtype
        self.strides, self.num_warps, self.num_stages = list(strides), num_warps, num_stages
        self.packed = [pack_weight(w) for w in weights]
        self.biases = [b.contiguous() for b in biases]
        self.constants = chain_constants(weights, biases)
        self.canvas_hw = canvas_hw
        h, w = canvas_hw
        self.shapes, self.outputs, self.flags, self.masks = [], [], [], []
        for wt, s in zip(weights, strides):
            h, w = out_size(h, 3, s, 1), out_size(w, 3, s, 1)
            self.shapes.append((h, w))
            self.outputs.append(torch.empty((1, wt.shape[0], h, w), dtype=dt, device=dev, memory_format=torch.channels_last))
            self.flags.append(torch.zeros(tiles_of(h, w), dtype=torch.int8, device=dev))
            self.masks.append(torch.zeros((h, w), dtype=torch.int8, device=dev))
        self.first_marks = torch.zeros(self.shapes[0], dtype=torch.int8, device=dev)

    def __call__(self, canvas: torch.Tensor, coords: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """The chain's last output for ``canvas [1, Cin, ny, nx]`` (channels_last) whose pillars are the
        first ``count[0]`` rows of ``coords [P, 2]`` ``(ix, iy)`` int32."""
        mark_first_outputs(coords, count, self.first_marks, self.canvas_hw)
        x, (h, w) = canvas, self.canvas_hw
        prev_mask = self.first_marks
        for i, (packed, bias, c, y, flags, mask, s) in enumerate(zip(self.packed, self.biases, self.constants, self.outputs,
                                                                     self.flags, self.masks, self.strides)):
            cin, n = packed.shape[0] // 9, packed.shape[1]
            ho, wo = self.shapes[i]
            tr, tc = flags.shape
            _const_conv_kernel[(tr * tc,)](x, packed, bias, c, y, prev_mask, mask, flags, h, w, ho, wo, tr, tc,
                                           C=cin, N=n, STRIDE=s, FIRST=i == 0, TH=TILE_H, TW=TILE_W, BLOCK_K=min(cin, 64),
                                           num_warps=self.num_warps, num_stages=self.num_stages)
            x, h, w, prev_mask = y, ho, wo, mask
        return x

    def computed_share(self) -> list[float]:
        """Per layer, the share of tiles the last call computed (the rest were filled with the constant)."""
        return [float(f.float().mean()) for f in self.flags]

    def marked_share(self) -> list[float]:
        """Per layer, the share of output pixels the last call marked as not the constant."""
        return [float(m.float().mean()) for m in self.masks]


__all__ = ["ConstAwareChain", "TILE_H", "TILE_W", "chain_constants", "mark_first_outputs", "tiles_of"]
