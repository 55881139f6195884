"""KITTI split / ground truth / result-directory handling and running a detector over a split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from pointpillars_trt.errors import DatasetError, LabelError
from pointpillars_trt.eval import evaluate
from pointpillars_trt.eval.dataset import (
    check_run_meta,
    load_frame_points,
    load_ground_truth,
    load_predictions,
    open_split,
    predict_split,
    read_split_file,
)


def load_bin(path):
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def test_read_split_file(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text("000001\n\n000003\n")
    assert read_split_file(path) == ("000001", "000003")
    path.write_text("000001\n000003\n000001\n")
    with pytest.raises(DatasetError, match="listed twice: 000001"):
        read_split_file(path)
    path.write_text("\n")
    with pytest.raises(DatasetError, match="lists no frame ids"):
        read_split_file(path)
    path.write_text("000001 000002\n")
    with pytest.raises(DatasetError, match=r"val\.txt:1: expected one frame id per line"):
        read_split_file(path)


def test_open_split_and_ground_truth(kitti_layout):
    kitti = open_split(kitti_layout.root, "val")
    assert kitti.frame_ids == tuple(kitti_layout.frame_ids)
    gt = load_ground_truth(kitti)
    assert [len(objects) for objects in gt] == [4] * len(gt)
    assert kitti.image_shape("000000") == (375, 1242)


def test_open_split_errors(kitti_layout):
    with pytest.raises(DatasetError, match=r"ImageSets/test\.txt: split file not found \(available splits: \['val'\]\)"):
        open_split(kitti_layout.root, "test")
    with pytest.raises(DatasetError, match="KITTI data root not found"):
        open_split(kitti_layout.root / "nope")
    (kitti_layout.root / "training" / "calib" / "000003.txt").unlink()
    (kitti_layout.root / "training" / "label_2" / "000007.txt").unlink()
    with pytest.raises(DatasetError, match=r"label_2: 1 frame\(s\) of split 'val' have no file: 000007"):
        open_split(kitti_layout.root)
    with pytest.raises(DatasetError, match=r"calib: 1 frame\(s\) of split 'val' have no file: 000003"):
        open_split(kitti_layout.root, require=("calib",))


def test_malformed_label_names_file_and_line(kitti_layout):
    path = kitti_layout.root / "training" / "label_2" / "000005.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(" 0 ", " zero ", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"label_2/000005\.txt:2: field 'occluded' is not a number"):
        load_ground_truth(open_split(kitti_layout.root))


def test_load_predictions(kitti_layout, tmp_path):
    ids = kitti_layout.frame_ids
    pred = kitti_layout.write_predictions(tmp_path / "pred", frame_ids=ids[1:])  # frame 0 has no file
    (pred / "notes.json").write_text("{}")  # other files are not result files
    dt = load_predictions(pred, ids)
    assert dt[0] == [] and len(dt[1]) == 3 and all(o.score is not None for o in dt[1])
    gt = load_ground_truth(open_split(kitti_layout.root))
    result = evaluate(gt, dt)
    assert 90.0 < result["R40"]["Car"]["3d"]["moderate"] < 100.0  # 44 of 45 cars found

    (pred / "009999.txt").write_text("")
    with pytest.raises(DatasetError, match=r"1 result file\(s\) for frames not in the split: 009999\.txt"):
        load_predictions(pred, ids)
    (pred / "009999.txt").unlink()
    (pred / f"{ids[2]}.txt").write_text("\nCar 0 0 0 1 2 3 4 1 1 1 1 1 1 0\n")
    with pytest.raises(LabelError, match=rf"{ids[2]}\.txt:2: result lines need a score"):
        load_predictions(pred, ids)
    with pytest.raises(DatasetError, match="prediction directory not found"):
        load_predictions(tmp_path / "absent", ids)


@dataclass
class OracleDetections:
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple = ("Car", "Pedestrian", "Cyclist")


class OracleDetector:
    """Returns the ground-truth boxes of the frame it is given (frame ``i`` has ``200 + i`` points)."""

    def __init__(self, layout):
        self.layout = layout
        self.calls = 0

    def detect(self, points):
        self.calls += 1
        fid = self.layout.frame_ids[len(points) - 200]
        boxes = self.layout.boxes[fid]
        return OracleDetections(boxes.astype(np.float32), np.full(len(boxes), 0.8, np.float32), np.arange(len(boxes)))


def test_predict_split_writes_results_and_resumes(kitti_layout, tmp_path):
    kitti = open_split(kitti_layout.root)
    oracle = OracleDetector(kitti_layout)
    out = tmp_path / "results"
    assert predict_split(kitti, oracle.detect, out, load_bin, progress=False) == 45
    assert sorted(p.name for p in out.iterdir()) == [f"{fid}.txt" for fid in kitti.frame_ids]
    result = evaluate(load_ground_truth(kitti), load_predictions(out, kitti.frame_ids))
    for table in (result["R11"], result["R40"]):
        assert [table[c][m]["moderate"] for c in table for m in table[c]] == pytest.approx([100.0] * 12, abs=1e-3)  # aos: labels hold alpha to 2 decimals
    # resume: nothing left to do; a deleted file is redone
    assert predict_split(kitti, oracle.detect, out, load_bin, progress=False) == 0
    (out / "000010.txt").unlink()
    assert predict_split(kitti, oracle.detect, out, load_bin, progress=False) == 1
    assert oracle.calls == 46


def test_points_are_cropped_to_the_camera_view(kitti_layout):
    kitti = open_split(kitti_layout.root)
    fid = kitti.frame_ids[0]
    full = np.array([[20, 0, -1, 0.1], [-20, 0, -1, 0.2], [10, 30, -1, 0.3], [15, 1, -1, 0.4]], dtype=np.float32)
    (kitti_layout.root / "training" / "velodyne").mkdir()
    full.tofile(kitti.velodyne_path(fid, reduced=False))
    reduced = load_bin(kitti.velodyne_path(fid, reduced=True))
    np.testing.assert_array_equal(load_frame_points(kitti, fid, True, load_bin), reduced)  # prefers velodyne_reduced
    np.testing.assert_array_equal(load_frame_points(kitti, fid, False, load_bin), full)
    kitti.velodyne_path(fid, reduced=True).unlink()
    np.testing.assert_array_equal(load_frame_points(kitti, fid, True, load_bin), full[[0, 3]])
    kitti.velodyne_path(fid, reduced=False).unlink()
    with pytest.raises(DatasetError, match="no point cloud"):
        load_frame_points(kitti, fid, True, load_bin)


def test_run_record_refuses_to_mix_runs(tmp_path):
    meta = {"source": "a.pth", "backend": "torch", "fov_only": True}
    check_run_meta(tmp_path / "out", meta)
    check_run_meta(tmp_path / "out", {**meta, "source": "b.pth"})  # no results yet: the record is replaced
    check_run_meta(tmp_path / "out", meta)
    (tmp_path / "out" / "000001.txt").write_text("")
    check_run_meta(tmp_path / "out", dict(meta))
    with pytest.raises(DatasetError, match="holds results of another run"):
        check_run_meta(tmp_path / "out", {**meta, "backend": "onnxruntime"})
