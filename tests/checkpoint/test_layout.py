"""Exactness by construction: each source's own network (tests/checkpoint/sources.py) with a
checkpoint built from the published key table equals the native model with the converted weights."""

from __future__ import annotations

import math

import pytest
import torch

from pointpillars_trt.checkpoint import load_checkpoint
from pointpillars_trt.checkpoint.mmdet3d import fold_legacy_pfn, unfold_legacy_pfn
from pointpillars_trt.checkpoint.zhulf0804 import fold_pfn, unfold_pfn
from pointpillars_trt.config import PointPillarsConfig, load_config
from pointpillars_trt.model import build_model

from .sources import FOREIGN, SOURCE_CLASSES, SOURCE_NETS, native_features, random_pillars, tsv_container, tsv_state_dict

TIGHT = dict(rtol=1e-10, atol=1e-10)  # float64 on both sides: only summation order differs
# The PFN folds add two float32 weights (the converted state dict is float32): one float32 rounding.
FOLD = dict(rtol=1e-6, atol=1e-6)
OTHER_ORDER = ("Pedestrian", "Car", "Cyclist")


def with_class_order(cfg: PointPillarsConfig, order: tuple[str, ...]) -> PointPillarsConfig:
    anchors = {a.class_name: a for a in cfg.anchors}
    return cfg.replace(classes=order, anchors=tuple(anchors[c] for c in order))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """``pair(fmt, order)`` -> (source network with the tsv checkpoint, converted native model, its config)."""
    sources: dict = {}
    models: dict = {}

    def get(fmt: str, order: tuple[str, ...] | None = None):
        if fmt not in sources:
            state = tsv_state_dict(fmt, seed=7)
            path = tmp_path_factory.mktemp(fmt) / "source.pth"
            torch.save(tsv_container(fmt, state), path)
            source = SOURCE_NETS[fmt](load_config())
            source.load_state_dict(state, strict=True)  # the reference has exactly the published names
            sources[fmt] = (path, source.double().eval())
        if (fmt, order) not in models:
            cfg = load_config() if order is None else with_class_order(load_config(), order)
            ck = load_checkpoint(sources[fmt][0], config=cfg)
            model = build_model(ck.config)
            model.load_state_dict(ck.state_dict)
            models[(fmt, order)] = (model.double().eval(), ck.config)
        return (sources[fmt][1], *models[(fmt, order)])

    return get


@pytest.mark.parametrize("fmt", FOREIGN)
def test_pfn_equals_source_pfn_on_its_own_features(pair, fmt):
    source, model, cfg = pair(fmt)
    pts, num, coords = random_pillars(cfg, num_pillars=64, seed=3)
    with torch.no_grad():
        expected = source.pfn(pts, num, coords)
        got = model.pfn(native_features(cfg, pts, num, coords), num)
    assert got.shape == (64, cfg.network.pfn_channels)
    assert expected.std() > 0.1  # not a degenerate comparison
    torch.testing.assert_close(got, expected, **(TIGHT if fmt == "openpcdet" else FOLD))


@pytest.mark.parametrize("order", [None, OTHER_ORDER], ids=["config-order", "other-order"])
@pytest.mark.parametrize("fmt", FOREIGN)
def test_rpn_and_head_equal_source(pair, fmt, order):
    source, model, cfg = pair(fmt, order)
    stride = math.prod(cfg.network.backbone.layer_strides)
    canvas = torch.randn(1, cfg.network.pfn_channels, 2 * stride, 3 * stride, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        feats_src, cls_src, box_src, dir_src = source.rpn(canvas)
        feats = model.rpn.features(canvas)
        cls, box, dirs = model.rpn(canvas)
    torch.testing.assert_close(feats, feats_src, **TIGHT)

    # Head: (anchor, class) of the source lands at (anchor', class') of the config's order.
    src_names, dst_names = SOURCE_CLASSES[fmt], cfg.classes
    k = len(dst_names)
    per_class = cfg.num_anchors_per_location // k
    bins = cfg.head.num_dir_bins
    swap = fmt == "zhulf0804"
    for name in dst_names:
        for r in range(per_class):
            a_dst = dst_names.index(name) * per_class + r
            a_src = src_names.index(name) * per_class + r
            for logit_name in dst_names:
                torch.testing.assert_close(
                    cls[:, a_dst * k + dst_names.index(logit_name)], cls_src[:, a_src * k + src_names.index(logit_name)], **TIGHT
                )
            torch.testing.assert_close(box[:, a_dst * 7 : a_dst * 7 + 7], box_src[:, a_src * 7 : a_src * 7 + 7], **TIGHT)
            for d in range(bins):
                d_src = bins - 1 - d if swap else d
                torch.testing.assert_close(dirs[:, a_dst * bins + d], dir_src[:, a_src * bins + d_src], **TIGHT)


def test_zhulf_direction_rule_is_the_generic_rule_with_swapped_bins():
    """limit_period(r, 1, pi) + (1 - label) * pi == limit_period(r - 0, 1, pi) + 0 + pi * bin, bin = 1 - label."""
    head = load_config().replace(head={"dir_offset": 0.0, "dir_limit_offset": 1.0, "num_dir_bins": 2}).head

    def limit_period(v, offset, period):
        return v - torch.floor(v / period + offset) * period

    r = torch.linspace(-7, 7, 101, dtype=torch.float64)
    for label in (0, 1):
        zhulf = limit_period(r, 1, math.pi) + (1 - label) * math.pi
        period = 2 * math.pi / head.num_dir_bins
        generic = limit_period(r - head.dir_offset, head.dir_limit_offset, period) + head.dir_offset + period * (1 - label)
        torch.testing.assert_close(generic, zhulf)


def test_mmdet3d_legacy_fold_is_exact_on_legacy_features():
    w = torch.randn(5, 10, dtype=torch.float64)
    f = torch.randn(20, 10, dtype=torch.float64)  # native layout: x, y, z, r, mean offsets, centre offsets
    legacy = torch.cat([f[:, 7:10], f[:, 3:10]], 1)  # legacy: centre offsets replace x, y, z
    torch.testing.assert_close(f @ fold_legacy_pfn(w).T, legacy @ w.T)
    assert fold_legacy_pfn(torch.zeros(5, 9)) is None


def test_zhulf_fold_is_exact_on_zhulf_features():
    w = torch.randn(5, 9, 1, dtype=torch.float64)
    f = torch.randn(20, 10, dtype=torch.float64)
    zhulf = torch.cat([f[:, 7:9], f[:, 2:9]], 1)  # x-xc, y-yc, z, r, mean offsets, x-xc, y-yc
    torch.testing.assert_close(f @ fold_pfn(w).T, zhulf @ w[:, :, 0].T)
    folded = fold_pfn(w)
    assert folded.shape == (5, 10) and not folded[:, [0, 1, 9]].any()
    assert fold_pfn(torch.zeros(5, 10)) is None


@pytest.mark.parametrize("fold,unfold,zero_cols", [(fold_legacy_pfn, unfold_legacy_pfn, [0, 1, 2]), (fold_pfn, unfold_pfn, [0, 1, 9])])
def test_unfold_is_a_right_inverse_up_to_the_invisible_columns(fold, unfold, zero_cols):
    w = torch.randn(4, 10, dtype=torch.float64)
    expected = w.clone()
    expected[:, zero_cols] = 0
    torch.testing.assert_close(fold(unfold(w)), expected)
