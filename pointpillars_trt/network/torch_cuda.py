"""PyTorch CUDA backend with our scatter kernel: PFN and RPN in torch (cuBLAS / cuDNN), float32 or
float16 (float16 weights, float32 accumulation, head outputs returned as float32), channels_last.

This is the :class:`~.base.Backend` form (pillars in, head maps out) for
:class:`~pointpillars_trt.detector.Detector`; the whole-frame GPU pipeline with our voxelization
and post-processing kernels and a CUDA graph is :class:`~pointpillars_trt.gpu_pipeline.GpuDetector`.
Registered as ``"torch_cuda"`` when this module is imported.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ..config import PointPillarsConfig
from ..errors import BackendUnavailableError
from ..options import Precision, TorchCudaOptions

from .base import register_backend
from .torch_backend import TorchBackend

class TorchCudaBackend(TorchBackend):
    """``precision`` ``fp32`` (TF32 off, process-wide) or ``fp16``; ``channels_last`` for the RPN."""

    name = "torch_cuda"

    def __init__(self, cfg: PointPillarsConfig, state_dict: Mapping[str, torch.Tensor] | None = None, device: str = "cuda",
                 precision: str = "fp32", channels_last: bool = True) -> None:
        precision = Precision.parse(precision, "torch_cuda backend: precision")
        if not torch.cuda.is_available():
            raise BackendUnavailableError("torch_cuda backend: torch sees no CUDA GPU")
        super().__init__(cfg, state_dict, device if str(device).startswith("cuda") else "cuda")
        self.precision, self.channels_last = precision, bool(channels_last)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32

    def _activate(self) -> None:
        if self.precision == "fp32":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.model.to(self.device).eval()
        self.model.pfn.to(self.dtype)
        self.model.rpn.to(self.dtype)
        if self.channels_last:
            self.model.rpn.to(memory_format=torch.channels_last)

    def _to_device(self, feeds: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats, npts, coords = (torch.as_tensor(feeds[k]).to(self.device, non_blocking=True)
                               for k in ("features", "num_points", "coords"))
        return feats.to(self.dtype), npts, coords

    def _scatter(self, pillar_features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        from .cuda_scatter import scatter_torch

        nx, ny, _ = self.cfg.grid_size
        canvas = scatter_torch(pillar_features, coords, nx, ny)
        return canvas.contiguous(memory_format=torch.channels_last) if self.channels_last else canvas


@register_backend("torch_cuda", TorchCudaOptions)
def _make_torch_cuda(cfg: PointPillarsConfig, state_dict, engine_dir, options: TorchCudaOptions) -> TorchCudaBackend:
    return TorchCudaBackend(cfg, state_dict, options.device, options.precision, options.channels_last)
