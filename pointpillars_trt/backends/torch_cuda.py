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
from ..errors import BackendUnavailableError, ConfigError
from ..model import build_model
from .base import Backend, StageTimer, register_backend

PRECISIONS = ("fp32", "fp16")


class TorchCudaBackend(Backend):
    """``precision`` ``fp32`` (TF32 off, process-wide) or ``fp16``; ``channels_last`` for the RPN."""

    name = "torch_cuda"

    def __init__(self, cfg: PointPillarsConfig, state_dict: Mapping[str, torch.Tensor] | None = None, device: str = "cuda",
                 precision: str = "fp32", channels_last: bool = True) -> None:
        super().__init__(cfg)
        if precision not in PRECISIONS:
            raise ConfigError(f"torch_cuda backend: precision must be one of {PRECISIONS}, got {precision!r}")
        if not torch.cuda.is_available():
            raise BackendUnavailableError("torch_cuda backend: torch sees no CUDA GPU")
        self.device = torch.device(device if str(device).startswith("cuda") else "cuda")
        self.precision, self.channels_last = precision, bool(channels_last)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = build_model(cfg)
        if state_dict is not None:
            self.model.load_state_dict(state_dict, strict=True)

    def _activate(self) -> None:
        if self.precision == "fp32":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.model.to(self.device).eval()
        self.model.pfn.to(self.dtype)
        self.model.rpn.to(self.dtype)
        if self.channels_last:
            self.model.rpn.to(memory_format=torch.channels_last)

    def _sync(self) -> None:
        torch.cuda.synchronize(self.device)

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..cuda.scatter import scatter_torch

        timings: dict[str, float] = {}
        timer = StageTimer(timings, self._sync)
        nx, ny, _ = self.cfg.grid_size
        with torch.inference_mode():
            feats = torch.as_tensor(feeds["features"]).to(self.device, non_blocking=True).to(self.dtype)
            npts = torch.as_tensor(feeds["num_points"]).to(self.device, non_blocking=True)
            coords = torch.as_tensor(feeds["coords"]).to(self.device, non_blocking=True)
            timer.mark("h2d")
            pf = self.model.pfn(feats, npts)
            timer.mark("pfn")
            canvas = scatter_torch(pf, coords, nx, ny)
            if self.channels_last:
                canvas = canvas.contiguous(memory_format=torch.channels_last)
            timer.mark("scatter")
            cls, box, dirs = self.model.rpn(canvas)
            timer.mark("rpn")
            out = {"cls": cls.float().cpu().numpy(), "box": box.float().cpu().numpy(), "dir": dirs.float().cpu().numpy()}
            timer.mark("d2h")
        self.last_timings_ms = timings
        return out


@register_backend("torch_cuda")
def _make_torch_cuda(cfg: PointPillarsConfig, state_dict=None, device: str = "cuda", precision: str = "fp32",
                     channels_last: bool = True, **_: object) -> TorchCudaBackend:
    return TorchCudaBackend(cfg, state_dict, device, precision, channels_last)
