"""Test helpers: the published key tables, and small re-implementations of each SOURCE's network.

The reference networks below are written from the public model code of OpenPCDet, mmdet3d and
zhulf0804/PointPillars (module names, feature layouts, padding/indexing), independently of the
converter, so that "converted native model == source model" is checked by construction.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pointpillars_trt.config import PointPillarsConfig

TSV = Path(__file__).resolve().parents[2] / ".." / "shared" / "checkpoint-formats" / "statedict_keys.tsv"
SOURCE_CLASSES = {
    "openpcdet": ("Car", "Pedestrian", "Cyclist"),
    "mmdet3d": ("Pedestrian", "Cyclist", "Car"),
    "zhulf0804": ("Pedestrian", "Cyclist", "Car"),
}
FOREIGN = tuple(SOURCE_CLASSES)


def read_tsv() -> dict[str, dict[str, list[int]]]:
    """``{format: {key: shape}}`` from statedict_keys.tsv; skips the test if the file is absent."""
    if not TSV.is_file():
        pytest.skip(f"{TSV} not available")
    tables: dict[str, dict[str, list[int]]] = {}
    current = None
    for line in TSV.read_text().splitlines():
        if not line.strip():
            continue
        if line.startswith("## "):
            current = line[3:].split(":")[0].strip()
            tables[current] = {}
            continue
        key, shape = line.split("\t")
        inner = shape.strip()[1:-1].strip()
        tables[current][key] = [int(v) for v in inner.split(",")] if inner else []
    return tables


def tsv_state_dict(fmt: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with exactly the tsv's key names and shapes (BN running_var positive).

    Cached: a new dict each call, the same (never modified) tensors."""
    return dict(_tsv_state_dict(fmt, seed))


@functools.lru_cache(maxsize=None)
def _tsv_state_dict(fmt: str, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in read_tsv()[fmt].items():
        if key.endswith("num_batches_tracked") or key == "global_step":
            out[key] = torch.randint(0, 1000, shape, generator=gen, dtype=torch.int64)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith("running_mean") or key.endswith("bias"):
            out[key] = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # BatchNorm gamma
            out[key] = 0.5 + torch.rand(shape, generator=gen)
        else:
            fan_in = math.prod(shape[1:])
            out[key] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    return out


def tsv_container(fmt: str, state: dict[str, torch.Tensor]) -> object:
    """The object each implementation saves."""
    if fmt == "openpcdet":
        return {"model_state": state, "epoch": 80, "it": 12345, "version": "pcdet+0.6.0", "optimizer_state": {"lr": 0.003}}
    if fmt == "mmdet3d":
        return {"state_dict": state, "meta": {}}
    return state


# ---- raw pillars and the native 10-channel features -------------------------------------------------
def random_pillars(cfg: PointPillarsConfig, num_pillars: int = 64, seed: int = 0):
    """Zero-padded raw points ``[P, M, 4]``, ``num_points [P]`` (1..M, both ends included) and
    unique ``coords [P, 2]`` = (ix, iy); every point lies inside its pillar."""
    gen = torch.Generator().manual_seed(seed)
    nx, ny, _ = cfg.grid_size
    m = cfg.voxel.max_points_per_pillar
    r, v = cfg.voxel.point_cloud_range, cfg.voxel.voxel_size
    cells = torch.randperm(nx * ny, generator=gen)[:num_pillars]
    coords = torch.stack([cells % nx, cells // nx], 1)
    num = torch.randint(1, m + 1, (num_pillars,), generator=gen)
    num[0], num[1] = 1, m
    u = torch.rand(num_pillars, m, 4, generator=gen, dtype=torch.float64)
    pts = torch.empty(num_pillars, m, 4, dtype=torch.float64)
    pts[..., 0] = r[0] + (coords[:, None, 0] + u[..., 0]) * v[0]
    pts[..., 1] = r[1] + (coords[:, None, 1] + u[..., 1]) * v[1]
    pts[..., 2] = r[2] + u[..., 2] * (r[5] - r[2])
    pts[..., 3] = u[..., 3]
    pts[torch.arange(m)[None, :] >= num[:, None]] = 0
    return pts, num, coords


def native_features(cfg: PointPillarsConfig, pts, num, coords) -> torch.Tensor:
    """x, y, z, r, xyz - mean(valid xyz), x - x_centre, y - y_centre, z - z_centre; zero for padding."""
    r, v = cfg.voxel.point_cloud_range, cfg.voxel.voxel_size
    valid = (torch.arange(pts.shape[1])[None, :] < num[:, None]).to(pts.dtype)[..., None]
    mean = (pts[..., :3] * valid).sum(1, keepdim=True) / num[:, None, None].to(pts.dtype)
    c = coords.to(pts.dtype)
    z = torch.full_like(c[:, 0], r[2] + v[2] / 2)
    centre = torch.stack([c[:, 0] * v[0] + v[0] / 2 + r[0], c[:, 1] * v[1] + v[1] / 2 + r[1], z], 1)[:, None, :]
    feats = torch.cat([pts, pts[..., :3] - mean, pts[..., :3] - centre], -1)
    return feats * valid


# ---- reference source networks ------------------------------------------------------------------
def _bn2d(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _PFNLayer(nn.Module):
    """OpenPCDet / mmdet3d PFNLayer (last layer, max pooling)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=False)
        self.norm = nn.BatchNorm1d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        x = self.norm(x.permute(0, 2, 1).contiguous()).permute(0, 2, 1).contiguous()
        return torch.max(F.relu(x), dim=1)[0]


def _blocks(cfg: PointPillarsConfig, zero_pad: bool) -> nn.ModuleList:
    bb = cfg.network.backbone
    blocks = nn.ModuleList()
    cin = cfg.network.pfn_channels
    for n, stride, cout in zip(bb.layer_nums, bb.layer_strides, bb.num_filters):
        if zero_pad:  # OpenPCDet BaseBEVBackbone
            layers = [nn.ZeroPad2d(1), nn.Conv2d(cin, cout, 3, stride=stride, padding=0, bias=False), _bn2d(cout), nn.ReLU()]
        else:  # mmdet3d SECOND / zhulf0804 Backbone
            layers = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), _bn2d(cout), nn.ReLU()]
        for _ in range(n):
            layers += [nn.Conv2d(cout, cout, 3, padding=1, bias=False), _bn2d(cout), nn.ReLU()]
        blocks.append(nn.Sequential(*layers))
        cin = cout
    return blocks


def _deblocks(cfg: PointPillarsConfig) -> nn.ModuleList:
    bb = cfg.network.backbone
    return nn.ModuleList(
        nn.Sequential(nn.ConvTranspose2d(cin, cout, s, stride=s, bias=False), _bn2d(cout), nn.ReLU())
        for cin, s, cout in zip(bb.num_filters, bb.upsample_strides, bb.num_upsample_filters)
    )


def _head(cfg: PointPillarsConfig, names: tuple[str, str, str]) -> nn.Module:
    head = nn.Module()
    a, k = cfg.num_anchors_per_location, cfg.num_classes
    c = cfg.network.backbone.out_channels
    for name, out in zip(names, (a * k, a * 7, a * 2)):
        setattr(head, name, nn.Conv2d(c, out, 1))
    return head


class SourceNet(nn.Module):
    """A source implementation's network: ``pfn(points, num, coords)`` on its own feature layout
    and ``rpn(canvas)`` -> (features, cls, box, dir) with its own module indexing."""

    fmt: str

    def rpn(self, canvas: torch.Tensor):
        blocks, deblocks, head, names = self._rpn_parts()
        ups, x = [], canvas
        for block, deblock in zip(blocks, deblocks):
            x = block(x)
            ups.append(deblock(x))
        feats = torch.cat(ups, 1)
        return (feats, *(getattr(head, n)(feats) for n in names))


class OpenPCDetNet(SourceNet):
    fmt = "openpcdet"

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vfe = nn.Module()
        self.vfe.pfn_layers = nn.ModuleList([_PFNLayer(10, cfg.network.pfn_channels)])
        self.backbone_2d = nn.Module()
        self.backbone_2d.blocks = _blocks(cfg, zero_pad=True)
        self.backbone_2d.deblocks = _deblocks(cfg)
        self.dense_head = _head(cfg, ("conv_cls", "conv_box", "conv_dir_cls"))
        self.register_buffer("global_step", torch.zeros(1, dtype=torch.int64))

    def _rpn_parts(self):
        return self.backbone_2d.blocks, self.backbone_2d.deblocks, self.dense_head, ("conv_cls", "conv_box", "conv_dir_cls")

    def pfn(self, pts, num, coords):
        """PillarVFE: [points, f_cluster, f_center], masked. OpenPCDet coords are (b, z, y, x); z = 0."""
        r, v = self.cfg.voxel.point_cloud_range, self.cfg.voxel.voxel_size
        mean = pts[:, :, :3].sum(1, keepdim=True) / num.type_as(pts).view(-1, 1, 1)
        f_cluster = pts[:, :, :3] - mean
        f_center = torch.zeros_like(pts[:, :, :3])
        f_center[:, :, 0] = pts[:, :, 0] - (coords[:, 0].to(pts.dtype).unsqueeze(1) * v[0] + (v[0] / 2 + r[0]))
        f_center[:, :, 1] = pts[:, :, 1] - (coords[:, 1].to(pts.dtype).unsqueeze(1) * v[1] + (v[1] / 2 + r[1]))
        f_center[:, :, 2] = pts[:, :, 2] - (0 * v[2] + (v[2] / 2 + r[2]))
        features = torch.cat([pts, f_cluster, f_center], -1)
        mask = (torch.arange(pts.shape[1])[None, :] < num[:, None]).type_as(pts)
        return self.vfe.pfn_layers[0](features * mask.unsqueeze(-1))


class MMDet3DNet(SourceNet):
    fmt = "mmdet3d"

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.voxel_encoder = nn.Module()
        self.voxel_encoder.pfn_layers = nn.ModuleList([_PFNLayer(10, cfg.network.pfn_channels)])
        self.backbone = nn.Module()
        self.backbone.blocks = _blocks(cfg, zero_pad=False)
        self.neck = nn.Module()
        self.neck.deblocks = _deblocks(cfg)
        self.bbox_head = _head(cfg, ("conv_cls", "conv_reg", "conv_dir_cls"))

    def _rpn_parts(self):
        return self.backbone.blocks, self.neck.deblocks, self.bbox_head, ("conv_cls", "conv_reg", "conv_dir_cls")

    def pfn(self, pts, num, coords):
        """PillarFeatureNet, legacy=True: the centre offsets overwrite x, y, z in place."""
        r, v = self.cfg.voxel.point_cloud_range, self.cfg.voxel.voxel_size
        features = pts.clone()
        mean = features[:, :, :3].sum(dim=1, keepdim=True) / num.type_as(features).view(-1, 1, 1)
        f_cluster = features[:, :, :3] - mean
        f_center = features[:, :, :3]  # a view: legacy mode writes into `features`
        f_center[:, :, 0] = f_center[:, :, 0] - (coords[:, 0].type_as(features).unsqueeze(1) * v[0] + (v[0] / 2 + r[0]))
        f_center[:, :, 1] = f_center[:, :, 1] - (coords[:, 1].type_as(features).unsqueeze(1) * v[1] + (v[1] / 2 + r[1]))
        f_center[:, :, 2] = f_center[:, :, 2] - (0 * v[2] + (v[2] / 2 + r[2]))
        features = torch.cat([features, f_cluster, f_center], dim=-1)
        mask = (torch.arange(pts.shape[1])[None, :] < num[:, None]).type_as(features)
        return self.voxel_encoder.pfn_layers[0](features * mask.unsqueeze(-1))


class ZhulfNet(SourceNet):
    fmt = "zhulf0804"

    def __init__(self, cfg: PointPillarsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pillar_encoder = nn.Module()
        self.pillar_encoder.conv = nn.Conv1d(9, cfg.network.pfn_channels, 1, bias=False)
        self.pillar_encoder.bn = nn.BatchNorm1d(cfg.network.pfn_channels, eps=1e-3, momentum=0.01)
        self.backbone = nn.Module()
        self.backbone.multi_blocks = _blocks(cfg, zero_pad=False)
        self.neck = nn.Module()
        self.neck.decoder_blocks = _deblocks(cfg)
        self.head = _head(cfg, ("conv_cls", "conv_reg", "conv_dir_cls"))

    def _rpn_parts(self):
        return self.backbone.multi_blocks, self.neck.decoder_blocks, self.head, ("conv_cls", "conv_reg", "conv_dir_cls")

    def pfn(self, pts, num, coords):
        """PillarEncoder: [x-xc, y-yc, z, r, mean offsets, x-xc, y-yc] through Conv1d + BN + ReLU + max."""
        r, v = self.cfg.voxel.point_cloud_range, self.cfg.voxel.voxel_size
        offset_pt_center = pts[:, :, :3] - pts[:, :, :3].sum(1, keepdim=True) / num[:, None, None]
        c = coords.to(pts.dtype)  # the original multiplies int64 coords in float32; float64 here for a tight test
        x_off = pts[:, :, :1] - (c[:, None, 0:1] * v[0] + (v[0] / 2 + r[0]))
        y_off = pts[:, :, 1:2] - (c[:, None, 1:2] * v[1] + (v[1] / 2 + r[1]))
        features = torch.cat([pts, offset_pt_center, x_off, y_off], dim=-1)
        features[:, :, 0:1] = x_off
        features[:, :, 1:2] = y_off
        mask = (torch.arange(pts.shape[1])[:, None] < num[None, :]).permute(1, 0).contiguous()
        features = features * mask[:, :, None]
        features = features.permute(0, 2, 1).contiguous()
        features = F.relu(self.pillar_encoder.bn(self.pillar_encoder.conv(features)))
        return torch.max(features, dim=-1)[0]


SOURCE_NETS = {"openpcdet": OpenPCDetNet, "mmdet3d": MMDet3DNet, "zhulf0804": ZhulfNet}
