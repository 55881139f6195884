"""The region proposal network: 2D backbone, upsampling neck and SSD-style head."""

from __future__ import annotations

import torch
from torch import nn

from ..config import PointPillarsConfig


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class RPN(nn.Module):
    """BEV canvas ``[B, 64, ny, nx]`` -> ``cls [B, A*K, ny/s, nx/s]``, ``box [B, A*7, ...]``, ``dir [B, A*D, ...]``.

    ``A`` anchors per location (class-major, then size, then rotation), ``K`` classes, ``D``
    direction bins, ``s`` the head stride. Channel ``a * K + k`` is class ``k`` of anchor ``a``;
    ``a * 7 + j`` is box code ``j``; ``a * D + d`` is direction bin ``d``.

    Module layout (state-dict keys): ``blocks.{i}.{3j}`` conv / ``{3j+1}`` BN (j = 0 is the strided
    conv), ``deblocks.{i}.0`` transposed conv / ``.1`` BN, ``conv_cls``, ``conv_box``, ``conv_dir``.
    """

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        bb = cfg.network.backbone
        cin = cfg.network.pfn_channels
        self.blocks = nn.ModuleList()
        self.deblocks = nn.ModuleList()
        for i, (n, stride, cout) in enumerate(zip(bb.layer_nums, bb.layer_strides, bb.num_filters)):
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), _bn(cout), nn.ReLU()]
            for _ in range(n):
                layers += [nn.Conv2d(cout, cout, 3, padding=1, bias=False), _bn(cout), nn.ReLU()]
            self.blocks.append(nn.Sequential(*layers))
            up, uout = bb.upsample_strides[i], bb.num_upsample_filters[i]
            self.deblocks.append(nn.Sequential(nn.ConvTranspose2d(cout, uout, up, stride=up, bias=False), _bn(uout), nn.ReLU()))
            cin = cout
        ch = cfg.head_channels
        self.conv_cls = nn.Conv2d(bb.out_channels, ch["cls"], 1)
        self.conv_box = nn.Conv2d(bb.out_channels, ch["box"], 1)
        self.conv_dir = nn.Conv2d(bb.out_channels, ch["dir"], 1)

    def features(self, canvas: torch.Tensor) -> torch.Tensor:
        ups = []
        x = canvas
        for block, deblock in zip(self.blocks, self.deblocks):
            x = block(x)
            ups.append(deblock(x))
        return torch.cat(ups, dim=1)

    def forward(self, canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.features(canvas)
        return self.conv_cls(x), self.conv_box(x), self.conv_dir(x)
