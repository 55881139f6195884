"""PyTorch backend (CPU or CUDA): the reference every other backend is compared with."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ..config import PointPillarsConfig
from ..errors import BackendUnavailableError
from ..model import PointPillars, build_model
from ..options import TorchOptions
from .base import Backend, StageTimer, register_backend


class TorchBackend(Backend):
    """Runs :class:`~pointpillars_trt.model.PointPillars` in eval mode under ``inference_mode``.

    Per-stage wall times (``pfn``, ``scatter``, ``rpn``) are in ``last_timings_ms``; on CUDA each
    reading synchronizes the device.
    """

    name = "torch"

    def __init__(self, cfg: PointPillarsConfig, state_dict: Mapping[str, torch.Tensor] | None = None, device: str = "cpu") -> None:
        super().__init__(cfg)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("torch backend: device 'cuda' requested but torch sees no CUDA GPU")
        self.model: PointPillars = build_model(cfg)
        if state_dict is not None:
            self.model.load_state_dict(state_dict, strict=True)

    def _activate(self) -> None:
        self.model.to(self.device).eval()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _to_device(self, feeds: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dev = self.device
        return (torch.as_tensor(feeds["features"], device=dev), torch.as_tensor(feeds["num_points"], device=dev),
                torch.as_tensor(feeds["coords"], device=dev))

    def _scatter(self, pillar_features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        return self.model.mfn(pillar_features, coords)

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        timings: dict[str, float] = {}
        timer = StageTimer(timings, self._sync)
        with torch.inference_mode():
            feats, npts, coords = self._to_device(feeds)
            timer.mark("h2d")
            pf = self.model.pfn(feats, npts)
            timer.mark("pfn")
            canvas = self._scatter(pf, coords)
            timer.mark("scatter")
            cls, box, dirs = self.model.rpn(canvas)
            timer.mark("rpn")
            out = {"cls": cls.float().cpu().numpy(), "box": box.float().cpu().numpy(), "dir": dirs.float().cpu().numpy()}
            timer.mark("d2h")
        self.last_timings_ms = timings
        return out


@register_backend("torch", TorchOptions)
def _make_torch(cfg: PointPillarsConfig, state_dict, engine_dir, options: TorchOptions) -> TorchBackend:
    return TorchBackend(cfg, state_dict, options.device)
