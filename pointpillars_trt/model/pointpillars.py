"""The whole network as three parts that match the three engines: PFN, MFN (scatter) and RPN."""

from __future__ import annotations

import torch
from torch import nn

from ..config import PointPillarsConfig
from .pfn import PillarFeatureNet
from .rpn import RPN
from .scatter import PointPillarsScatter


class PointPillars(nn.Module):
    """``pfn``, ``mfn`` and ``rpn`` chained. State-dict keys start with ``pfn.`` and ``rpn.``
    (the scatter has no weights); this is the package's native layout."""

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pfn = PillarFeatureNet.from_config(cfg)
        self.mfn = PointPillarsScatter.from_config(cfg)
        self.rpn = RPN(cfg)

    def forward(
        self, features: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``features [P, M, 10]``, ``num_points [P]``, ``coords [P, 2]`` (ix, iy) -> head maps."""
        return self.rpn(self.mfn(self.pfn(features, num_points), coords))


def build_model(cfg: PointPillarsConfig) -> PointPillars:
    return PointPillars(cfg).eval()
