"""What a user with a checkpoint of another architecture sees."""

import dataclasses

import pytest
import torch

from pointpillars_trt.checkpoint import check_state_dict, load_checkpoint, make_source_checkpoint
from pointpillars_trt.checkpoint.verify import LIST_LIMIT, reference_state_dict
from pointpillars_trt.config import load_config
from pointpillars_trt.errors import CheckpointError

from .sources import read_tsv, tsv_state_dict


def other_backbone(**fields):
    cfg = load_config()
    return cfg.replace(network={"backbone": dataclasses.replace(cfg.network.backbone, **fields)})


def load_error(tmp_path, obj, **kwargs) -> str:
    path = tmp_path / "other.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, **kwargs)
    msg = str(err.value)
    assert str(path) in msg
    return msg


def test_changed_num_filters_lists_mis_shaped_keys_with_both_shapes(tmp_path):
    obj = make_source_checkpoint("openpcdet", other_backbone(num_filters=(32, 128, 256)))
    msg = load_error(tmp_path, obj)
    assert "mis-shaped" in msg and "missing" not in msg and "unexpected" not in msg
    assert "rpn.blocks.0.0.weight (from backbone_2d.blocks.0.1.weight): checkpoint [32, 64, 3, 3] vs model [64, 64, 3, 3]" in msg
    assert "rpn.deblocks.0.0.weight (from backbone_2d.deblocks.0.0.weight): checkpoint [32, 128, 1, 1] vs model [64, 128, 1, 1]" in msg


def test_extra_layer_is_unexpected_and_missing_layer_is_missing(tmp_path):
    msg = load_error(tmp_path, make_source_checkpoint("mmdet3d", other_backbone(layer_nums=(3, 5, 6))))
    assert "unexpected (6)" in msg
    assert "rpn.blocks.2.18.weight (from backbone.blocks.2.18.weight) [256, 256, 3, 3]" in msg
    msg = load_error(tmp_path, make_source_checkpoint("zhulf0804", other_backbone(layer_nums=(3, 5, 4))))
    # conv weight + 4 BN tensors; a missing num_batches_tracked counter is filled with 0, not reported
    assert "missing (5)" in msg and "num_batches_tracked" not in msg and "rpn.blocks.2.15.weight [256, 256, 3, 3]" in msg


def test_second_style_checkpoint_lists_all_three_kinds(tmp_path):
    """An OpenPCDet SECOND model: 3D sparse backbone instead of a PFN, 2-block BEV backbone on 256 channels."""
    state = {k: v for k, v in tsv_state_dict("openpcdet").items() if not k.startswith(("vfe.", "backbone_2d.blocks.2"))}
    state["backbone_3d.conv_input.0.weight"] = torch.zeros(3, 3, 3, 4, 16)
    state["backbone_3d.conv_input.1.weight"] = torch.ones(16)
    state["backbone_2d.blocks.0.1.weight"] = torch.zeros(128, 256, 3, 3)
    msg = load_error(tmp_path, {"model_state": state, "epoch": 80})
    assert "missing" in msg and "pfn.linear.weight [64, 10]" in msg and "rpn.blocks.2.0.weight [256, 128, 3, 3]" in msg
    assert "unexpected (2)" in msg and "backbone_3d.conv_input.0.weight [3, 3, 3, 4, 16]" in msg
    assert "rpn.blocks.0.0.weight (from backbone_2d.blocks.0.1.weight): checkpoint [128, 256, 3, 3] vs model [64, 64, 3, 3]" in msg


def test_pfn_without_norm_is_reported(tmp_path):
    state = tsv_state_dict("openpcdet")
    state = {k: v for k, v in state.items() if not k.startswith("vfe.pfn_layers.0.norm")}
    state["vfe.pfn_layers.0.linear.bias"] = torch.zeros(64)
    msg = load_error(tmp_path, {"model_state": state})
    assert "pfn.norm.running_var [64]" in msg and "pfn.linear.bias (from vfe.pfn_layers.0.linear.bias) [64]" in msg


def test_check_state_dict_accepts_a_fitting_dict_and_truncates_long_lists():
    ref = reference_state_dict(load_config())
    check_state_dict({k: torch.empty(v.shape) for k, v in ref.items()}, ref)
    with pytest.raises(CheckpointError) as err:
        check_state_dict({}, ref, source="empty.pth")
    msg = str(err.value)
    assert msg.startswith("empty.pth:") and f"missing ({len(ref)})" in msg
    assert f"and {len(ref) - LIST_LIMIT} more" in msg


def test_tsv_tables_have_the_expected_sizes():
    tables = read_tsv()
    assert {f: len(t) for f, t in tables.items()} == {"openpcdet": 127, "mmdet3d": 126, "zhulf0804": 126}
