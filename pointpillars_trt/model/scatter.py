"""The middle feature net (MFN): scatter pillar features onto the dense BEV canvas."""

from __future__ import annotations

import torch
from torch import nn

from ..config import PointPillarsConfig


def scatter_reference(pillar_features: torch.Tensor, coords: torch.Tensor, nx: int, ny: int) -> torch.Tensor:
    """Reference scatter: ``[P, C]`` features at ``coords`` ``[P, 2]`` = (ix, iy) -> ``[1, C, ny, nx]``.

    Cells with no pillar are zero. Coordinates must be unique and inside the grid.
    """
    c = pillar_features.shape[1]
    canvas = pillar_features.new_zeros(c, ny * nx)
    flat = coords[:, 1].long() * nx + coords[:, 0].long()
    canvas[:, flat] = pillar_features.t()
    return canvas.view(1, c, ny, nx)


class PointPillarsScatter(nn.Module):
    """``[P, C]`` pillar features + ``[P, 2]`` int (ix, iy) coords -> ``[1, C, ny, nx]`` canvas.

    The canvas is built channel-major (``[C, ny * nx]``, columns indexed by cell), so no transpose
    of the whole canvas follows. The exported ONNX graph (``pointpillars_trt.exporter``) states the
    same function as a ScatterND on ``[ny * nx, C]``.
    """

    def __init__(self, nx: int, ny: int, channels: int) -> None:
        super().__init__()
        self.nx, self.ny, self.channels = nx, ny, channels

    def forward(self, pillar_features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        canvas = pillar_features.new_zeros(self.channels, self.ny * self.nx)
        flat = coords[:, 1].long() * self.nx + coords[:, 0].long()
        canvas[:, flat] = pillar_features.t()
        return canvas.view(1, self.channels, self.ny, self.nx)

    @classmethod
    def from_config(cls, cfg: PointPillarsConfig) -> "PointPillarsScatter":
        nx, ny, _ = cfg.grid_size
        return cls(nx, ny, cfg.network.pfn_channels)
