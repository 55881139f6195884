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
        (lambda d: d.pop("anchors"), "missing key"),
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


# --------------------------------------------------------------------------------------------------
# issue 14 (items 5, 10, 11, 12, 13): strict values, strict YAML


def test_shipped_configs_record_the_intensity_range(kitti_config, example_config):
    assert kitti_config.voxel.intensity_range == (0.0, 1.0) == example_config.voxel.intensity_range


def test_artifact_without_intensity_range_matches_the_default(kitti_config):
    old = json.loads(kitti_config.to_json())
    del old["voxel"]["intensity_range"]  # a checkpoint or engine written before the field existed
    check_same_config(kitti_config, json.dumps(old), "old.safetensors")
    assert PointPillarsConfig.from_json(json.dumps(old)) == kitti_config


def _set(section, key, value):
    def mutate(d):
        (d[section] if section else d)[key] = value
    return mutate


def _set_backbone(key, value):
    return lambda d: d["network"]["backbone"].update({key: value})


def _set_anchor(key, value):
    return lambda d: d["anchors"][0].update({key: value})


@pytest.mark.parametrize(
    "mutate, message",
    [
        # wrong types (item 11) and silent coercions (item 12)
        (_set("voxel", "max_points_per_pillar", "lots"), r"voxel\.max_points_per_pillar: expected an integer, got 'lots'"),
        (_set("voxel", "max_points_per_pillar", 32.7), r"voxel\.max_points_per_pillar: expected an integer, got 32\.7"),
        (_set("voxel", "max_pillars", True), r"voxel\.max_pillars: expected an integer, got True"),
        (_set("postprocess", "class_agnostic_nms", "false"), r"postprocess\.class_agnostic_nms: expected true or false, got 'false'"),
        (_set("head", "anchor_align_center", "no"), r"head\.anchor_align_center: expected true or false, got 'no'"),
        (_set("head", "anchor_align_center", 1), r"head\.anchor_align_center: expected true or false"),
        (_set("network", "pfn_channels", "lots"), r"network\.pfn_channels: expected an integer"),
        (_set("", "classes", "Car"), r"classes: expected a list"),
        (_set("", "anchors", 5), r"anchors \(one mapping per class\): expected a list, got 5"),
        (_set("", "name", 5), r"name: expected a non-empty string"),
        # out-of-range values
        (_set("voxel", "point_cloud_range", [float("-inf"), -39.68, -3.0, 69.12, 39.68, 1.0]), r"point_cloud_range\[0\]: expected a finite number"),
        (_set("voxel", "voxel_size", [0.16, float("inf"), 4.0]), r"voxel_size\[1\]: expected a finite number"),
        (_set("voxel", "intensity_range", [1.0, 0.0]), r"intensity_range: expected finite \[low, high\] with low < high"),
        (_set("voxel", "intensity_range", [0.0]), r"intensity_range: expected 2 values"),
        (_set_backbone("layer_strides", [0, 2, 2]), r"layer_strides: must be >= 1"),
        (_set_backbone("layer_nums", []), r"layer_nums: at least one block"),
        (_set("network", "pfn_channels", 0), r"pfn_channels: must be >= 1, got 0"),
        (_set("network", "pfn_channels", -64), r"pfn_channels: must be >= 1"),
        (_set_anchor("rotations", []), r"sizes and rotations need at least one entry"),
        (_set_anchor("sizes", []), r"sizes and rotations need at least one entry"),
        (_set_anchor("sizes", [[3.9, -1.6, 1.56]]), r"must be positive"),
        (_set_anchor("matched_threshold", 1.5), r"matched_threshold: must be in \[0, 1\]"),
        (_set("postprocess", "score_threshold", 7), r"postprocess\.score_threshold: must be in \[0, 1\], got 7"),
        (_set("postprocess", "nms_iou_threshold", float("nan")), r"nms_iou_threshold: expected a finite number"),
        (_set("postprocess", "nms_iou_threshold", 1.5), r"nms_iou_threshold: must be in \[0, 1\]"),
        (_set("postprocess", "nms_post_max", -1), r"nms_post_max: must be >= 1, got -1"),
        (_set("postprocess", "nms_pre_max", 0), r"nms_pre_max: must be >= 1"),
    ],
)
def test_bad_values_are_config_errors_naming_file_and_field(tmp_path, mutate, message):
    with pytest.raises(ConfigError, match=message) as err:
        _load_modified(tmp_path, mutate)
    assert "c.yaml" in str(err.value)


def test_yaml_numbers_without_a_decimal_point_still_read():
    # PyYAML (YAML 1.1) reads 1e-3 as a string; a numeric string is accepted for float fields
    text = (CONFIG_DIR / "kitti_pointpillars_3class.yaml").read_text().replace("nms_iou_threshold: 0.01", "nms_iou_threshold: 1e-2")
    from pointpillars_trt.config import parse_yaml

    assert PointPillarsConfig.from_dict(parse_yaml(text)).postprocess.nms_iou_threshold == 0.01


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(ConfigError, match=r"c\.yaml: line 2: YAML aliases \(\*a0\) are not allowed"):
        load_config(_write(tmp_path, "\n".join(lines) + "\n"))


def test_yaml_duplicate_keys_are_refused(tmp_path):
    text = (CONFIG_DIR / "kitti_pointpillars_3class.yaml").read_text().replace(
        "  score_threshold: 0.1\n", "  score_threshold: 0.1\n  score_threshold: 0.5\n"
    )
    with pytest.raises(ConfigError, match=r"c\.yaml: line \d+: duplicate key 'score_threshold'"):
        load_config(_write(tmp_path, text))


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 400))])
def test_deeply_nested_yaml_is_a_config_error(tmp_path, text):
    with pytest.raises(ConfigError, match=r"c\.yaml: line \d+: nested more than 100 levels"):
        load_config(_write(tmp_path, text))


def test_deeply_nested_or_invalid_json_is_a_config_error():
    with pytest.raises(ConfigError, match="nested more than 100 levels"):
        PointPillarsConfig.from_json("[" * 100_000 + "]" * 100_000)
    for text in ["not json", '{"name": 1, "name": 2}', '{"a": NaN}', 5]:
        with pytest.raises(ConfigError):
            PointPillarsConfig.from_json(text)


def test_non_utf8_config_is_a_config_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: cannot read the config as UTF-8"):
        load_config(p)


def test_any_bytes_give_a_config_or_a_config_error(tmp_path):
    from hypothesis import given

    from tests.fuzzing import FUZZ, near, reads_or_typed_error

    seed = (CONFIG_DIR / "example_360_2class.yaml").read_bytes()

    @FUZZ
    @given(near(seed))
    def check(data):
        cfg = reads_or_typed_error(load_config, tmp_path / "f.yaml", data)
        assert cfg is None or isinstance(cfg, PointPillarsConfig)

    check()


@pytest.mark.parametrize("text, where", [("voxel: [1, 2\n", "line 2, column 1"), ("a: b: c\n", "line 1, column 5"),
                                         ('name: "abc\n', "line 2, column 1")])
def test_invalid_yaml_is_one_line_naming_file_line_and_column(tmp_path, text, where):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'c.yaml'}: not valid YAML: {where}: "), message
