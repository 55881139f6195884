"""Overfitting a tiny dataset with a small config: the loss falls, the checkpoint loads back and
finds the training boxes; tools/train.py writes its metadata."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pointpillars_trt.checkpoint import load_checkpoint, save_native
from pointpillars_trt.detector import Detector
from pointpillars_trt.postprocess import generate_anchors, iou_bev, to_canonical
from pointpillars_trt.train import (
    AugmentConfig, KittiFrames, TrainDataset, TrainSettings, collate, positive_weights, refresh_batchnorm, state_dict_fp32,
    train,
)

from tests.train.tiny_data import TINY_CONFIG, frame, scene_boxes, tiny_config, write_dataset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("tiny_kitti"), scene_boxes())


@pytest.fixture(scope="module")
def overfit(tiny_root):
    torch.set_num_threads(2)
    cfg = tiny_config()
    settings = TrainSettings(steps=60, batch_size=2, workers=0, seed=0, log_every=10, augment=AugmentConfig.none(), lr=0.003)
    logs: list[str] = []
    frames = KittiFrames(tiny_root, "train")
    result = train(cfg, frames, settings, log=logs.append)
    # 60 steps are too few for BN momentum 0.01 to track the weights: re-estimate the statistics
    ds = TrainDataset(frames, cfg, AugmentConfig.none())
    refresh_batchnorm(result.model, [collate([ds[0], ds[1]])])
    return cfg, result, logs


def test_loss_drops(overfit):
    _, result, logs = overfit
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert result.steps == 60
    assert last < first / 4, (first, last, logs)
    assert all(np.isfinite(h["loss"]) for h in result.history)


def test_checkpoint_detects_training_boxes(overfit, tmp_path):
    cfg, result, _ = overfit
    path = save_native(tmp_path / "tiny.safetensors", state_dict_fp32(result.model), cfg, metadata={"seed": "0"})
    ckpt = load_checkpoint(path)
    assert ckpt.metadata["seed"] == "0"
    assert ckpt.config.to_json() == cfg.to_json()
    det = Detector.from_checkpoint(path)
    boxes, names = scene_boxes()[0]
    d = det.detect(frame(boxes, seed=0), score_threshold=0.3)
    for k, name in enumerate(names):
        iou = iou_bev(boxes[k : k + 1], d.boxes)[0] if len(d) else np.zeros(1)
        best = int(np.argmax(iou))
        assert iou[best] > 0.5, (boxes[k], d.boxes, d.scores)
        assert d.label_names[best] == name


def test_train_tool_writes_metadata(tiny_root, tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY_CONFIG))
    (tiny_root / "dataset.json").write_text(json.dumps({"generator_version": "test-1", "seed": 5, "frames": 2}))
    out = tmp_path / "m.safetensors"
    rc = train_tool().main([
        "--data", str(tiny_root), "--config", str(cfg_path), "--out", str(out), "--steps", "2", "--batch-size", "1",
        "--workers", "0", "--seed", "3", "--fp16-out", "--eval", "--json", str(tmp_path / "summary.json"),
    ])
    assert rc == 0
    meta = load_checkpoint(out).metadata
    assert meta["seed"] == "3" and meta["steps"] == "2" and meta["dtype"] == "float16"
    assert meta["data_generator_version"] == "test-1" and meta["data_seed"] == "5" and meta["data_frames"] == "2"
    assert "--steps 2" in meta["command"]
    ap = json.loads(meta["eval_ap"])
    assert set(ap) == {"R11", "R40"} and "Car" in ap["R40"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 2


def train_tool():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import train as tool
    finally:
        sys.path.pop(0)
    return tool


def test_train_tool_far_sampling_flags(tiny_root, tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY_CONFIG))
    out = tmp_path / "far.safetensors"
    args = ["--data", str(tiny_root), "--config", str(cfg_path), "--out", str(out), "--steps", "2", "--batch-size", "1",
            "--workers", "0", "--sample-groups", "Car:6", "--db-any-difficulty", "--sample-far", "0.5"]
    assert train_tool().main([*args, "--sample-far-range", "8,18", "--sample-edge", "0.5", "--object-ends", "0.3",
                              "--object-runs", "0.2"]) == 0
    settings = json.loads(load_checkpoint(out).metadata["settings"])
    assert settings["sample_far"] == 0.5 and settings["db_any_difficulty"] and settings["sample_far_range"] == "8,18"
    assert settings["sample_edge"] == 0.5 and settings["object_ends"] == 0.3 and settings["object_runs"] == 0.2
    for bad in (["--sample-far-range", "18,8"], ["--sample-far-range", "x"], ["--sample-far", "1.5"], ["--sample-edge", "2"],
                ["--sample-far", "0", "--sample-edge", "0.5"], ["--object-ends", "1.5"], ["--object-runs", "-0.1"]):
        assert train_tool().main([*args, *bad]) == 2


def test_train_tool_far_weight_flags(tiny_root, tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY_CONFIG))
    out = tmp_path / "farw.safetensors"
    args = ["--data", str(tiny_root), "--config", str(cfg_path), "--out", str(out), "--steps", "2", "--batch-size", "1",
            "--workers", "0"]
    assert train_tool().main([*args, "--far-weight", "2", "--far-weight-range", "5,15", "--cut-box-weight", "3"]) == 0
    settings = json.loads(load_checkpoint(out).metadata["settings"])
    assert settings["far_weight"] == 2.0 and settings["far_weight_range"] == "5,15" and settings["cut_box_weight"] == 3.0
    for bad in (["--far-weight", "-1"], ["--far-weight", "2", "--far-weight-range", "15,5"], ["--cut-box-weight", "0"]):
        assert train_tool().main([*args, *bad]) == 2


def test_positive_weights_follow_anchor_range():
    cfg = tiny_config()
    assert positive_weights(cfg, TrainSettings(steps=1), "cpu") is None
    w = positive_weights(cfg, TrainSettings(steps=1, far_weight=3.0, far_weight_range=(2.0, 6.0)), "cpu")
    anchors = to_canonical(generate_anchors(cfg).reshape(-1, 7), cfg.head.box_layout)
    r = np.hypot(anchors[:, 0], anchors[:, 1])
    assert w.shape == (len(anchors),)
    np.testing.assert_allclose(w.numpy(), 1.0 + 2.0 * np.clip((r - 2.0) / 4.0, 0, 1), rtol=1e-5)


def test_train_tool_bad_data_exits_2(tmp_path):
    assert train_tool().main(["--data", str(tmp_path), "--out", str(tmp_path / "x.safetensors"), "--steps", "1"]) == 2


def test_max_seconds_stops_with_the_schedule_annealed(tiny_root):
    logs: list[str] = []
    s = TrainSettings(steps=50, batch_size=1, workers=0, augment=AugmentConfig.none(), max_seconds=0.0, log_every=100)
    result = train(tiny_config(), KittiFrames(tiny_root, "train"), s, log=logs.append)
    assert result.steps == 1 and any("stopped after 1 of 50 steps" in line and "annealed" in line for line in logs)
    assert len(result.history) == 1
    # the time limit came first, so the cycle ran to its end by the clock: the final learning rate
    assert result.history[0]["lr"] == pytest.approx(s.lr / s.div_factor / s.final_div_factor)


@pytest.mark.parametrize("distill, with_teacher", [(1.0, False), (0.0, True), (-1.0, True)])
def test_distill_needs_a_teacher_exactly_when_on(tiny_root, distill, with_teacher):
    from pointpillars_trt.errors import ConfigError
    from pointpillars_trt.model import build_model

    s = TrainSettings(steps=1, batch_size=1, workers=0, augment=AugmentConfig.none(), distill=distill)
    with pytest.raises(ConfigError, match="teacher"):
        train(tiny_config(), KittiFrames(tiny_root, "train"), s, log=lambda _: None,
              teacher=build_model(tiny_config()) if with_teacher else None)


def test_distillation_logs_kd_and_leaves_the_teacher_alone(tiny_root):
    from pointpillars_trt.model import build_model

    torch.manual_seed(1)
    teacher = build_model(tiny_config()).eval().requires_grad_(False)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    logs: list[str] = []
    s = TrainSettings(steps=2, batch_size=1, workers=0, augment=AugmentConfig.none(), log_every=1, distill=0.5)
    result = train(tiny_config(), KittiFrames(tiny_root, "train"), s, log=logs.append, teacher=teacher)
    assert [set(r) >= {"loss", "cls", "box", "dir", "kd"} for r in result.history] == [True, True]
    assert all(r["kd"] > 0 and r["loss"] > r["cls"] + r["box"] + r["dir"] for r in result.history)
    assert any(" kd " in line for line in logs)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


def test_rotation_twins_pair_the_two_rotations_of_each_place_class_and_size():
    import dataclasses

    import numpy as np

    from pointpillars_trt.config import load_config
    from pointpillars_trt.postprocess.anchors import generate_anchors
    from pointpillars_trt.train.trainer import rotation_twins

    cfg = load_config(None)  # KITTI 3-class: three classes x one size x rotations (0, pi/2)
    anchors = generate_anchors(cfg).reshape(-1, 7)
    twins = rotation_twins(cfg)
    assert twins.shape == (len(anchors),) and (twins >= 0).all()
    n = np.arange(len(anchors))
    assert np.array_equal(twins[twins], n) and not (twins == n).any()
    np.testing.assert_array_equal(anchors[twins, :6], anchors[:, :6])  # same place, centre height and size
    assert np.allclose(np.abs(anchors[twins, 6] - anchors[:, 6]), 1.57)  # the other rotation
    one = dataclasses.replace(cfg, anchors=tuple(dataclasses.replace(a, rotations=(0.0,)) for a in cfg.anchors))
    assert (rotation_twins(one) == -1).all()  # one rotation per class: no twins
