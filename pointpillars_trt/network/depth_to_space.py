"""Depth to space into a channel slice of a channels_last map (``kernels/depth_to_space.cu``).

Used by :class:`~pointpillars_trt.model.inference_rpn.InferenceRPN`: an upsampling transposed
convolution with kernel = stride = ``s`` runs as a 1x1 convolution (bias and ReLU fused by cuDNN)
to ``s*s*Cout`` channels, and this copy puts each pixel's ``s*s`` runs of ``Cout`` channels at
their ``s x s`` output pixels, inside the concatenated map the head convolution reads (so neither
a separate bias/ReLU pass nor a ``torch.cat`` remains). One 16-byte vector per thread, on torch's
current stream (graph-capturable).
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


@functools.lru_cache(maxsize=None)
def _function(device_index: int):
    dev = get_device(device_index)
    return dev, load_kernels(KERNEL_FILE, dev).function("pp_depth_to_space")


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
    import torch

    n, c, h, w = y.shape
    e = y.element_size()
    dev, fn = _function(y.device.index if y.device.index is not None else torch.cuda.current_device())
    total = y.numel() * e // VEC
    stream = torch.cuda.current_stream(y.device).cuda_stream
    dev.make_current()
    launch(fn, grid_for(total, BLOCK, dev.info.multiprocessor_count * 8), BLOCK,
           (ptr(y.data_ptr()), ptr(out.data_ptr()), np.int64(total), i32(h), i32(w), i32(s),
            i32(c // (s * s) * e // VEC), i32(out.stride(3) * e // VEC)), stream)


__all__ = ["depth_to_space_cuda", "fits"]
