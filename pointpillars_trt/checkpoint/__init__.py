"""Checkpoints: the native safetensors format and converters from OpenPCDet, mmdet3d and zhulf0804.

``load_checkpoint(path)`` reads any supported file, converts it exactly to the native keys and
layout (``pfn.*``, ``rpn.*``), and checks it against the model the config builds.
``save_native`` writes the package's own format (weights + config + metadata).
"""

from .detect import FORMATS, detect_format
from .head import class_permutation, head_channel_index
from .loader import LoadedCheckpoint, load_checkpoint
from .native import save_native
from .reader import safetensors_metadata
from .synthetic import make_source_checkpoint, make_source_state_dict, random_native_state_dict, write_checkpoint
from .verify import check_state_dict

__all__ = [
    "FORMATS",
    "LoadedCheckpoint",
    "check_state_dict",
    "class_permutation",
    "detect_format",
    "head_channel_index",
    "load_checkpoint",
    "make_source_checkpoint",
    "make_source_state_dict",
    "random_native_state_dict",
    "safetensors_metadata",
    "save_native",
    "write_checkpoint",
]
