"""Each converter brings its source's test-time pipeline (configs/<format>_kitti_3class.yaml) as the
converted model's config; ``config=`` overrides it; a native file saved from it keeps it."""

from __future__ import annotations

import pytest
import torch

from pointpillars_trt.checkpoint import load_checkpoint, save_native
from pointpillars_trt.config import Comparison, RangeFilter, load_config

from .sources import FOREIGN, tsv_container, tsv_state_dict

EXPECTED = {  # (range filter, class-agnostic, pre max, post max, score rule) from ../shared/checkpoint-formats/README.md
    "openpcdet": (RangeFilter.XY_CLOSED, True, 4096, 500, Comparison.AT_LEAST),
    "mmdet3d": (RangeFilter.OPEN, False, 100, 50, Comparison.ABOVE),
    "zhulf0804": (RangeFilter.OPEN, False, 100, 50, Comparison.ABOVE),
}


def source_file(tmp_path, fmt):
    path = tmp_path / f"{fmt}.pth"
    torch.save(tsv_container(fmt, tsv_state_dict(fmt)), path)
    return path


@pytest.mark.parametrize("fmt", FOREIGN)
def test_converter_brings_the_source_pipeline(tmp_path, fmt):
    cfg = load_checkpoint(source_file(tmp_path, fmt)).config
    pp = cfg.postprocess
    assert cfg.name == f"{fmt}_kitti_3class"
    assert (cfg.voxel.range_filter, pp.class_agnostic_nms, pp.nms_pre_max, pp.nms_post_max, pp.score_rule) == EXPECTED[fmt]
    assert (pp.score_threshold, pp.nms_iou_threshold, pp.nms_suppress_rule) == (0.1, 0.01, Comparison.ABOVE)


@pytest.mark.parametrize("fmt", ["mmdet3d", "zhulf0804"])
def test_config_overrides_the_preset_but_not_the_head(tmp_path, fmt):
    default = load_config()
    ck = load_checkpoint(source_file(tmp_path, fmt), config=default)
    assert ck.config.postprocess == default.postprocess and ck.config.voxel == default.voxel
    assert ck.config.head == load_checkpoint(source_file(tmp_path, fmt)).config.head != default.head


def test_native_file_saved_from_a_converted_one_keeps_the_pipeline(tmp_path):
    ck = load_checkpoint(source_file(tmp_path, "mmdet3d"))
    back = load_checkpoint(save_native(tmp_path / "m.safetensors", ck.state_dict, ck.config))
    assert back.config == ck.config and back.config.postprocess.nms_post_max == 50


@pytest.mark.parametrize("name", ["kitti_pointpillars_3class", "openpcdet_kitti_3class"])
def test_openpcdet_preset_is_the_default_pipeline(name):
    """The default config keeps today's (OpenPCDet's) behaviour; its preset differs only in name."""
    a, b = load_config(name).to_dict(), load_config().to_dict()
    a.pop("name"), b.pop("name")
    assert a == b
