"""Reading checkpoint files (safetensors or PyTorch pickles) and unwrapping their containers."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import CheckpointError


@dataclass
class RawCheckpoint:
    """What a file holds: its tensors (source names), string facts about it, the classes it names."""

    tensors: dict[str, torch.Tensor]
    info: dict[str, str] = field(default_factory=dict)
    classes: tuple[str, ...] | None = None
    kind: str = "torch"  # "torch" or "safetensors"


def read_checkpoint_file(path: Path) -> RawCheckpoint:
    """Read ``path``; raise :class:`CheckpointError` naming it if it is missing or unreadable."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        return _read_safetensors(path)
    return unwrap(_torch_load(path), path)


# ---- safetensors --------------------------------------------------------------------------------
def _looks_like_safetensors(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + n <= path.stat().st_size


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file (its header only, no tensor is read);
    CheckpointError naming the file when it cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError, ...
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def _read_safetensors(path: Path) -> RawCheckpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            info = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError, ...
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    return RawCheckpoint(tensors=tensors, info=info, kind="safetensors")


# ---- PyTorch pickles ----------------------------------------------------------------------------
def numpy_safe_globals() -> list[Any]:
    """Numpy scalar/array/dtype constructors, allowed when unpickling with ``weights_only=True``.

    OpenPCDet and mmcv checkpoints often carry numpy values (best scores, anchors) next to the
    weights. Names written by numpy 1.x (``numpy.core``) map onto numpy 2.x's ``numpy._core``.
    """
    core = getattr(np, "_core", None) or np.core
    allowed: list[Any] = [np.ndarray, np.dtype, core.multiarray.scalar, core.multiarray._reconstruct]
    for mod in ("numpy.core", "numpy._core"):
        allowed += [(core.multiarray.scalar, f"{mod}.multiarray.scalar"), (core.multiarray._reconstruct, f"{mod}.multiarray._reconstruct")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as first:
        error = first
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is not None and isinstance(error, pickle.UnpicklingError):
        try:
            with safe_globals(numpy_safe_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError) as second:
            error = second
    unsafe = _unsafe_globals(path)
    if unsafe:
        raise CheckpointError(
            f"{path}: holds Python objects other than tensors and numpy values ({', '.join(unsafe[:8])}); "
            "they are not unpickled (torch.load weights_only=True) because that can run arbitrary code. "
            "If you trust the file, re-save just its weights, e.g. "
            "torch.save(torch.load(p, weights_only=False)['model_state'], 'weights.pth')"
        ) from error
    raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: {_first_line(error)})") from error


def _unsafe_globals(path: Path) -> list[str]:
    getter = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if getter is None:
        return []
    try:
        names = getter(str(path))
    except Exception:  # not a zip checkpoint at all
        return []
    allowed = {_global_name(g) for g in numpy_safe_globals()}
    return sorted(n for n in names if n not in allowed)


def _global_name(entry: Any) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


# ---- containers ---------------------------------------------------------------------------------
def unwrap(obj: Any, path: Path | str) -> RawCheckpoint:
    """Find the state dict inside a loaded object.

    ``{"model_state": sd, ...}`` (OpenPCDet), ``{"state_dict": sd, "meta": {...}}`` (mmdet3d),
    ``{"model": sd}`` or a bare ``{name: tensor}`` mapping. Top-level scalars (epoch, iteration,
    version) and mmdet3d's ``meta`` become ``info``; a ``module.`` prefix (DataParallel) is removed.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors or a checkpoint dict, found {type(obj).__name__}")
    info: dict[str, str] = {}
    classes = None
    for key in ("model_state", "state_dict", "model"):
        if isinstance(obj.get(key), Mapping):
            state = obj[key]
            _scalars(obj, info)
            meta = obj.get("meta")
            if isinstance(meta, Mapping):
                _scalars(meta, info)
                classes = _meta_classes(meta)
            break
    else:
        if not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(
                f"{path}: no state dict found; expected 'model_state' (OpenPCDet), 'state_dict' (mmdet3d) "
                f"or a bare dict of tensors, found top-level keys {list(obj)[:12]}"
            )
        state = obj
    keys = [k for k in state if not isinstance(k, str)]
    if keys:
        raise CheckpointError(f"{path}: state dict keys must be strings; found {keys[:8]}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state dict entries that are not tensors: {bad[:8]}")
    tensors = dict(state)
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return RawCheckpoint(tensors=tensors, info=info, classes=classes)


_INFO_NAMES = {"epoch": "epoch", "it": "iteration", "iter": "iteration", "version": "source_version",
               "mmdet3d_version": "source_version", "config": "config", "format_version": "format_version"}


def _scalars(obj: Mapping[str, Any], info: dict[str, str]) -> None:
    for key, name in _INFO_NAMES.items():
        value = obj.get(key)
        if isinstance(value, (bool, dict, list, tuple)) or value is None:
            continue
        if isinstance(value, (int, float, str, np.generic)):
            if key == "config" and not _is_json(value):
                continue  # mmcv stores the Python config text; not ours
            info[name] = str(value)


def _is_json(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False


def _meta_classes(meta: Mapping[str, Any]) -> tuple[str, ...] | None:
    dataset_meta = meta.get("dataset_meta")
    for cand in ((dataset_meta or {}).get("classes") if isinstance(dataset_meta, Mapping) else None, meta.get("CLASSES")):
        if isinstance(cand, (list, tuple)) and cand and all(isinstance(c, str) for c in cand):
            return tuple(cand)
    return None
