import dataclasses
import json

import pytest
import yaml

from pointpillars_trt.config import CONFIG_DIR, PointPillarsConfig, check_same_config, load_config
from pointpillars_trt.errors import ConfigError


def test_kitti_derived_sizes(kitti_config):
    # OpenPCDet's KITTI numbers, derived rather than written
    assert kitti_config.grid_size == (432, 496, 1)
    assert kitti_config.feature_map_size == (216, 248)
    assert kitti_config.head_channels == {"cls": 18, "box": 42, "dir": 12}
    assert kitti_config.network.backbone.out_channels == 384


def test_example_config_derived_sizes(example_config):
    assert example_config.grid_size == (256, 256, 1)
    assert example_config.feature_map_size == (256, 256)
    assert example_config.num_anchors_per_location == 8
    assert example_config.head_channels == {"cls": 16, "box": 56, "dir": 16}


def test_config_is_immutable(kitti_config):
    with pytest.raises(dataclasses.FrozenInstanceError):
        kitti_config.voxel.max_pillars = 5  # type: ignore[misc]


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_round_trip_every_shipped_config(path):
    cfg = load_config(path)
    again = PointPillarsConfig.from_json(cfg.to_json())
    assert again == cfg and again.hash() == cfg.hash()


def test_replace_changes_only_named_fields(kitti_config):
    other = kitti_config.replace(head={"dir_offset": 0.0})
    assert other.head.dir_offset == 0.0 and other.voxel == kitti_config.voxel
    assert other.hash() != kitti_config.hash()


def _load_modified(tmp_path, mutate):
    data = yaml.safe_load((CONFIG_DIR / "kitti_pointpillars_3class.yaml").read_text())
    mutate(data)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return load_config(p)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["voxel"].update(voxel_size=[0.15, 0.16, 4.0]), "whole number"),
        (lambda d: d["voxel"].update(bogus=1), "unknown key"),
        (lambda d: d.update(classes=["Car", "Pedestrian"]), "one entry per class"),
        (lambda d: d["head"].update(box_layout="xyz"), "box_layout"),
        (lambda d: d["network"]["backbone"].update(upsample_strides=[1, 2, 2]), "different strides"),
        (lambda d: d["voxel"].update(point_cloud_range=[0, 0, 0, 1]), "expected 6 values"),
        (lambda d: d.pop("anchors"), "missing required key"),
    ],
)
def test_invalid_configs_name_file_and_problem(tmp_path, mutate, message):
    with pytest.raises(ConfigError, match=message) as err:
        _load_modified(tmp_path, mutate)
    assert "c.yaml" in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_check_same_config_names_differing_fields(kitti_config):
    other = kitti_config.replace(postprocess={"score_threshold": 0.3})
    check_same_config(kitti_config, kitti_config.to_json(), "x")
    with pytest.raises(ConfigError, match="postprocess.score_threshold"):
        check_same_config(kitti_config, other.to_json(), "engine.plan")
    assert json.loads(other.to_json())["postprocess"]["score_threshold"] == 0.3
