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
* per output tile of ``TILE_H x TILE_W`` pixels a flag, 1 where the tile must be computed:
  - layer 0: a pillar lies in a window of the tile (:func:`mark_first_tiles` from the pillar coordinates);
  - later layers: a flagged tile of the layer before overlaps the tile's windows, or a window reaches over
    the map's border (the zero padding is not the constant);
* flagged tiles as an implicit GEMM (float32 sums in a fixed order, bias, ReLU, one rounding), the others
  filled with ``c_L``. Each layer's output is written in full, so the next layer reads a whole map.

Layer 0's flags are cleared by layer 0 as it reads them, so a captured graph needs no memset for the next
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
    def _mark_kernel(coords_ptr, count_ptr, flags_ptr, P, ny, nx, Ho, Wo, TR, TC,
                     TH: tl.constexpr, TW: tl.constexpr, BLOCK: tl.constexpr):
        # pillar i at canvas (iy, ix) is read by the outputs (oh, ow) of a stride-2, pad-1 3x3 convolution with
        # 2*oh - 1 <= iy <= 2*oh + 1: oh in [iy // 2, (iy + 1) // 2]; the same for ow. Mark their tiles.
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        n = tl.load(count_ptr)
        ok = (i < n) & (i < P)
        ix = tl.load(coords_ptr + 2 * i, mask=ok, other=0)
        iy = tl.load(coords_ptr + 2 * i + 1, mask=ok, other=0)
        b = 0
        for dy in tl.static_range(2):
            for dx in tl.static_range(2):
                oh = (iy + dy) // 2
                ow = (ix + dx) // 2
                m = ok & (oh < Ho) & (ow < Wo) & (iy >= 0) & (ix >= 0) & (iy < ny) & (ix < nx)
                tl.store(flags_ptr + (b * TR + oh // TH) * TC + ow // TW, 1, mask=m)

    @triton.jit
    def _const_conv_kernel(x_ptr, w_ptr, b_ptr, c_ptr, y_ptr, fin_ptr, fout_ptr, H, W, Ho, Wo, TRI, TCI, TR, TC,
                           C: tl.constexpr, N: tl.constexpr, STRIDE: tl.constexpr, FIRST: tl.constexpr,
                           TH: tl.constexpr, TW: tl.constexpr, BLOCK_K: tl.constexpr):
        pid = tl.program_id(0)
        tc = pid % TC
        t = pid // TC
        tr = t % TR
        b = t // TR
        if FIRST:  # marked from the pillars; cleared for the next frame
            active = tl.load(fin_ptr + pid) != 0
            tl.store(fin_ptr + pid, 0)
        else:
            r0 = tr * TH * STRIDE - 1
            r1 = (tr * TH + TH - 1) * STRIDE + 1
            q0 = tc * TW * STRIDE - 1
            q1 = (tc * TW + TW - 1) * STRIDE + 1
            active = (r0 < 0) | (r1 >= H) | (q0 < 0) | (q1 >= W)
            i0 = tl.maximum(r0, 0) // TH
            i1 = tl.minimum(r1, H - 1) // TH
            j0 = tl.maximum(q0, 0) // TW
            j1 = tl.minimum(q1, W - 1) // TW
            for di in tl.static_range(4):
                for dj in tl.static_range(4):
                    m = (i0 + di <= i1) & (j0 + dj <= j1)
                    f = tl.load(fin_ptr + (b * TRI + i0 + di) * TCI + j0 + dj, mask=m, other=0)
                    active = active | (f != 0)
        tl.store(fout_ptr + pid, active.to(tl.int8))
        p = tl.arange(0, TH * TW)
        oh = tr * TH + p // TW
        ow = tc * TW + p % TW
        pix_ok = (oh < Ho) & (ow < Wo)
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
            y = tl.maximum(acc + bias[None, :], 0.0)
        else:
            y = tl.zeros((TH * TW, N), dtype=tl.float32) + tl.load(c_ptr + offs_n).to(tl.float32)[None, :]
        out = y_ptr + ((b * Ho + oh) * Wo + ow).to(tl.int64)[:, None] * N + offs_n[None, :]
        tl.store(out, y.to(y_ptr.dtype.element_ty), mask=pix_ok[:, None])


def mark_first_tiles(coords: torch.Tensor, count: torch.Tensor, flags: torch.Tensor, canvas_hw: tuple[int, int],
                     batch: int = 1) -> None:
    """Set ``flags`` (int8 ``[batch, TR, TC]``, the first layer's tiles, zero on entry) where a pillar of
    ``coords`` (int32 ``[P, 2]`` as ``(ix, iy)``, the first ``count[0]`` valid; one frame: ``batch`` 1)
    lies in a window of a stride-2 first convolution's tile."""
    if batch != 1:
        raise ValueError("mark_first_tiles: one frame (batch 1) in this experiment")
    ny, nx = canvas_hw
    ho, wo = out_size(ny, 3, 2, 1), out_size(nx, 3, 2, 1)
    tr, tc = tiles_of(ho, wo)
    p = coords.shape[0]
    block = 256
    _mark_kernel[(max(1, triton.cdiv(p, block)),)](coords, count, flags, p, ny, nx, ho, wo, tr, tc, TH=TILE_H, TW=TILE_W, BLOCK=block)


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
        self.shapes, self.outputs, self.flags = [], [], []
        for wt, s in zip(weights, strides):
            h, w = out_size(h, 3, s, 1), out_size(w, 3, s, 1)
            self.shapes.append((h, w))
            self.outputs.append(torch.empty((1, wt.shape[0], h, w), dtype=dt, device=dev, memory_format=torch.channels_last))
            self.flags.append(torch.zeros(tiles_of(h, w), dtype=torch.int8, device=dev))
        self.first_marks = torch.zeros(tiles_of(*self.shapes[0]), dtype=torch.int8, device=dev)

    def __call__(self, canvas: torch.Tensor, coords: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """The chain's last output for ``canvas [1, Cin, ny, nx]`` (channels_last) whose pillars are the
        first ``count[0]`` rows of ``coords [P, 2]`` ``(ix, iy)`` int32."""
        mark_first_tiles(coords, count, self.first_marks, self.canvas_hw)
        x, (h, w) = canvas, self.canvas_hw
        prev_flags = self.first_marks
        for i, (packed, bias, c, y, flags, s) in enumerate(zip(self.packed, self.biases, self.constants, self.outputs, self.flags, self.strides)):
            cin, n = packed.shape[0] // 9, packed.shape[1]
            ho, wo = self.shapes[i]
            tr, tc = flags.shape
            tri, tci = prev_flags.shape
            _const_conv_kernel[(tr * tc,)](x, packed, bias, c, y, prev_flags, flags, h, w, ho, wo, tri, tci, tr, tc,
                                           C=cin, N=n, STRIDE=s, FIRST=i == 0, TH=TILE_H, TW=TILE_W, BLOCK_K=min(cin, 64),
                                           num_warps=self.num_warps, num_stages=self.num_stages)
            x, h, w, prev_flags = y, ho, wo, flags
        return x

    def computed_share(self) -> list[float]:
        """Per layer, the share of tiles the last call computed (the rest were filled with the constant)."""
        return [float(f.float().mean()) for f in self.flags]


__all__ = ["ConstAwareChain", "TILE_H", "TILE_W", "chain_constants", "mark_first_tiles", "tiles_of"]
