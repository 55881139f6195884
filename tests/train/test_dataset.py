"""The per-frame pipeline on a tiny KITTI-layout directory written by the test."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.errors import DatasetError
from pointpillars_trt.train import AugmentConfig, KittiFrames, RunSampler, TrainDataset, build_database, collate

from tests.train.tiny_data import scene_boxes, tiny_config, write_dataset


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), scene_boxes())


def test_frames_read_labels_as_lidar_boxes(root):
    frames = KittiFrames(root, "train")
    ann = frames.annotations(0)
    boxes, names = scene_boxes()[0]
    np.testing.assert_allclose(ann.boxes, boxes, atol=1e-4)
    assert list(ann.names) == names
    assert frames.points(0).shape[1] == 4


def test_missing_split_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="split file"):
        KittiFrames(tmp_path, "train")


def test_database_and_samples(root):
    cfg = tiny_config()
    frames = KittiFrames(root, "train")
    db = build_database(frames, cfg.classes, min_points=5)
    assert db.count("Car") == 4 and db.count("Pedestrian") == 2
    ds = TrainDataset(frames, cfg, AugmentConfig(default_sample_count=6), db, seed=1)
    s = ds[0]
    n_anchors = int(np.prod(ds.assigner.anchors.shape[:3]))
    assert s.labels.shape == (n_anchors,) and s.labels.dtype == np.int8
    assert len(s.pos_index) > 0
    assert (s.labels[s.pos_index] > 0).all()
    assert s.raw.shape[1:] == (cfg.voxel.max_points_per_pillar, 4)
    assert (s.num_points >= 1).all() and len(s.coords) == len(s.raw)
    r = cfg.voxel.point_cloud_range
    assert ((s.gt_boxes[:, 0] >= r[0]) & (s.gt_boxes[:, 0] <= r[3])).all()
    # same run sample -> same result; another -> other augmentation
    again = ds[0]
    np.testing.assert_array_equal(again.raw, s.raw)
    np.testing.assert_array_equal(again.labels, s.labels)
    other = ds[len(frames)]  # same frame, next epoch
    assert not np.array_equal(other.gt_boxes, s.gt_boxes)

    batch = collate([ds[0], ds[1]])
    assert batch["labels"].shape == (2, n_anchors)
    assert batch["coords"].shape[1] == 3 and set(batch["coords"][:, 0].tolist()) == {0, 1}
    assert batch["pos_index"].max() >= n_anchors  # second frame offset
    assert len(batch["box_targets"]) == len(batch["pos_index"]) == len(batch["dir_targets"])


def test_frame_min_points_drops_empty_boxes(tmp_path):
    cfg = tiny_config()
    root = write_dataset(tmp_path, scene_boxes())
    ds = TrainDataset(KittiFrames(root, "train"), cfg, AugmentConfig.none())
    pts, boxes, names = ds.load(0)
    assert len(boxes) == 3
    # keep only the ground points (written first): no labelled object has a point any more
    pts[:100].tofile(root / "training" / "velodyne_reduced" / "000000.bin")
    _, boxes2, _ = ds.load(0)
    assert len(boxes2) == 0


def test_run_sampler_epochs():
    s = list(RunSampler(5, 12, seed=0))
    assert len(s) == 12
    assert sorted(x % 5 for x in s[:5]) == list(range(5))
    assert all(5 <= x < 10 for x in s[5:10]) and all(x >= 10 for x in s[10:])
    assert s == list(RunSampler(5, 12, seed=0))
