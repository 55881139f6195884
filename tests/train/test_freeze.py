"""Fine-tuning with parts frozen: the frozen weights and BatchNorm statistics stay as they were, the rest
learns; tools/train.py --init / --freeze from native and foreign checkpoints, and their bad-input exits."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from pointpillars_trt.checkpoint import load_checkpoint, save_native, write_checkpoint
from pointpillars_trt.config import PointPillarsConfig
from pointpillars_trt.errors import ConfigError
from pointpillars_trt.model import build_model
from pointpillars_trt.train import AugmentConfig, KittiFrames, TrainSettings, freeze, module_names, state_dict_fp32, train

from tests.train.test_trainer import train_tool
from tests.train.tiny_data import TINY_CONFIG, scene_boxes, tiny_config, write_dataset

FROZEN = ("pfn", "rpn.blocks")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("tiny_kitti_freeze"), scene_boxes())


@pytest.fixture(scope="module")
def start() -> dict[str, torch.Tensor]:
    torch.manual_seed(4)
    model = build_model(tiny_config())
    for m in model.modules():  # non-trivial running statistics, so that a change would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return state_dict_fp32(model)


def under(name: str, prefixes=FROZEN) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_frozen_parts_keep_weights_and_statistics_the_rest_learns(tiny_root, start):
    logs: list[str] = []
    s = TrainSettings(steps=3, batch_size=1, workers=0, augment=AugmentConfig.none(), log_every=1, freeze=FROZEN)
    result = train(tiny_config(), KittiFrames(tiny_root, "train"), s, log=logs.append, init=start)
    after = result.model.state_dict()
    frozen = {k for k in start if under(k) and not k.endswith("num_batches_tracked")}  # a counter, unused at momentum 0
    assert frozen and any(k.startswith("pfn.") for k in frozen) and any(".running_mean" in k for k in frozen)
    assert all(torch.equal(after[k], start[k]) for k in frozen), [k for k in frozen if not torch.equal(after[k], start[k])]
    learned = [k for k in start if not under(k) and not torch.equal(after[k], start[k])]
    assert any(k.startswith("rpn.conv_cls") for k in learned) and any(k.startswith("rpn.deblocks") for k in learned)
    assert any(line.startswith("frozen: pfn, rpn.blocks") for line in logs)


def test_init_without_freeze_starts_from_the_given_weights(tiny_root, start):
    s = TrainSettings(steps=1, batch_size=1, workers=0, augment=AugmentConfig.none(), lr=1e-12)
    after = train(tiny_config(), KittiFrames(tiny_root, "train"), s, log=lambda _: None, init=start).model.state_dict()
    weights = [k for k in start if k.endswith(".weight")]
    assert all(torch.allclose(after[k], start[k], atol=1e-6) for k in weights)


def test_freeze_matches_whole_path_components_and_names_the_parts():
    model = build_model(tiny_config()).train()
    assert freeze(model, ()) == [] and all(p.requires_grad for p in model.parameters())
    names = module_names(model)
    assert {"pfn", "rpn", "rpn.blocks", "rpn.deblocks", "rpn.conv_cls"} <= set(names)
    with pytest.raises(ConfigError, match=r"'rpn\.block' names no parameter.*rpn\.blocks"):
        freeze(model, ("rpn.block",))
    with pytest.raises(ConfigError, match="nothing is left to train"):
        freeze(model, ("pfn", "rpn"))
    frozen = freeze(model, ("rpn.blocks.0",))
    assert frozen and all(n.startswith("rpn.blocks.0.") for n in frozen)
    norms = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert all(m.training for m in norms.values())  # batch statistics, as in training
    assert all((m.momentum == 0.0) == n.startswith("rpn.blocks.0.") for n, m in norms.items())


@pytest.fixture()
def tool_args(tiny_root, tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY_CONFIG))
    return cfg_path, ["--data", str(tiny_root), "--steps", "2", "--batch-size", "1", "--workers", "0"]


def test_train_tool_fine_tunes_a_native_checkpoint(tool_args, tmp_path, start, caplog):
    cfg_path, args = tool_args
    init = save_native(tmp_path / "start.safetensors", start, tiny_config())
    out = tmp_path / "tuned.safetensors"
    assert train_tool().main([*args, "--out", str(out), "--init", str(init), "--freeze", "pfn, rpn.blocks"]) == 0
    ck = load_checkpoint(out)
    assert ck.metadata["init_checkpoint"] == str(init) and ck.metadata["init_format"] == "native"
    assert ck.metadata["frozen"] == "pfn,rpn.blocks" and len(ck.metadata["init_sha256"]) == 64
    assert ck.config.to_json() == tiny_config().to_json()  # the training config is the checkpoint's
    frozen = [k for k in start if under(k) and not k.endswith("num_batches_tracked")]
    assert all(torch.equal(ck.state_dict[k], start[k]) for k in frozen)
    # --config that agrees with the checkpoint is accepted; one that does not is a one-line exit 2
    assert train_tool().main([*args, "--out", str(out), "--init", str(init), "--config", str(cfg_path)]) == 0
    caplog.clear()
    assert train_tool().main([*args, "--out", str(tmp_path / "x.safetensors"), "--init", str(init)]
                             + ["--config", "kitti_pointpillars_3class"]) == 2
    assert str(init) in caplog.text


def test_train_tool_fine_tunes_a_foreign_checkpoint(tool_args, tmp_path):
    _, args = tool_args
    three = copy.deepcopy(TINY_CONFIG)  # OpenPCDet's KITTI class list
    three["classes"].append("Cyclist")
    three["anchors"].append({**copy.deepcopy(three["anchors"][1]), "class": "Cyclist", "sizes": [[1.76, 0.6, 1.73]]})
    cfg = PointPillarsConfig.from_dict(three)
    cfg_path = tmp_path / "tiny3.yaml"
    cfg_path.write_text(yaml.safe_dump(three))
    src = write_checkpoint(tmp_path / "pcdet.pth", "openpcdet", cfg, seed=2)
    out = tmp_path / "tuned.safetensors"
    assert train_tool().main([*args, "--out", str(out), "--init", str(src), "--config", str(cfg_path), "--freeze", "pfn"]) == 0
    ck = load_checkpoint(out)
    source = load_checkpoint(src, config=cfg)
    assert ck.metadata["init_format"] == "openpcdet" and ck.config.to_json() == source.config.to_json()
    assert all(torch.equal(ck.state_dict[k], source.state_dict[k]) for k in source.state_dict
               if k.startswith("pfn.") and not k.endswith("num_batches_tracked"))


@pytest.mark.parametrize("bad, says", [
    (["--freeze", "pfn"], "--freeze needs --init"),
    (["--init", "INIT", "--freeze", "rpn.block"], "names no parameter"),
    (["--init", "INIT", "--freeze", "pfn,rpn"], "nothing is left to train"),
    (["--init", "MISSING"], "MISSING"),
])
def test_train_tool_bad_fine_tune_arguments_exit_2(tool_args, tmp_path, start, caplog, bad, says):
    _, args = tool_args
    init = save_native(tmp_path / "start.safetensors", start, tiny_config())
    missing = tmp_path / "missing.safetensors"
    bad = [str(init) if a == "INIT" else str(missing) if a == "MISSING" else a for a in bad]
    says = str(missing) if says == "MISSING" else says
    assert train_tool().main([*args, "--out", str(tmp_path / "x.safetensors"), *bad]) == 2
    assert says in caplog.text
    assert not (tmp_path / "x.safetensors").exists()
