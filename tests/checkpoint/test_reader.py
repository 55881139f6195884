"""Unreadable files, containers, numpy values in pickles."""

import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from pointpillars_trt.checkpoint import load_checkpoint, save_native
from pointpillars_trt.checkpoint.reader import read_checkpoint_file, unwrap
from pointpillars_trt.config import load_config
from pointpillars_trt.errors import CheckpointError

from .sources import tsv_state_dict


class Opaque:
    """A class a checkpoint may pickle; must never be unpickled."""


def assert_names_file(path, match=None):
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    return str(err.value)


def test_missing_file(tmp_path):
    assert_names_file(tmp_path / "nope.pth", match="not found")


@pytest.mark.parametrize("name", ["garbage.pth", "garbage.pt", "garbage.safetensors", "empty.pth"])
def test_garbage_files(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"" if name.startswith("empty") else b"\x00\x01 this is not a checkpoint" * 10)
    assert_names_file(path, match="not a readable")


def test_truncated_torch_file(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"model_state": tsv_state_dict("openpcdet")}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_names_file(path, match="not a readable PyTorch checkpoint")


def test_truncated_safetensors_file(tmp_path):
    from pointpillars_trt.checkpoint import random_native_state_dict

    cfg = load_config()
    path = save_native(tmp_path / "cut.safetensors", random_native_state_dict(cfg), cfg)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_names_file(path, match="not a readable safetensors")
    renamed = tmp_path / "cut.bin"  # detected by content, not suffix
    renamed.write_bytes(data[: len(data) // 2])
    assert_names_file(renamed, match="not a readable safetensors")


def test_numpy_values_next_to_the_weights_are_allowed(tmp_path):
    path = tmp_path / "np.pth"
    obj = {"model_state": tsv_state_dict("openpcdet"), "epoch": np.int64(80), "best": np.float64(0.77), "anchors": np.zeros((2, 7), np.float32)}
    torch.save(obj, path)
    ck = load_checkpoint(path)
    assert ck.format == "openpcdet" and ck.metadata["epoch"] == "80"


def test_numpy1_pickled_names_are_allowed(tmp_path):
    """Checkpoints written under numpy 1.x name ``numpy.core.multiarray``; numpy 2 has ``numpy._core``."""
    src = tmp_path / "np2.pth"
    torch.save({"model_state": tsv_state_dict("openpcdet"), "best": np.float64(0.5), "arr": np.arange(3)}, src)
    dst = tmp_path / "np1.pth"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(info, data)
    assert load_checkpoint(dst).format == "openpcdet"


def test_arbitrary_objects_are_refused_and_named(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save({"model_state": tsv_state_dict("openpcdet"), "extra": Opaque()}, path)
    msg = assert_names_file(path, match="weights_only")
    assert "Opaque" in msg


def test_containers(tmp_path):
    state = tsv_state_dict("zhulf0804")
    raw = unwrap({"model": OrderedDict(("module." + k, v) for k, v in state.items())}, "x.pth")
    assert set(raw.tensors) == set(state)  # DataParallel prefix removed
    with pytest.raises(CheckpointError, match=r"no state dict found.*'optimizer'"):
        unwrap({"optimizer": {}, "epoch": 3}, "x.pth")
    with pytest.raises(CheckpointError, match="expected a dict"):
        unwrap([1, 2], "x.pth")
    with pytest.raises(CheckpointError, match="not tensors"):
        unwrap({"state_dict": {"a": torch.zeros(1), "b": 3}}, "x.pth")


def test_mmdet3d_meta_names_classes_and_epoch(tmp_path):
    path = tmp_path / "mm.pth"
    meta = {"epoch": 160, "iter": 9280, "config": "model = dict(type='VoxelNet')", "dataset_meta": {"classes": ["Car", "Pedestrian", "Cyclist"]}}
    torch.save({"state_dict": tsv_state_dict("mmdet3d"), "meta": meta}, path)
    raw = read_checkpoint_file(path)
    assert raw.classes == ("Car", "Pedestrian", "Cyclist")
    assert raw.info == {"epoch": "160", "iteration": "9280"}  # mmcv's Python config text is not ours
    raw = unwrap({"state_dict": {}, "meta": {"CLASSES": ("Pedestrian", "Cyclist", "Car")}}, "x")
    assert raw.classes == ("Pedestrian", "Cyclist", "Car")


# issue 14 item 11: .pth files whose entries cannot be weights are CheckpointErrors naming the file


def _native_state():
    from pointpillars_trt.checkpoint import random_native_state_dict
    from pointpillars_trt.config import load_config

    return random_native_state_dict(load_config(), seed=0)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda sd: {**{i: v for i, v in enumerate(sd.values())}}, r"state dict keys must be strings; found \[0, 1,"),
        (lambda sd: {**sd, "rpn.conv_cls.weight": sd["rpn.conv_cls.weight"].to_sparse()}, r"'rpn.conv_cls.weight' is not a dense tensor"),
        (lambda sd: {**sd, "rpn.conv_cls.weight": sd["rpn.conv_cls.weight"].to("meta")}, r"'rpn.conv_cls.weight' is a meta tensor"),
    ],
    ids=["int-keys", "sparse", "meta"],
)
def test_pth_entries_that_cannot_be_weights(tmp_path, edit, message):
    from pointpillars_trt.checkpoint import load_checkpoint

    path = tmp_path / "bad.pth"
    torch.save(edit(_native_state()), path)
    with pytest.raises(CheckpointError, match=rf"bad\.pth: .*{message}"):
        load_checkpoint(path)
