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
    assert ann.truncation.dtype == np.float32 and (ann.truncation == 0).all() and len(ann.truncation) == len(names)


def _set_truncation(root, frame: str, row: int, value: float) -> None:
    """Rewrite the ``truncated`` field of label line ``row`` of ``frame``."""
    path = root / "training" / "label_2" / f"{frame}.txt"
    lines = path.read_text().splitlines()
    fields = lines[row].split(" ")
    fields[1] = f"{value:.2f}"
    lines[row] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")


def test_truncation_reaches_the_positives_of_its_box(tmp_path):
    cfg = tiny_config()
    root = write_dataset(tmp_path, scene_boxes())
    _set_truncation(root, "000000", 0, 0.5)
    frames = KittiFrames(root, "train")
    np.testing.assert_allclose(frames.annotations(0).truncation, [0.5, 0.0, 0.0])
    s = TrainDataset(frames, cfg, AugmentConfig.none())[0]
    t = TrainDataset(frames, cfg, AugmentConfig.none()).assigner(s.gt_boxes, s.gt_labels)
    assert s.pos_truncation.dtype == np.float32 and s.pos_truncation.shape == s.pos_index.shape
    np.testing.assert_array_equal(s.pos_truncation, np.where(t.matched_gt == 0, 0.5, 0.0).astype(np.float32))
    assert (s.pos_truncation == 0.5).any() and (s.pos_truncation == 0).any()
    # GT samples are whole objects: their positives get 0, the frame's own cut box keeps its 0.5
    db = build_database(frames, cfg.classes, min_points=5)
    g = TrainDataset(frames, cfg, AugmentConfig(default_sample_count=6, flip_x=False, rotation=(0.0, 0.0),
                                                scaling=(1.0, 1.0)), db, seed=1)[0]
    assert len(g.gt_boxes) > 3
    tg = g.pos_truncation
    assert tg.shape == g.pos_index.shape and set(np.unique(tg).tolist()) <= {0.0, 0.5} and (tg == 0.5).any()


def test_missing_split_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="split file"):
        KittiFrames(tmp_path, "train")


@pytest.mark.parametrize("size", [5, 17])
def test_a_cut_point_file_is_a_dataset_error_naming_its_size(tmp_path, size):
    frames = KittiFrames(write_dataset(tmp_path, scene_boxes()), "train")
    path = frames.velodyne_dir / f"{frames.ids[0]}.bin"
    path.write_bytes(bytes(size))  # 17 bytes: four floats and one byte, which np.fromfile alone would drop silently
    with pytest.raises(DatasetError, match=f"{path.name}: size {size} bytes is not a multiple of 16"):
        frames.points(0)


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
    assert len(batch["box_targets"]) == len(batch["pos_index"]) == len(batch["dir_targets"]) == len(batch["pos_truncation"])


def test_frame_min_points_drops_empty_boxes(tmp_path):
    cfg = tiny_config()
    root = write_dataset(tmp_path, scene_boxes())
    ds = TrainDataset(KittiFrames(root, "train"), cfg, AugmentConfig.none())
    pts, boxes, names, trunc = ds.load(0)
    assert len(boxes) == 3 and trunc.shape == (3,)
    # keep only the ground points (written first): no labelled object has a point any more
    pts[:100].tofile(root / "training" / "velodyne_reduced" / "000000.bin")
    _, boxes2, _, trunc2 = ds.load(0)
    assert len(boxes2) == 0 and len(trunc2) == 0


def test_run_sampler_epochs():
    s = list(RunSampler(5, 12, seed=0))
    assert len(s) == 12
    assert sorted(x % 5 for x in s[:5]) == list(range(5))
    assert all(5 <= x < 10 for x in s[5:10]) and all(x >= 10 for x in s[10:])
    assert s == list(RunSampler(5, 12, seed=0))


def test_targets_without_points_after_the_crop_are_dropped(tmp_path):
    """A box whose points all leave the cropped cloud (here: a sensor pitched up lifts the car 15 m
    ahead above the range's top) is no target; the others stay, with their labels and truncations."""
    from pointpillars_trt.train.augment import tilt

    cfg = tiny_config()
    ds = TrainDataset(KittiFrames(write_dataset(tmp_path, scene_boxes()), "train"), cfg, AugmentConfig.none())
    pts, boxes, names, trunc = ds.load(0)
    assert len(ds.transform(pts, boxes, names, trunc, np.random.default_rng(0))[1]) == 3
    # lift 15 m ahead by more than the car's bottom-to-range-top gap (1.0 - (-0.95 - 0.75) = 2.7 m)
    p, b = tilt(pts, boxes, -np.arctan(3.0 / 15.0), 0.0)
    assert p[:, 2].max() > cfg.voxel.point_cloud_range[5]
    _, kept, labels, kept_trunc = ds.transform(p, b, names, trunc, np.random.default_rng(0))
    np.testing.assert_allclose(kept, b[[0, 2]], atol=1e-6)  # the 15 m car went; the 10 m car and the pedestrian stayed
    assert list(labels) == [cfg.classes.index("Car"), cfg.classes.index("Pedestrian")] and len(kept_trunc) == 2
