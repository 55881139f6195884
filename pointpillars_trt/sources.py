"""Where a detector's weights and config come from: a checkpoint (native, OpenPCDet, mmdet3d,
zhulf0804), the shipped demo model or seeded random weights. (What an engine / ONNX folder carries
is :func:`pointpillars_trt.artifacts.artifact_config`.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .config import PointPillarsConfig, load_config

DEMO_MODEL = Path(__file__).resolve().parent / "data" / "demo_model.safetensors"


@dataclass(frozen=True)
class ModelSource:
    """Where the weights came from: a file and its format, or random weights (``path is None``)."""

    path: Path | None
    format: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def is_random(self) -> bool:
        return self.path is None

    def describe(self) -> str:
        if self.path is None:
            return "RANDOM weights (no trained checkpoint: boxes are meaningless)"
        return f"{self.path} ({self.format})"


def resolve_weights(path: str | Path | None = None, config: PointPillarsConfig | str | Path | None = None,
                    format: str | None = None) -> tuple[PointPillarsConfig, Mapping[str, Any], ModelSource]:
    """``(config, state_dict, source)`` of the weights a ``from_checkpoint(path, config)`` call
    means: the checkpoint at ``path`` (native, OpenPCDet, mmdet3d or zhulf0804; ``format`` forces
    one); with ``path=None`` the shipped demo model, or random weights (seed 0, ``config`` or the
    default config) when the package has none (``source.is_random``)."""
    from .checkpoint import load_checkpoint

    cfg = load_config(config) if isinstance(config, (str, Path)) else config
    if path is None and DEMO_MODEL.is_file():
        path = DEMO_MODEL
    if path is None:
        import torch

        from .model import build_model

        cfg = cfg or load_config()
        torch.manual_seed(0)
        return cfg, build_model(cfg).state_dict(), ModelSource(None, "random")
    ckpt = load_checkpoint(path, config=cfg, format=format)
    return ckpt.config, ckpt.state_dict, ModelSource(Path(path), ckpt.format, dict(ckpt.metadata))


__all__ = ["DEMO_MODEL", "ModelSource", "resolve_weights"]
