"""The package's own checkpoint file: a safetensors file of native keys plus the config.

Metadata (all strings): ``config`` (canonical JSON of the config), ``config_hash`` (of that
text, :meth:`PointPillarsConfig.hash`), ``weights_sha256`` (of the stored weights, as ONNX
graphs record it: :func:`~pointpillars_trt.exporter.state_dict_sha256`), ``format_version``,
``dtype`` (storage dtype), and whatever the caller adds (training command, seed, source
checkpoint, ...). Weights may be stored as float16; they load back as float32. Loading checks
both hashes (:func:`verify_native`); files written before ``weights_sha256`` existed lack it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..config import PointPillarsConfig, check_same_config, load_config
from ..errors import CheckpointError, ConfigError
from ..io.atomic import file_mode
from .verify import check_state_dict, reference_state_dict

FORMAT_VERSION = "1"
RESERVED_METADATA = ("config", "config_hash", "weights_sha256", "format_version", "dtype")
STORAGE_DTYPES = {torch.float32: "float32", torch.float16: "float16"}


def save_native(
    path: str | Path,
    state_dict_or_model: Mapping[str, torch.Tensor] | nn.Module,
    config: PointPillarsConfig,
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a native safetensors checkpoint; returns its path.

    The state dict must fit ``build_model(config)`` exactly (else :class:`CheckpointError`
    listing the differences). Floating tensors are stored as ``dtype`` (float32 or float16),
    ``num_batches_tracked`` as int64. The reserved metadata keys (:data:`RESERVED_METADATA`)
    are always written by this function and override the caller's.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if dtype not in STORAGE_DTYPES:
        raise CheckpointError(f"{path}: storage dtype must be torch.float32 or torch.float16, not {dtype}")
    extra = dict(metadata or {})
    bad = {k: type(v).__name__ for k, v in extra.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise CheckpointError(f"{path}: metadata keys and values must be strings; offending entries: {bad}")
    state = state_dict_or_model.state_dict() if isinstance(state_dict_or_model, nn.Module) else state_dict_or_model
    check_state_dict(state, reference_state_dict(config), source=f"{path} (state dict to save)")
    tensors = {}
    for key, t in state.items():
        t = t.detach().cpu()
        t = t.to(torch.int64) if key.endswith("num_batches_tracked") else t.to(dtype)
        tensors[key] = t.contiguous()
    extra.update(
        config=config.to_json(), config_hash=config.hash(), weights_sha256=_weights_sha256(tensors),
        format_version=FORMAT_VERSION, dtype=STORAGE_DTYPES[dtype],
    )
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(tensors, str(tmp), metadata=extra)
        os.chmod(tmp, file_mode())  # save_file makes it 0600
        os.replace(tmp, path)
    except Exception as exc:  # OSError, or safetensors' own SafetensorError for I/O failures
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: cannot write checkpoint ({exc})") from exc
    return path


def native_config(info: Mapping[str, str], config: PointPillarsConfig | None, where: str) -> PointPillarsConfig:
    """The config of a native checkpoint.

    The file's stored config wins; a ``config`` passed by the caller must equal it
    (:class:`ConfigError` naming the differing fields otherwise). Without a stored config
    (a bare native ``.pth``) the caller's config or the default is used.
    """
    version = info.get("format_version")
    if version is not None and version != FORMAT_VERSION:
        raise CheckpointError(f"{where}: native checkpoint format_version {version!r}; this package reads {FORMAT_VERSION!r}")
    stored = info.get("config")
    if stored is None:
        return config if config is not None else load_config()
    try:
        file_cfg = PointPillarsConfig.from_json(stored)
    except (ConfigError, json.JSONDecodeError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{where}: the config stored in the checkpoint is invalid: {exc}") from exc
    if config is not None:
        check_same_config(config, stored, f"checkpoint {where}")
    return file_cfg


def _weights_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    from ..exporter.metadata import state_dict_sha256  # the hash ONNX graphs carry (lazy: exporter imports us)

    return state_dict_sha256(tensors)


def verify_native(info: Mapping[str, str], tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Check a native file's ``config_hash`` against its stored config text and its
    ``weights_sha256`` against its tensors (each only when the file records it).

    Raises:
        CheckpointError: naming the file and the field that does not match (an edited embedded
            config, changed or corrupted weights); ``load_checkpoint(..., verify=False)`` skips this.
    """
    stored, recorded = info.get("config"), info.get("config_hash")
    if stored is not None and recorded is not None:
        actual = hashlib.sha256(stored.encode()).hexdigest()[:16]
        if actual != recorded:
            raise CheckpointError(
                f"{where}: config_hash mismatch: the file records {recorded!r}, its stored config hashes to "
                f"{actual!r} (the embedded config was edited); pass verify=False to load it anyway"
            )
    recorded = info.get("weights_sha256")
    if recorded is not None:
        actual = _weights_sha256(tensors)
        if actual != recorded:
            raise CheckpointError(
                f"{where}: weights_sha256 mismatch: the file records {recorded[:16]}..., its weights hash to "
                f"{actual[:16]}... (the weights were changed or corrupted); pass verify=False to load it anyway"
            )
