"""Inputs -> read tasks (pointpillars_trt.fleet.plan) and what the tasks read (fleet.tasks): real
files, a KITTI root, rosbag2 / MCAP recordings split into message ranges. No Ray needed."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.errors import ConfigError
from pointpillars_trt.fleet import InputSpec, frame_count, plan_tasks
from pointpillars_trt.fleet.tasks import BagTask, PointsTask

from .conftest import mcap_file, write_bag

pytest.importorskip("rosbags")

T0 = 1_700_000_000_000_000_000


def rows_of(tasks):
    return [row for t in tasks for row in t.frames()]


def test_directory_glob_and_file(frames_dir, frame_files, clouds):
    tasks = plan_tasks([frames_dir], InputSpec(frames_per_task=3))
    assert [type(t) for t in tasks] == [PointsTask, PointsTask] and frame_count(tasks) == 4
    rows = rows_of(tasks)
    assert [r["frame"] for r in rows] == [p.stem for p in frame_files] + ["bad"]
    assert all(r["index"] == 0 and r["source"] == str(frames_dir / f"{r['frame']}.bin") for r in rows)
    for row, pts in zip(rows, clouds):
        assert row["error"] == "" and np.array_equal(row["points"], pts)
    assert rows[3]["error"].startswith(f"{frames_dir / 'bad.bin'}: size 1001 bytes") and rows[3]["points"].shape == (0, 4)
    by_glob = plan_tasks([f"{frames_dir}/00000[01].bin", frame_files[2]], InputSpec())
    assert [it.frame for t in by_glob for it in t.items] == [p.stem for p in frame_files[:2]] + [frame_files[2].stem]
    done = {(str(frames_dir / "bad.bin"), 0)}
    assert frame_count(plan_tasks([frames_dir], InputSpec(), done)) == 3


def test_kitti_split(tmp_path, frame_files, clouds):
    root = tmp_path / "kitti"
    (root / "ImageSets").mkdir(parents=True)
    (root / "training" / "velodyne_reduced").mkdir(parents=True)
    for p in frame_files[:2]:
        (root / "training" / "velodyne_reduced" / p.name).symlink_to(p)
    (root / "ImageSets" / "val.txt").write_text(f"{frame_files[1].stem}\n{frame_files[0].stem}\n")
    rows = rows_of(plan_tasks([root], InputSpec(split="val")))
    assert [(r["source"], r["index"], r["frame"]) for r in rows] == [
        (str(root / "ImageSets" / "val.txt"), 0, frame_files[1].stem), (str(root / "ImageSets" / "val.txt"), 1, frame_files[0].stem)]
    assert np.array_equal(rows[0]["points"], clouds[1])


def test_bad_inputs(tmp_path, frames_dir):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    cases = {tmp_path / "missing.bin": "no such file", tmp_path / "empty": "holds no point-cloud file",
             tmp_path / "notes.txt": "not a point-cloud file", f"{tmp_path}/*.pcd": "matches no point-cloud file"}
    for path, text in cases.items():
        with pytest.raises(ConfigError, match=text):
            plan_tasks([path], InputSpec())
    bag = write_bag(tmp_path / "bag", [np.zeros((1, 4), np.float32)], [T0], "sqlite3")
    with pytest.raises(ConfigError, match="needs a topic"):
        plan_tasks([bag], InputSpec())
    with pytest.raises(ConfigError, match="frames_per_task"):
        InputSpec(frames_per_task=0)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_big_bag_is_split_into_exact_message_ranges(tmp_path, clouds, storage):
    """9 messages (three pairs share a record time, one does not deserialize), 2 per task: every
    index read once, in its task, with its own points; a resumed plan skips the done ones."""
    small = [c[: 50 + 10 * i] for i, c in enumerate(clouds * 3)]
    small[4] = b"\x05garbled"
    times = [T0, T0 + 10, T0 + 10, T0 + 20, T0 + 30, T0 + 30, T0 + 40, T0 + 40, T0 + 50]
    bag = write_bag(tmp_path / "bag", small, times, storage)
    if storage == "mcap":
        bag = mcap_file(bag)
    spec = InputSpec(topic="/points", frames_per_task=2)
    tasks = plan_tasks([bag], spec)
    assert [(t.first, t.count) for t in tasks] == [(0, 2), (2, 2), (4, 2), (6, 2), (8, 1)]
    assert [(t.start_ns, t.skip) for t in tasks] == [(None, 0), (T0 + 10, 1), (T0 + 30, 0), (T0 + 40, 0), (T0 + 50, 0)]
    rows = rows_of(tasks)
    assert [r["index"] for r in rows] == list(range(9))
    assert [r["record_ns"] for r in rows] == times
    for i, row in enumerate(rows):
        if i == 4:
            assert "message 4 on /points: does not deserialize" in row["error"]
            continue
        assert row["error"] == "" and row["stamp_ns"] == times[i] + 7 and row["frame"] == f"{i:06d}"
        np.testing.assert_array_equal(row["points"], small[i])
    done = {(str(bag), i) for i in (0, 1, 3)}
    resumed = plan_tasks([bag], spec, done)
    assert [(t.first, t.done) for t in resumed][:2] == [(2, frozenset({3})), (4, frozenset())]
    assert [r["index"] for r in rows_of(resumed)] == [2, 4, 5, 6, 7, 8]


def test_unreadable_bag_gives_a_row_per_frame(tmp_path, clouds):
    bag = write_bag(tmp_path / "bag", clouds[:2], [T0, T0 + 1], "sqlite3")
    task = BagTask(str(bag), "/points", 0, 2)
    for f in bag.glob("*.db3"):
        f.write_bytes(b"not sqlite")
    rows = list(task.frames())
    assert [r["index"] for r in rows] == [0, 1] and all("not read" in r["error"] for r in rows)
