"""``load_checkpoint``: any supported file -> native float32 state dict + the config to decode it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from ..config import PointPillarsConfig, load_config
from .detect import LAYOUTS, check_forced_format, detect_format
from .native import native_config, verify_native
from .reader import read_checkpoint_file
from .verify import check_state_dict, check_weights, reference_state_dict


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint in native form.

    ``state_dict`` has native keys (``pfn.*``, ``rpn.*``), float32 tensors (int64
    ``num_batches_tracked``) and fits ``build_model(config)`` exactly. ``config`` carries the
    source's decoding conventions in ``config.head``. ``format`` is the file's format (one of
    ``FORMATS``); ``metadata`` holds string facts (source format, epoch, caller metadata, ...).
    """

    state_dict: dict[str, torch.Tensor]
    config: PointPillarsConfig
    format: str
    path: Path
    metadata: dict[str, str] = field(default_factory=dict)


def load_checkpoint(
    path: str | Path,
    config: PointPillarsConfig | None = None,
    format: str | None = None,
    *,
    source_classes: Sequence[str] | None = None,
    verify: bool = True,
) -> LoadedCheckpoint:
    """Read a native, OpenPCDet, mmdet3d or zhulf0804 checkpoint and convert it to native form.

    * ``format``: force the format instead of detecting it from the key names.
    * ``config``: the architecture to fit. Native files carry their config; a different
      ``config`` raises :class:`ConfigError`. For foreign formats ``config`` (default: the
      format's preset in ``configs/``, which holds the source's point-range filter and
      post-processing) is copied with ``head`` set to the source's conventions; a given
      ``config`` keeps its own ``voxel`` and ``postprocess`` (it overrides the preset).
    * ``source_classes``: the class order the foreign checkpoint was trained with, if it is not
      the format's usual one (mmdet3d files that name their classes in ``meta`` are read from it).
    * ``verify``: check a native file's ``config_hash`` and ``weights_sha256``
      (:func:`~pointpillars_trt.checkpoint.native.verify_native`); ``False`` is the explicit
      escape hatch for a file you know was edited.

    Raises :class:`CheckpointError` naming the file for unreadable files, unknown formats,
    tensors that cannot be weights (sparse/meta, a dtype other than float32/float16/bfloat16,
    NaN/inf values; :func:`~pointpillars_trt.checkpoint.verify.check_weights`), a hash mismatch,
    and state dicts that do not fit the architecture (listing missing, unexpected, mis-shaped keys).
    """
    path = Path(path)
    where = str(path)
    raw = read_checkpoint_file(path)
    if format is not None:
        check_forced_format(raw.tensors, format, where)
        fmt = format
    else:
        fmt = detect_format(raw.tensors, where)
    dropped = LAYOUTS[fmt].drop if fmt in LAYOUTS else frozenset()
    check_weights({k: t for k, t in raw.tensors.items() if k not in dropped}, where)

    origins: dict[str, str] = {}
    if fmt == "native":
        if verify:
            verify_native(raw.info, raw.tensors, where)
        cfg = native_config(raw.info, config, where)
        state = dict(raw.tensors)
        metadata = {k: v for k, v in raw.info.items() if k != "config"}
    else:
        layout = LAYOUTS[fmt]
        cfg = (config if config is not None else load_config(layout.preset)).replace(head=dict(layout.head))
        classes = tuple(source_classes or raw.classes or layout.classes)
        state, origins = layout.to_native(raw.tensors, cfg.classes, classes, where)
        metadata = {k: v for k, v in raw.info.items() if k not in ("config", "format_version")}
        metadata.update(source_format=fmt, source_file=path.name, source_classes=",".join(classes))

    reference = reference_state_dict(cfg)
    state = _as_float32(state)
    for key in reference:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.int64)
    check_state_dict(state, reference, source=where, origins=origins)
    state = {k: state[k] for k in reference}  # model order
    return LoadedCheckpoint(state_dict=state, config=cfg, format=fmt, path=path, metadata=metadata)


def _as_float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in state.items():
        t = t.detach()
        out[key] = t.to(torch.int64) if key.endswith("num_batches_tracked") else t.to(torch.float32).contiguous()
    return out
