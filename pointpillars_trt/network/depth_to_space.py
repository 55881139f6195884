"""Depth to space into a channel slice of a channels_last map (``kernels/depth_to_space.cu``).

Used by :class:`~pointpillars_trt.model.inference_rpn.InferenceRPN`: an upsampling transposed
convolution with kernel = stride = ``s`` runs as a 1x1 convolution (bias and ReLU fused by cuDNN)
to ``s*s*Cout`` channels, and this copy puts each pixel's ``s*s`` runs of ``Cout`` channels at
their ``s x s`` output pixels, inside the concatenated map the head convolution reads (so neither
a separate bias/ReLU pass nor a ``torch.cat`` remains). One 16-byte vector per thread, on torch's
current stream (graph-capturable).

:func:`depth_to_space_add_cuda` is the other half of the head without the concatenated map
(:func:`~pointpillars_trt.model.inference_rpn.head_without_concat`): it adds the bias and the
per-branch head terms (float32 GEMM products, each still in its branch's ``s x s`` sub-pixel order)
into the head output in one pass, in float32, rounding once to the output's dtype.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from ..cuda.device import get_device
from ..cuda.nvrtc import grid_for, i32, launch, load_kernels, ptr

if TYPE_CHECKING:
    import torch

KERNEL_FILE = "depth_to_space.cu"
BLOCK = 256
VEC = 16  # bytes per thread
QUAD = 4  # channels per thread of pp_depth_to_space_add
MAX_TERMS = 4  # branch terms per launch of pp_depth_to_space_add


@functools.lru_cache(maxsize=None)
def _function(device_index: int, name: str):
    dev = get_device(device_index)
    return dev, load_kernels(KERNEL_FILE, dev).function(name)


def _launch(name: str, like: "torch.Tensor", vectors: int, args: tuple) -> None:
    """Launch kernel ``name`` over ``vectors`` work items (16-byte vectors, or quads of channels) on
    torch's current stream of ``like``'s device (grid-stride loop, at most 8 blocks per SM)."""
    import torch

    dev, fn = _function(like.device.index if like.device.index is not None else torch.cuda.current_device(), name)
    stream = torch.cuda.current_stream(like.device).cuda_stream
    dev.make_current()
    launch(fn, grid_for(vectors, BLOCK, dev.info.multiprocessor_count * 8), BLOCK, args, stream)


def fits(y: "torch.Tensor", out: "torch.Tensor", s: int) -> bool:
    """Whether :func:`depth_to_space_cuda` can take these tensors: CUDA, same dtype, both
    channels_last with 16-byte aligned runs (``y [N, s*s*Cout, h, w]`` dense, ``out [N, Cout, h*s,
    w*s]`` a channel slice of a dense NHWC map)."""
    import torch

    if not (y.is_cuda and out.is_cuda and y.dtype == out.dtype and y.device == out.device and y.dim() == out.dim() == 4):
        return False
    n, c, h, w = y.shape
    e = y.element_size()
    cout = c // (s * s)
    if c != cout * s * s or tuple(out.shape) != (n, cout, h * s, w * s) or not y.is_contiguous(memory_format=torch.channels_last):
        return False
    pixel = out.stride(3)
    dense_slice = out.stride(1) == 1 and out.stride(2) == w * s * pixel and out.stride(0) == h * s * w * s * pixel
    return dense_slice and (cout * e) % VEC == 0 and (pixel * e) % VEC == 0 and y.data_ptr() % VEC == 0 and out.data_ptr() % VEC == 0


def depth_to_space_cuda(y: "torch.Tensor", out: "torch.Tensor", s: int) -> None:
    """``out[n, c, y*s + i, x*s + j] = y[n, (i*s + j)*Cout + c, y, x]`` on torch's current stream.
    The caller checks :func:`fits` first."""
    n, c, h, w = y.shape
    e = y.element_size()
    total = y.numel() * e // VEC
    _launch("pp_depth_to_space", y, total, (ptr(y.data_ptr()), ptr(out.data_ptr()), np.int64(total), i32(h), i32(w), i32(s),
                                            i32(c // (s * s) * e // VEC), i32(out.stride(3) * e // VEC)))


def _aligned(t: "torch.Tensor", like: "torch.Tensor", dtype: "torch.dtype") -> bool:
    return t.is_cuda and t.device == like.device and t.dtype == dtype and t.is_contiguous() and t.data_ptr() % VEC == 0


def add_fits(out: "torch.Tensor", terms: "list[tuple[torch.Tensor, int]]", bias: "torch.Tensor | None") -> bool:
    """Whether :func:`depth_to_space_add_cuda` can take these tensors: ``out [N, H, Hs, Ws]`` a
    dense channels_last float16/float32 CUDA tensor with ``H`` a multiple of 4; each term ``(z, s)``
    a contiguous float32 ``z`` of ``out.numel()`` values (rows ``(n, y, x, i, j)`` of ``H`` values)
    with ``s`` dividing ``Hs`` and ``Ws``; ``bias`` None or a contiguous ``[H]`` of ``out``'s dtype;
    same device, 16-byte aligned."""
    import torch

    if not (out.is_cuda and out.dim() == 4 and out.dtype in (torch.float16, torch.float32)):
        return False
    _, hc, hs, ws = out.shape
    if not (out.is_contiguous(memory_format=torch.channels_last) and out.data_ptr() % VEC == 0 and hc % QUAD == 0):
        return False
    if bias is not None and not (_aligned(bias, out, out.dtype) and tuple(bias.shape) == (hc,)):
        return False
    return all(_aligned(z, out, torch.float32) and z.numel() == out.numel() and s >= 1 and hs % s == 0 and ws % s == 0
               for z, s in terms)


def depth_to_space_add_cuda(out: "torch.Tensor", terms: "list[tuple[torch.Tensor, int]]", bias: "torch.Tensor | None" = None) -> None:
    """``out[n, c, Y, X] = (bias[c] if bias is given else 0) + sum_k z_k[n, Y//s_k, X//s_k, Y%s_k,
    X%s_k, c]`` on torch's current stream, summed in float32 in term order and rounded once to
    ``out``'s dtype. ``MAX_TERMS`` terms per launch; with more, the partial sums stay in a float32
    scratch map between launches. The caller checks :func:`add_fits`."""
    import torch

    _, hc, hs, ws = out.shape
    total = out.numel() // QUAD
    chunks = [terms[k:k + MAX_TERMS] for k in range(0, len(terms), MAX_TERMS)] or [[]]
    scratch = torch.empty(out.numel(), dtype=torch.float32, device=out.device) if len(chunks) > 1 else None
    half = i32(out.dtype == torch.float16)
    for k, chunk in enumerate(chunks):
        dst, dst_half = (out, half) if k == len(chunks) - 1 else (scratch, i32(0))
        first = bias if k == 0 else None
        prev = None if k == 0 else scratch
        padded = list(chunk) + [(None, 0)] * (MAX_TERMS - len(chunk))
        zs = [a for z, s in padded for a in (ptr(0 if z is None else z.data_ptr()), i32(s))]
        _launch("pp_depth_to_space_add", out, total, (ptr(dst.data_ptr()), dst_half, ptr(0 if first is None else first.data_ptr()), half,
                                                      ptr(0 if prev is None else prev.data_ptr()), np.int64(total), i32(hs), i32(ws),
                                                      i32(hc // QUAD), *zs))


__all__ = ["MAX_TERMS", "QUAD", "add_fits", "depth_to_space_add_cuda", "depth_to_space_cuda", "fits"]
