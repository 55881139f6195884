import pytest
import torch

from pointpillars_trt.checkpoint.head import class_permutation, head_channel_index, invert_index
from pointpillars_trt.errors import CheckpointError

SRC = ("Pedestrian", "Cyclist", "Car")
DST = ("Car", "Pedestrian", "Cyclist")


def test_class_permutation_matches_by_name():
    assert class_permutation(SRC, DST) == [2, 0, 1]
    assert class_permutation(DST, DST) == [0, 1, 2]


@pytest.mark.parametrize("dst", [("Car", "Pedestrian"), ("Car", "Pedestrian", "Van"), ("Car", "Car", "Cyclist")])
def test_class_permutation_rejects_other_class_sets(dst):
    with pytest.raises(CheckpointError, match="classes"):
        class_permutation(SRC, dst, where="x.pth")


def test_box_channels_move_with_their_anchor():
    # 3 classes x 2 rotations, 7 codes: target anchor (Car, r) <- source anchor (Car=2, r).
    idx = head_channel_index([2, 0, 1], anchors_per_class=2, channels_per_anchor=7).tolist()
    assert len(idx) == 42
    assert idx[0:7] == list(range(28, 35))  # target anchor 0 = Car rot 0 = source anchor 4
    assert idx[7:14] == list(range(35, 42))  # Car rot 1 = source anchor 5
    assert idx[14:21] == list(range(0, 7))  # Pedestrian rot 0 = source anchor 0


def test_class_logits_follow_the_class_order_inside_each_anchor():
    perm = [2, 0, 1]
    idx = head_channel_index(perm, anchors_per_class=2, channels_per_anchor=3, inner=perm).tolist()
    # target anchor 0 (Car rot 0) = source anchor 4; its logits (Car, Ped, Cyc) = source logits (2, 0, 1)
    assert idx[0:3] == [4 * 3 + 2, 4 * 3 + 0, 4 * 3 + 1]
    # a source logit tensor labelled by (anchor class, rotation, logit class) lands correctly
    labels = [(SRC[a // 2], a % 2, SRC[j]) for a in range(6) for j in range(3)]
    moved = [labels[i] for i in idx]
    assert moved == [(DST[a // 2], a % 2, DST[j]) for a in range(6) for j in range(3)]


def test_direction_bins_swap():
    idx = head_channel_index([0, 1, 2], anchors_per_class=2, channels_per_anchor=2, inner=[1, 0]).tolist()
    assert idx == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10]


def test_invert_index():
    idx = head_channel_index([2, 0, 1], 2, 3, inner=[2, 0, 1])
    x = torch.arange(18.0)
    assert torch.equal(x[idx][invert_index(idx)], x)
