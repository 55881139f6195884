"""Checking a converted state dict against the model the config builds."""

from __future__ import annotations

import functools
from typing import Mapping

import torch

from ..config import PointPillarsConfig
from ..errors import CheckpointError
from ..model import build_model

LIST_LIMIT = 30
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # each casts to float32 exactly


def reference_state_dict(cfg: PointPillarsConfig) -> dict[str, torch.Tensor]:
    """The names, shapes and dtypes of ``build_model(cfg).state_dict()``, as meta tensors (no data)."""
    return dict(_reference(cfg))


@functools.lru_cache(maxsize=8)
def _reference(cfg: PointPillarsConfig) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in build_model(cfg).state_dict().items()}


def _shape(t: torch.Tensor) -> str:
    return str(list(t.shape))


def _listing(items: list[str]) -> str:
    shown = items[:LIST_LIMIT]
    more = f"\n      ... and {len(items) - LIST_LIMIT} more" if len(items) > LIST_LIMIT else ""
    return "".join(f"\n      {line}" for line in shown) + more


def state_dict_problems(
    state_dict: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    origins: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """``{"missing": [...], "unexpected": [...], "mis-shaped": [...]}`` as printable lines."""
    origins = origins or {}

    def name(key: str) -> str:
        src = origins.get(key)
        return f"{key} (from {src})" if src and src != key else key

    missing = [f"{k} {_shape(reference[k])}" for k in reference if k not in state_dict]
    unexpected = [f"{name(k)} {_shape(t)}" for k, t in state_dict.items() if k not in reference]
    misshaped = [
        f"{name(k)}: checkpoint {_shape(t)} vs model {_shape(reference[k])}"
        for k, t in state_dict.items()
        if k in reference and tuple(t.shape) != tuple(reference[k].shape)
    ]
    return {"missing": missing, "unexpected": unexpected, "mis-shaped": misshaped}


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    source: object = "checkpoint",
    origins: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly the keys and shapes of ``reference``.

    The message lists missing keys (with the model's shape), unexpected keys and mis-shaped keys
    (checkpoint vs model shape); ``origins`` maps native keys to the source file's names, shown
    alongside. ``source`` names the file in the message.
    """
    problems = state_dict_problems(state_dict, reference, origins)
    if not any(problems.values()):
        return
    parts = [f"  {kind} ({len(lines)}):{_listing(lines)}" for kind, lines in problems.items() if lines]
    raise CheckpointError(
        f"{source}: the checkpoint does not fit the architecture the config describes "
        "(is it a PointPillars checkpoint trained with this config's backbone, anchors and classes?)\n"
        + "\n".join(parts)
    )


def check_weights(tensors: Mapping[str, torch.Tensor], source: object = "checkpoint") -> None:
    """Raise :class:`CheckpointError` naming the first tensor that cannot be a weight.

    Every tensor must be dense (strided) with data (not a meta tensor); BatchNorm's
    ``num_batches_tracked`` an integer, every other tensor float32, float16 or bfloat16
    (:data:`WEIGHT_DTYPES`, whose cast to float32 is exact: a bool, integer or float64 tensor is
    not silently cast) and finite.
    """
    for key, t in tensors.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{source}: state dict key {key!r} is not a string")
        if t.layout != torch.strided or t.is_meta or t.is_quantized:
            kind = "a meta tensor (no data)" if t.is_meta else f"not a dense tensor (layout {t.layout}, quantized {t.is_quantized})"
            raise CheckpointError(f"{source}: tensor {key!r} is {kind}; weights must be dense tensors with data")
        if key.endswith("num_batches_tracked"):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise CheckpointError(f"{source}: tensor {key!r} has dtype {t.dtype}; num_batches_tracked is an integer")
            continue
        if t.dtype not in WEIGHT_DTYPES:
            raise CheckpointError(
                f"{source}: tensor {key!r} has dtype {t.dtype}; weights must be float32, float16 or bfloat16 "
                "(a bool, integer or float64 tensor is not cast silently; re-save the weights as float32)"
            )
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            bad = int(finite.numel() - finite.sum())
            raise CheckpointError(f"{source}: tensor {key!r} holds {bad} NaN/inf value(s) of {t.numel()}")
