"""Random-weight checkpoints in any supported format (for tests and for trying the tools).

The foreign layouts are produced from a random native model by the inverse conversion
(:meth:`SourceLayout.from_native`), so the key names and shapes come from the code, not from a
table. Weights are scaled so that activations stay O(1) on real point clouds: Kaiming-normal
convolutions, the PFN's absolute x, y, z weights divided by the point-cloud range's extent,
BatchNorm ``running_var ~ U(0.5, 1.5)``, and a class-logit bias of ``-log(99)`` (prior 0.01) as
the public implementations initialise it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config import PointPillarsConfig
from ..errors import CheckpointError
from ..model import PointPillars
from .detect import FORMATS, LAYOUTS
from .native import save_native

CLASS_PRIOR = 0.01


def random_native_state_dict(cfg: PointPillarsConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random native state dict fitting ``build_model(cfg)``, deterministic in ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    model = PointPillars(cfg)
    extent = max(abs(v) for v in cfg.voxel.point_cloud_range)

    def normal(shape: torch.Size, std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen).mul_(std)

    def uniform(shape: torch.Size, lo: float, hi: float) -> torch.Tensor:
        return torch.rand(shape, generator=gen).mul_(hi - lo).add_(lo)

    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(uniform(m.weight.shape, 0.5, 1.5))
                m.bias.copy_(normal(m.bias.shape, 0.1))
                m.running_mean.copy_(normal(m.running_mean.shape, 0.1))
                m.running_var.copy_(uniform(m.running_var.shape, 0.5, 1.5))
                m.num_batches_tracked.zero_()
            elif isinstance(m, nn.Linear):  # the PFN: inputs x, y, z are metres across the range
                w = normal(m.weight.shape, math.sqrt(2.0 / m.in_features))
                w[:, :3] /= extent
                m.weight.copy_(w)
            elif isinstance(m, nn.ConvTranspose2d):  # stride == kernel: each output sees in_channels inputs
                m.weight.copy_(normal(m.weight.shape, math.sqrt(2.0 / m.in_channels)))
            elif isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                head = m.bias is not None
                m.weight.copy_(normal(m.weight.shape, math.sqrt((1.0 if head else 2.0) / fan_in)))
                if head:
                    prior = -math.log((1 - CLASS_PRIOR) / CLASS_PRIOR) if name.endswith("conv_cls") else 0.0
                    m.bias.copy_(prior + normal(m.bias.shape, 0.1))
    return dict(model.state_dict())


def make_source_state_dict(format: str, cfg: PointPillarsConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with the key names, shapes and layout of ``format``.

    For foreign formats the config's classes must be the format's classes (any order); the
    source file's head uses the format's own class order.
    """
    if format not in FORMATS:
        raise CheckpointError(f"unknown checkpoint format {format!r}; known formats are {FORMATS}")
    native = random_native_state_dict(cfg, seed)
    if format == "native":
        return native
    return LAYOUTS[format].from_native(native, cfg.classes)


def make_source_checkpoint(format: str, cfg: PointPillarsConfig, seed: int = 0) -> Any:
    """The object a foreign implementation would ``torch.save``: its state dict in its container."""
    if format == "native":
        raise CheckpointError("native checkpoints are safetensors files: use write_checkpoint or save_native")
    state = make_source_state_dict(format, cfg, seed)
    container = LAYOUTS[format].container
    if container == "model_state":
        return {"model_state": state, "epoch": 0, "it": 0, "version": "synthetic"}
    if container == "state_dict":
        return {"state_dict": state, "meta": {"epoch": 0}}
    return state


def write_checkpoint(
    path: str | Path,
    format: str,
    cfg: PointPillarsConfig,
    seed: int = 0,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a random-weight checkpoint of ``format`` to ``path`` (safetensors for native,
    ``torch.save`` for the others); returns the path."""
    path = Path(path)
    if format == "native":
        meta = {"generator": "random weights (pointpillars_trt.checkpoint.synthetic)", "seed": str(seed)}
        meta.update(metadata or {})
        return save_native(path, random_native_state_dict(cfg, seed), cfg, meta)
    obj = make_source_checkpoint(format, cfg, seed)
    try:
        torch.save(obj, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a missing directory as RuntimeError
        raise CheckpointError(f"{path}: cannot write checkpoint ({exc})") from exc
    return path
