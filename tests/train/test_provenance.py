"""data_provenance: the data_* keys from a real dataset.json (read through KittiFrames), "unknown" for what it
lacks, the torch version and the creation time, all strings (safetensors metadata)."""

from __future__ import annotations

import json
import time

import torch

from pointpillars_trt.train import KittiFrames, data_provenance

from tests.train.tiny_data import scene_boxes, write_dataset


def test_data_provenance_from_dataset_json(tmp_path):
    root = write_dataset(tmp_path, scene_boxes())
    info = {"generator": "synthetic", "generator_version": 5, "generator_mix": 0.25, "seed": 3, "frames": 2}
    (root / "dataset.json").write_text(json.dumps(info))
    meta = data_provenance(KittiFrames(root, "train").info, created=time.gmtime(0))
    assert meta == {
        "data_generator": "synthetic", "data_generator_version": "5", "data_generator_mix": "0.25", "data_seed": "3",
        "data_frames": "2", "torch": torch.__version__, "created": "1970-01-01T00:00:00Z",
    }


def test_data_provenance_without_dataset_json(tmp_path):
    root = write_dataset(tmp_path, scene_boxes())
    meta = data_provenance(KittiFrames(root, "train").info)
    assert {k: v for k, v in meta.items() if k.startswith("data_")} == dict.fromkeys(
        ("data_generator", "data_generator_version", "data_generator_mix", "data_seed", "data_frames"), "unknown")
    assert time.strptime(meta["created"], "%Y-%m-%dT%H:%M:%SZ")
