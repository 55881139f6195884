"""The data provenance a trained checkpoint records in its metadata (``tools/train.py``, ``tools/qat.py``)."""

from __future__ import annotations

import time
from typing import Mapping

import torch

#: ``<DATA>/dataset.json`` keys (the synthetic generator's description of its data) -> metadata keys.
DATA_KEYS = {
    "generator": "data_generator",
    "generator_version": "data_generator_version",
    "generator_mix": "data_generator_mix",
    "seed": "data_seed",
    "frames": "data_frames",
}


def data_provenance(info: Mapping, created: time.struct_time | None = None) -> dict[str, str]:
    """Checkpoint metadata naming the data and the software a model was trained with.

    ``info``: the training frames' ``dataset.json`` (``KittiFrames.info``; empty for data without one).
    Returns strings only (safetensors metadata): the ``data_*`` keys of :data:`DATA_KEYS` (``"unknown"``
    where ``info`` lacks the key), ``torch`` (its version) and ``created`` (``created``, default now, as
    UTC ``YYYY-MM-DDTHH:MM:SSZ``).
    """
    meta = {key: str(info.get(name, "unknown")) for name, key in DATA_KEYS.items()}
    meta["torch"] = torch.__version__
    meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", created or time.gmtime())
    return meta
