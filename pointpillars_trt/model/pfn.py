"""Pillar feature net (PFN): decorated points of each pillar -> one feature vector."""

from __future__ import annotations

import torch
from torch import nn

from ..config import PointPillarsConfig


class PillarFeatureNet(nn.Module):
    """Linear (no bias) -> BatchNorm1d -> ReLU -> max over the points of a pillar.

    Shapes: ``features`` float ``[P, M, C]`` (C = 10: x, y, z, r, offsets from the pillar's point
    mean, offsets from the pillar's centre), ``num_points`` int ``[P]``; returns ``[P, 64]``.

    Slots ``j >= num_points[p]`` are zeroed before the linear layer (as OpenPCDet's PillarVFE
    does) and still take part in the max, exactly as in OpenPCDet, mmdet3d and zhulf0804.

    In eval mode the BatchNorm scale is folded into the linear weights and its shift and the ReLU
    are applied after the max (both are monotone, so ``max(relu(x + b)) == relu(max(x) + b)``):
    the same function with one ``[P, M, C]`` temporary instead of four.
    """

    def __init__(self, in_channels: int = 10, out_channels: int = 64) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, features: torch.Tensor, num_points: torch.Tensor) -> torch.Tensor:
        slots = torch.arange(features.shape[1], device=features.device, dtype=num_points.dtype)
        mask = (slots[None, :] < num_points[:, None]).to(features.dtype)
        masked = features * mask[:, :, None]
        if self.training:
            x = self.norm(self.linear(masked).transpose(1, 2)).transpose(1, 2)
            return torch.relu(x).max(dim=1).values
        scale, shift = _bn_scale_shift(self.norm)
        x = masked @ (self.linear.weight * scale[:, None]).t()  # [P, M, C]
        return torch.relu(x.max(dim=1).values + shift)

    def eval_affine(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(weight [C_out, C_in], scale [C_out], shift [C_out])`` float32, contiguous: the eval-mode
        PFN is ``relu(max_j(x_j @ weight.T) * scale + shift)`` (what the fused CUDA kernel computes)."""
        with torch.no_grad():
            scale, shift = _bn_scale_shift(self.norm)
            return (self.linear.weight.detach().float().contiguous(), scale.float().contiguous(), shift.float().contiguous())

    @classmethod
    def from_config(cls, cfg: PointPillarsConfig) -> "PillarFeatureNet":
        return cls(cfg.voxel.num_decorated_features, cfg.network.pfn_channels)


def _bn_scale_shift(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale
