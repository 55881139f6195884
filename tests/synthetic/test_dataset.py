"""A small dataset written by tools/make_synthetic.py: layout, metadata, labels, clouds, determinism."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from pointpillars_trt.errors import DatasetError
from pointpillars_trt.io.kitti import (
    Calibration,
    boxes_camera_to_lidar,
    crop_to_fov,
    kitti_objects_to_camera_boxes,
    read_image_shape,
    read_label,
)
from pointpillars_trt.synthetic import GENERATOR_VERSION, SensorConfig
from pointpillars_trt.synthetic.dataset import split_ids, write_dataset
from pointpillars_trt.synthetic.frame import points_in_boxes
from pointpillars_trt.synthetic.kitti_writer import IMAGE_SHAPE

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_synthetic.py"
FRAMES, SEED = 3, 5


def _tool():
    spec = importlib.util.spec_from_file_location("make_synthetic", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    rc = _tool().main(["--out", str(out), "--frames", str(FRAMES), "--seed", str(SEED), "--val-fraction", "0.34",
                       "--workers", "1", "--quiet"])
    assert rc == 0
    return out


IDS = [f"{i:06d}" for i in range(FRAMES)]


def _cloud(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def test_layout_and_split(dataset):
    for sub in ("velodyne", "velodyne_reduced", "calib", "label_2", "image_2"):
        names = sorted(p.stem for p in (dataset / "training" / sub).iterdir())
        assert names == IDS, sub
    train = (dataset / "ImageSets" / "train.txt").read_text().split()
    val = (dataset / "ImageSets" / "val.txt").read_text().split()
    assert train == ["000000", "000001"] and val == ["000002"]
    assert read_image_shape(dataset / "training" / "image_2" / "000000.png") == IMAGE_SHAPE


def test_dataset_json(dataset):
    meta = json.loads((dataset / "dataset.json").read_text())
    assert meta["generator_version"] == GENERATOR_VERSION
    assert meta["seed"] == SEED and meta["frames"] == FRAMES
    assert meta["command"][:1] == ["tools/make_synthetic.py"] and "--seed" in meta["command"]
    assert meta["sensor"]["mount_height"] == 1.73
    assert sum(meta["stats"]["labels"].values()) > 0


def test_labels_parse_and_boxes_contain_points(dataset):
    sensor = SensorConfig()
    seen = set()
    for fid in IDS:
        calib = Calibration.from_file(dataset / "training" / "calib" / f"{fid}.txt")
        objects = read_label(dataset / "training" / "label_2" / f"{fid}.txt")
        points = _cloud(dataset / "training" / "velodyne" / f"{fid}.bin")
        assert np.linalg.norm(points[:, :3], axis=1).max() <= sensor.max_range + 1e-3
        real = [o for o in objects if o.type != "DontCare" and o.occluded <= 2]
        seen.update(o.type for o in real)
        if real:
            lidar = boxes_camera_to_lidar(kitti_objects_to_camera_boxes(real), calib)
            assert np.all(points_in_boxes(points, lidar).sum(axis=0) > 0)
            cars = lidar[[o.type == "Car" for o in real]]
            assert np.all((cars[:, 3] >= 2.75) & (cars[:, 3] < 5.0) & (cars[:, 4] > 1.3) & (cars[:, 4] < 1.9))
    assert "Car" in seen


def test_reduced_cloud_is_the_camera_view_subset(dataset):
    for fid in IDS:
        full = _cloud(dataset / "training" / "velodyne" / f"{fid}.bin")
        reduced = _cloud(dataset / "training" / "velodyne_reduced" / f"{fid}.bin")
        calib = Calibration.from_file(dataset / "training" / "calib" / f"{fid}.txt")
        assert 0 < len(reduced) < len(full) / 2
        assert np.array_equal(reduced, crop_to_fov(full, calib, IMAGE_SHAPE))
        rows = {r.tobytes() for r in full}
        assert all(r.tobytes() in rows for r in reduced)


def test_same_seed_gives_identical_files_with_any_worker_count(dataset, tmp_path):
    write_dataset(tmp_path, FRAMES, SEED, val_fraction=0.34, workers=2)
    files = sorted(p.relative_to(dataset) for p in (dataset / "training").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in (tmp_path / "training").rglob("*") if p.is_file())
    for rel in files:
        assert (dataset / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    for name in ("train.txt", "val.txt"):
        assert (dataset / "ImageSets" / name).read_bytes() == (tmp_path / "ImageSets" / name).read_bytes()


def test_bad_arguments():
    with pytest.raises(DatasetError):
        split_ids(0, 0.5)
    with pytest.raises(DatasetError):
        split_ids(10, 1.5)
    assert split_ids(4, 0.5) == (["000000", "000001"], ["000002", "000003"])
    assert _tool().main(["--out", "/nonexistent/x", "--frames", "0", "--seed", "0", "--quiet"]) == 2


def test_val_only_writes_the_same_val_frames(dataset, tmp_path):
    assert _tool().main(["--out", str(tmp_path), "--frames", str(FRAMES), "--seed", str(SEED), "--val-fraction", "0.34",
                         "--workers", "1", "--quiet", "--val-only", "5"]) == 0
    assert (tmp_path / "ImageSets" / "val.txt").read_text().split() == ["000002"]
    assert (tmp_path / "ImageSets" / "train.txt").read_text() == ""
    files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "training").rglob("*") if p.is_file())
    assert {p.stem for p in files} == {"000002"} and len(files) == 5
    for rel in files:
        assert (dataset / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["val_only"] == 5 and meta["stats"]["frames_written"] == 1
    with pytest.raises(DatasetError, match="val_only"):
        write_dataset(tmp_path, FRAMES, SEED, val_only=-1)
