"""tools/infer_bag.py: rosbag1 / rosbag2 (sqlite3, MCAP) in, detections out as bag / MCAP / KITTI files."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pointpillars_trt.ros.cloud import Header, Stamp, points_to_cloud
from pointpillars_trt.ros.factories import RosbagsFactory
from pointpillars_trt.ros.messages import boxes_from_msg, cloud_msg, markers_from_msg

from .conftest import REPO, SCORE_THRESHOLD, assert_boxes_close

rosbags = pytest.importorskip("rosbags")
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag1 import Writer as Writer1  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer as Writer2  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

TOOL = REPO / "tools" / "infer_bag.py"
T0 = 1_650_000_000_000_000_000
PC2 = "sensor_msgs/msg/PointCloud2"


def stamp_ns(i: int) -> int:
    return T0 + i * 100_000_000 + 4321


GARBLED = None  # in make_bag's clouds: a /points message whose bytes do not deserialize


def make_bag(path: Path, clouds: list[np.ndarray | None], kind: str) -> list[int]:
    """Write ``clouds`` on /points (record time = header stamp) plus a /chatter string; returns the times.
    A ``GARBLED`` entry is written as 7 bytes that are no PointCloud2."""
    ros1 = kind == "rosbag1"
    ts = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    f = RosbagsFactory(ts, 1 if ros1 else 2)
    ser = ts.serialize_ros1 if ros1 else ts.serialize_cdr
    writer = Writer1(path) if ros1 else Writer2(path, version=9, storage_plugin=StoragePlugin[kind.upper()])
    times = []
    with writer:
        conn = writer.add_connection("/points", PC2, typestore=ts)
        other = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
        for i, pts in enumerate(clouds):
            t = stamp_ns(i)
            if pts is GARBLED:
                writer.write(conn, t, b"\x05garbl")
            else:
                cloud = points_to_cloud(pts, Header(Stamp.from_nanoseconds(t), "velodyne"))
                writer.write(conn, t, bytes(ser(cloud_msg(f, cloud), PC2)))
            writer.write(other, t + 1, bytes(ser(f.new("std_msgs/msg/String", data=f"frame {i}"), "std_msgs/msg/String")))
            times.append(t)
    return times


def read_topics(path: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype), conn.msgtype))
    return out


def check_detections(topics, times, expected_dets, box_type):
    assert [t for t, _, _ in topics["/detections"]] == times
    assert [t for t, _, _ in topics["/detections/markers"]] == times
    for (t, msg, mtype), want in zip(topics["/detections"], expected_dets):
        assert mtype == box_type
        header, boxes, scores, names = boxes_from_msg(msg)
        assert header == Header(Stamp.from_nanoseconds(t), "velodyne")
        assert names == want.label_names
        assert_boxes_close(boxes, want.boxes)
        np.testing.assert_allclose(scores, want.scores, rtol=1e-5)
    for (t, msg, _), want in zip(topics["/detections/markers"], expected_dets):
        headers, markers = markers_from_msg(msg)
        assert len(markers) == 1 + 2 * len(want)
        assert {h.stamp.nanoseconds for h in headers} == {t}


@pytest.fixture(scope="module")
def infer_bag():
    """tools/infer_bag.py imported as a module (its main() runs in this process)."""
    sys.path.insert(0, str(TOOL.parent))
    try:
        import infer_bag as module
    finally:
        sys.path.remove(str(TOOL.parent))
    return module


def common_args(ckpt):
    return ["--score-thresh", str(SCORE_THRESHOLD), "--no-progress"] + (["--ckpt", str(ckpt)] if ckpt else [])


def no_objects():
    from pointpillars_trt.detector import Detections

    return Detections(np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), ("Car",))


def test_rosbag1_to_mcap_and_kitti_files(tmp_path, frames, expected, ros_ckpt):
    """As a user runs it: a subprocess. Between two KITTI frames an empty cloud (written as "no
    objects") and a message that does not deserialize (logged, counted, skipped: exit 2)."""
    clouds = [frames[0], np.zeros((0, 4), np.float32), GARBLED, frames[1]]
    times = make_bag(tmp_path / "in.bag", clouds, "rosbag1")
    out, kdir = tmp_path / "out.mcap", tmp_path / "kitti"
    cmd = [sys.executable, str(TOOL), str(tmp_path / "in.bag"), "--topic", "/points", "--out", str(out),
           "--kitti-dir", str(kdir), "--copy-input", "--save-points", *common_args(ros_ckpt)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"message 2 on /points (record time {times[2]}): does not deserialize" in proc.stderr
    assert "3 clouds processed, 0 skipped, 1 unreadable messages" in proc.stderr
    assert "the result is empty" in proc.stderr
    assert out.is_file() and not list(tmp_path.glob(".pp_bag_*"))
    topics = read_topics(out)
    good = [times[0], times[1], times[3]]
    check_detections(topics, good, [expected[0], no_objects(), expected[1]], "vision_msgs/msg/Detection3DArray")
    assert [t for t, _, _ in topics["/points"]] == good and "/chatter" not in topics
    # KITTI-style files: indices follow the recording's message order (2 was skipped)
    assert sorted(p.name for p in (kdir / "boxes_lidar").iterdir()) == ["000000.txt", "000001.txt", "000003.txt"]
    assert (kdir / "boxes_lidar" / "000001.txt").read_text() == ""
    lines = (kdir / "boxes_lidar" / "000003.txt").read_text().splitlines()
    assert len(lines) == len(expected[1])
    first = lines[0].split()
    assert first[0] == expected[1].label_names[0]
    np.testing.assert_allclose([float(v) for v in first[1:8]], expected[1].boxes[0], atol=1e-4)
    np.testing.assert_array_equal(np.fromfile(kdir / "velodyne" / "000000.bin", np.float32).reshape(-1, 4), frames[0])
    rows = list(csv.DictReader((kdir / "frames.csv").open()))
    assert [int(r["record_time_ns"]) for r in rows] == good and rows[2]["frame"] == "000003"
    assert rows[1]["num_points"] == "0" and rows[1]["num_boxes"] == "0"


@pytest.mark.parametrize("kind, out_name, box_type", [
    ("sqlite3", "out.bag", "pointpillars_trt_msgs/msg/BoxArray"),
    ("mcap", "out_dir", "vision_msgs/msg/Detection3DArray"),
])
def test_rosbag2_inputs(tmp_path, frames, expected, ros_ckpt, kind, out_name, box_type, infer_bag):
    idx = 1 if kind == "sqlite3" else 0
    times = make_bag(tmp_path / "in_bag", [frames[idx]], kind)
    out = tmp_path / out_name
    extra = ["--storage", "sqlite3"] if out_name == "out_dir" else []
    rc = infer_bag.main([str(tmp_path / "in_bag"), "--topic", "/points", "--out", str(out), *extra, *common_args(ros_ckpt)])
    assert rc == 0
    if out_name == "out_dir":
        assert (out / "metadata.yaml").is_file() and list(out.glob("*.db3"))
    check_detections(read_topics(out), times, [expected[idx]], box_type)


def test_bad_requests_exit_2(tmp_path, frames, caplog, infer_bag):
    make_bag(tmp_path / "in.bag", [frames[0][:100]], "rosbag1")
    assert infer_bag.main([str(tmp_path / "in.bag"), "--topic", "/velodyne_points", "--out", str(tmp_path / "o.bag")]) == 2
    assert "no topic '/velodyne_points'" in caplog.text and "/points (sensor_msgs/msg/PointCloud2)" in caplog.text
    assert infer_bag.main([str(tmp_path / "in.bag"), "--topic", "/chatter", "--out", str(tmp_path / "o.bag")]) == 2
    assert "holds std_msgs/msg/String" in caplog.text
    assert infer_bag.main([str(tmp_path / "missing.bag"), "--topic", "/points", "--out", str(tmp_path / "o.bag")]) == 2
    assert infer_bag.main([str(tmp_path / "in.bag"), "--topic", "/points"]) == 2
    assert "nothing to write" in caplog.text


def test_unwritable_outputs_are_found_before_the_model_loads(tmp_path, frames, caplog, infer_bag):
    make_bag(tmp_path / "in.bag", [frames[0][:100]], "rosbag1")
    (tmp_path / "a_file").write_text("x")
    for flag, out in [("--out", tmp_path / "a_file" / "o.bag"), ("--kitti-dir", tmp_path / "a_file" / "kitti"),
                      ("--out", Path("/proc/pp_out.mcap"))]:
        caplog.clear()
        assert infer_bag.main([str(tmp_path / "in.bag"), "--topic", "/points", flag, str(out), "--no-progress"]) == 2
        assert str(out) in caplog.text and "model:" not in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "in.bag"]  # no temporary left behind
