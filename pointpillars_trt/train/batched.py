"""Batched training forward: raw pillar points -> decorated features -> PFN -> batched scatter -> RPN.

The model's own scatter (:class:`~pointpillars_trt.model.PointPillarsScatter`) builds a batch-1
canvas, which is what inference and export need. Training concatenates the pillars of ``B``
frames with a batch index and scatters them onto ``[B, C, ny, nx]`` here.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import PointPillarsConfig
from ..model import PointPillars
from ..voxelize.numba_cpu import group_points


class RawPillarizer:
    """Points -> raw pillars ``(raw [P, M, 4], num_points [P], coords [P, 2] (ix, iy))`` with the
    numba voxelizer's grouping rules (first-seen order, first ``M`` points, at most ``max_pillars``).

    Decoration happens on the training device (:func:`decorate`), so workers ship 4 instead of 10
    channels per point.
    """

    def __init__(self, cfg: PointPillarsConfig, max_pillars: int | None = None) -> None:
        v = cfg.voxel
        self.max_pillars = int(max_pillars or v.max_pillars_train)
        nx, ny, nz = v.grid_size
        self._grid = np.array([nx, ny, nz], dtype=np.int64)
        self._pc_min = np.asarray(v.point_cloud_range[:3], dtype=np.float32)
        self._voxel_size = np.asarray(v.voxel_size, dtype=np.float32)
        self._cell_to_pillar = np.full(nx * ny, -1, dtype=np.int32)
        self._raw = np.zeros((self.max_pillars, v.max_points_per_pillar, 4), dtype=np.float32)
        self._num_points = np.zeros(self.max_pillars, dtype=np.int32)
        self._coords = np.zeros((self.max_pillars, 2), dtype=np.int32)

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pts = np.ascontiguousarray(points[:, :4], dtype=np.float32)
        P = group_points(
            pts, self._pc_min, self._voxel_size, self._grid, self.max_pillars,
            self._cell_to_pillar, self._raw, self._num_points, self._coords,
        )[0]
        raw = self._raw[:P].copy()
        num_points = self._num_points[:P].copy()
        # slots beyond num_points hold stale data from earlier frames: zero them
        slots = np.arange(raw.shape[1])[None, :]
        raw[slots >= num_points[:, None]] = 0.0
        return raw, num_points, self._coords[:P].copy()


def decorate(raw: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor, cfg: PointPillarsConfig) -> torch.Tensor:
    """Torch version of :func:`~pointpillars_trt.voxelize.decorate_pillars`: ``raw [P, M, 4]``
    (invalid slots zero), ``num_points [P]``, ``coords [P, >=2]`` whose last two columns are
    ``(ix, iy)`` -> ``[P, M, 10]`` float32 with invalid slots zero."""
    v = cfg.voxel
    M = raw.shape[1]
    mask = (torch.arange(M, device=raw.device)[None, :] < num_points[:, None]).to(raw.dtype)  # [P, M]
    xyz = raw[:, :, :3]
    mean = xyz.sum(dim=1, keepdim=True) / num_points.clamp(min=1).to(raw.dtype)[:, None, None]
    ix = coords[:, -2].to(raw.dtype)
    iy = coords[:, -1].to(raw.dtype)
    vx, vy, vz = v.voxel_size
    x0, y0, z0 = v.point_cloud_range[:3]
    centre = torch.stack(
        [ix * vx + (vx * 0.5 + x0), iy * vy + (vy * 0.5 + y0), torch.full_like(ix, z0 + vz * 0.5)], dim=1
    )[:, None, :]
    out = torch.cat([raw, xyz - mean, xyz - centre], dim=2)
    return out * mask[:, :, None]


def scatter_batch(pillar_features: torch.Tensor, coords: torch.Tensor, batch_size: int, nx: int, ny: int) -> torch.Tensor:
    """``[P, C]`` features at ``coords [P, 3]`` = ``(b, ix, iy)`` -> ``[B, C, ny, nx]`` canvas.

    The result is a permuted view of a ``[B, ny, nx, C]`` buffer, i.e. already in channels-last
    memory format. ``(b, ix, iy)`` must be unique and inside the grid; empty cells are zero.
    """
    c = pillar_features.shape[1]
    canvas = pillar_features.new_zeros(batch_size * ny * nx, c)
    flat = (coords[:, 0].long() * ny + coords[:, 2].long()) * nx + coords[:, 1].long()
    canvas = canvas.index_put((flat,), pillar_features)
    return canvas.view(batch_size, ny, nx, c).permute(0, 3, 1, 2)


def forward_batch(
    model: PointPillars, raw: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``model`` on a batch of concatenated raw pillars; returns the head maps
    ``cls [B, A*K, H, W]``, ``box [B, A*7, H, W]``, ``dir [B, A*D, H, W]``."""
    cfg = model.cfg
    nx, ny, _ = cfg.grid_size
    feats = decorate(raw, num_points, coords, cfg)
    pf = model.pfn(feats, num_points)
    canvas = scatter_batch(pf, coords, batch_size, nx, ny)
    if canvas.device.type != "cuda":
        canvas = canvas.contiguous()  # CPU convolutions are faster in NCHW
    return model.rpn(canvas)


def flatten_head_batch(cls: torch.Tensor, box: torch.Tensor, dirs: torch.Tensor, cfg: PointPillarsConfig):
    """Head maps -> per-anchor rows ``[B, N, K]``, ``[B, N, 7]``, ``[B, N, D]`` in the order of
    :func:`~pointpillars_trt.postprocess.generate_anchors` (``N = H * W * A``)."""
    B = cls.shape[0]
    k, d = cfg.num_classes, cfg.head.num_dir_bins
    return (
        cls.permute(0, 2, 3, 1).reshape(B, -1, k),
        box.permute(0, 2, 3, 1).reshape(B, -1, 7),
        dirs.permute(0, 2, 3, 1).reshape(B, -1, d),
    )


def init_head(model: PointPillars, prior: float = 0.01) -> None:
    """OpenPCDet's head initialisation: class bias ``-log((1 - p) / p)``, box weights ``N(0, 0.001)``."""
    rpn = model.rpn
    with torch.no_grad():
        rpn.conv_cls.bias.fill_(-float(np.log((1 - prior) / prior)))
        torch.nn.init.normal_(rpn.conv_box.weight, mean=0.0, std=0.001)
