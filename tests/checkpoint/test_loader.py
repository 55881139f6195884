"""load_checkpoint on files in each source's container."""

import dataclasses
import math

import pytest
import torch

from pointpillars_trt.checkpoint import load_checkpoint, random_native_state_dict
from pointpillars_trt.checkpoint.detect import LAYOUTS
from pointpillars_trt.checkpoint.verify import reference_state_dict
from pointpillars_trt.config import load_config
from pointpillars_trt.errors import CheckpointError

from .sources import FOREIGN, SOURCE_CLASSES, tsv_container, tsv_state_dict

HEADS = {
    "openpcdet": dict(anchor_align_center=False, box_layout="lwh_ccw", dir_offset=0.78539, dir_limit_offset=0.0, num_dir_bins=2),
    "mmdet3d": dict(anchor_align_center=True, box_layout="lwh_ccw", dir_offset=-math.pi / 2, dir_limit_offset=0.0, num_dir_bins=2),
    "zhulf0804": dict(anchor_align_center=True, box_layout="wlh_cw", dir_offset=0.0, dir_limit_offset=1.0, num_dir_bins=2),
}


def save(tmp_path, fmt, state=None, container=None):
    path = tmp_path / f"{fmt}.pth"
    torch.save(container if container is not None else tsv_container(fmt, state or tsv_state_dict(fmt)), path)
    return path


@pytest.mark.parametrize("fmt", FOREIGN)
def test_published_layouts_load_with_the_sources_conventions(tmp_path, fmt):
    user_cfg = load_config().replace(postprocess={"score_threshold": 0.25})
    ck = load_checkpoint(save(tmp_path, fmt), config=user_cfg)
    assert ck.format == fmt
    assert dataclasses.asdict(ck.config.head) == HEADS[fmt]
    assert ck.config.classes == user_cfg.classes and ck.config.postprocess == user_cfg.postprocess
    assert list(ck.state_dict) == list(reference_state_dict(ck.config))
    for key, t in ck.state_dict.items():
        assert t.dtype == (torch.int64 if key.endswith("num_batches_tracked") else torch.float32), key
    assert ck.metadata["source_format"] == fmt and ck.metadata["source_file"] == f"{fmt}.pth"
    assert ck.metadata["source_classes"] == ",".join(SOURCE_CLASSES[fmt])
    assert "global_step" not in ck.state_dict


def test_openpcdet_metadata(tmp_path):
    ck = load_checkpoint(save(tmp_path, "openpcdet"))
    assert ck.metadata["epoch"] == "80" and ck.metadata["iteration"] == "12345"
    assert ck.metadata["source_version"] == "pcdet+0.6.0"


@pytest.mark.parametrize("fmt", FOREIGN)
def test_forced_format(tmp_path, fmt):
    path = save(tmp_path, fmt)
    assert load_checkpoint(path, format=fmt).format == fmt
    wrong = "zhulf0804" if fmt != "zhulf0804" else "openpcdet"
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, format=wrong)
    msg = str(err.value)
    assert str(path) in msg and f"format={wrong!r}" in msg and fmt in msg


def test_config_with_other_classes_is_refused(tmp_path):
    cfg = load_config()
    anchors = tuple(dataclasses.replace(a, class_name="Van") if a.class_name == "Cyclist" else a for a in cfg.anchors)
    vans = cfg.replace(classes=tuple("Van" if c == "Cyclist" else c for c in cfg.classes), anchors=anchors)
    path = save(tmp_path, "openpcdet")
    with pytest.raises(CheckpointError, match=r"classes \['Car', 'Pedestrian', 'Cyclist'\].*\['Car', 'Pedestrian', 'Van'\]") as err:
        load_checkpoint(path, config=vans)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fmt", FOREIGN)
def test_inverse_then_forward_is_the_identity_up_to_the_pfn_projection(tmp_path, fmt):
    cfg = load_config()
    native = random_native_state_dict(cfg, seed=4)
    source = LAYOUTS[fmt].from_native(native, cfg.classes)
    ck = load_checkpoint(save(tmp_path, fmt, source))
    invisible = {"openpcdet": [], "mmdet3d": [0, 1, 2], "zhulf0804": [0, 1, 9]}[fmt]
    expected = dict(native)
    expected["pfn.linear.weight"] = native["pfn.linear.weight"].clone()
    expected["pfn.linear.weight"][:, invisible] = 0
    for key, t in expected.items():
        if key == "pfn.linear.weight":
            torch.testing.assert_close(ck.state_dict[key], t, rtol=0, atol=1e-6)
        else:
            assert torch.equal(ck.state_dict[key], t), key


def test_class_order_from_mmdet3d_meta_or_argument(tmp_path):
    cfg = load_config()
    native = random_native_state_dict(cfg, seed=5)
    order = ("Cyclist", "Car", "Pedestrian")
    source = LAYOUTS["mmdet3d"].from_native(native, cfg.classes, source_classes=order)
    path = save(tmp_path, "mmdet3d", container={"state_dict": source, "meta": {"dataset_meta": {"classes": list(order)}}})
    ck = load_checkpoint(path)
    assert ck.metadata["source_classes"] == "Cyclist,Car,Pedestrian"
    assert torch.equal(ck.state_dict["rpn.conv_cls.weight"], native["rpn.conv_cls.weight"])
    # Without the meta the default order is assumed (a different head); source_classes= fixes it.
    path = save(tmp_path, "mmdet3d", container={"state_dict": source, "meta": {}})
    assert not torch.equal(load_checkpoint(path).state_dict["rpn.conv_cls.weight"], native["rpn.conv_cls.weight"])
    ck = load_checkpoint(path, source_classes=order)
    assert torch.equal(ck.state_dict["rpn.conv_box.weight"], native["rpn.conv_box.weight"])
