"""Fleet inference end to end on a local Ray of 2 CPUs: a directory of real frames with a bad
file, a rosbag2 and an MCAP recording, resuming, tools/batch_infer.py as a user runs it; the
boxes equal tools/infer.py's JSON on the same frames."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("ray.data")
import pyarrow.parquet as pq  # noqa: E402

from pointpillars_trt.fleet import FleetOptions, InputSpec, LabelWriter, ResultStore, plan_tasks, run_fleet
from tests.helpers import REPO

from .conftest import BACKEND, SCORE_THRESHOLD, make_detector, mcap_file, write_bag

pytestmark = pytest.mark.slow
TOOLS = REPO / "tools"
OPTIONS = FleetOptions(batch_size=2, score_threshold=SCORE_THRESHOLD, progress=False, warmup=0)
T0 = 1_700_000_000_000_000_000


def load_tool(name):
    sys.path.insert(0, str(TOOLS))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(TOOLS))


@pytest.fixture(scope="module")
def infer_json(tmp_path_factory, frames_dir):
    """tools/infer.py's JSON on the directory: {file stem: frame record}, and the failed files."""
    out = tmp_path_factory.mktemp("infer") / "infer.json"
    rc = load_tool("infer").main([str(frames_dir), "--backend", BACKEND, "--score-thresh", str(SCORE_THRESHOLD),
                                  "--out", str(out), "--quiet"])
    assert rc == 2  # bad.bin
    doc = json.loads(out.read_text())
    return {f["path"].rsplit("/", 1)[1][:-4]: f for f in doc["frames"]}, doc["failed"]


def assert_same_as_infer(row, record):
    """One Parquet row against one tools/infer.py JSON record (rounded to 6 decimals there)."""
    assert row["error"] is None
    np.testing.assert_allclose(np.array(row["boxes"]).reshape(-1, 7), np.array(record["boxes"]).reshape(-1, 7), atol=1e-6)
    np.testing.assert_allclose(row["scores"], record["scores"], atol=1e-6)
    assert row["labels"] == record["labels"] and row["num_pillars"] == record["num_pillars"]


def run(tmp_path, inputs, spec=InputSpec(frames_per_task=2), labels=None, options=OPTIONS, name="out.parquet"):
    store = ResultStore(tmp_path / name, {"test": 1})
    tasks = plan_tasks(inputs, spec, store.done)
    return run_fleet(tasks, make_detector, store, options, labels), pq.read_table(store.path).to_pylist()


def test_directory_with_a_bad_file_equals_infer(ray_cluster, tmp_path, frames_dir, infer_json):
    want, failed = infer_json
    labels = LabelWriter(tmp_path / "labels")
    summary, rows = run(tmp_path, [frames_dir], labels=labels)
    assert (summary.frames, summary.failed, len(rows)) == (4, 1, 4)
    by_frame = {r["frame"]: r for r in rows}
    for stem, record in want.items():
        assert_same_as_infer(by_frame[stem], record)
        assert by_frame[stem]["source"] == record["path"]
    assert by_frame["bad"]["error"] == failed[0]["error"] and by_frame["bad"]["boxes"] == []
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == sorted(f"{s}.txt" for s in want)
    first = sorted(want)[0]
    lines = (tmp_path / "labels" / f"{first}.txt").read_text().splitlines()
    assert len(lines) == len(want[first]["boxes"]) and lines[0].split()[0] == want[first]["labels"][0]


def test_serial_actor_gives_the_rows_of_the_threaded_one(ray_cluster, tmp_path, frames_dir):
    """actor_concurrency 1 (one batch at a time) and 3 (threads; the default, as in the other
    tests): the same rows, timings aside, in any order."""
    rows = {}
    for k in (1, 3):
        summary, got = run(tmp_path, [frames_dir], options=replace(OPTIONS, actor_concurrency=k), name=f"out{k}.parquet")
        assert (summary.frames, summary.failed) == (4, 1)
        rows[k] = sorted(({c: v for c, v in r.items() if c != "timings_ms"} for r in got), key=lambda r: r["source"])
    assert rows[1] == rows[3]


def test_rosbag2_and_mcap_then_resume(ray_cluster, tmp_path, clouds, infer_json, frame_files):
    """Each recording: two real frames, a message that does not deserialize and an empty cloud, in
    ranges of 2 messages. A second run runs only the failed messages again."""
    want, _ = infer_json
    msgs = [clouds[0], b"\x05garbled", np.zeros((0, 4), np.float32), clouds[1]]
    times = [T0 + i * 100 for i in range(4)]
    sqlite = write_bag(tmp_path / "drive_sqlite", msgs, times, "sqlite3")
    mcap = mcap_file(write_bag(tmp_path / "drive_mcap", msgs, times, "mcap"))
    spec = InputSpec(topic="/points", frames_per_task=2)
    summary, rows = run(tmp_path, [sqlite, mcap], spec)
    assert (summary.frames, summary.failed, len(rows)) == (8, 2, 8)
    for bag in (sqlite, mcap):
        got = {r["index"]: r for r in rows if r["source"] == str(bag)}
        assert sorted(got) == [0, 1, 2, 3] and [got[i]["record_ns"] for i in range(4)] == times
        assert_same_as_infer(got[0], want[frame_files[0].stem])
        assert_same_as_infer(got[3], want[frame_files[1].stem])
        assert got[0]["stamp_ns"] == times[0] + 7
        assert "message 1 on /points: does not deserialize" in got[1]["error"]
        assert got[2]["error"] is None and got[2]["boxes"] == [] and "the result is empty" in got[2]["warnings"][0]
    again, rows_again = run(tmp_path, [sqlite, mcap], spec)
    assert (again.frames, again.failed, again.skipped, len(rows_again)) == (2, 2, 6, 8)
    check_recording(tmp_path / "out.parquet", tmp_path / "detections.mcap", rows_again)


def check_recording(results, out, rows):
    """The detections recording of the output: a box array per frame that ran, at its record time."""
    from rosbags.highlevel import AnyReader

    from pointpillars_trt.config import load_config
    from pointpillars_trt.fleet.recording import write_recording
    from pointpillars_trt.ros.messages import boxes_from_msg

    assert write_recording(results, out, load_config().classes) == 6
    ran = sorted((r["record_ns"], r["stamp_ns"], len(r["scores"])) for r in rows if r["error"] is None)
    got = []
    with AnyReader([out]) as reader:
        conns = [c for c in reader.connections if c.topic == "/pointpillars/boxes"]
        for conn, t, raw in reader.messages(connections=conns):
            header, boxes, scores, names = boxes_from_msg(reader.deserialize(raw, conn.msgtype))
            got.append((t, header.stamp.nanoseconds, len(scores)))
    assert sorted(got) == ran


def test_batch_infer_as_a_user_runs_it(ray_cluster, tmp_path, frames_dir, infer_json):
    """A subprocess joining the session's Ray: exit 2 for the bad file with its one line, the
    Parquet file complete; bad requests exit 2 with one line and no traceback (also an option that
    only the actors find wrong)."""
    want, failed = infer_json
    out = tmp_path / "o.parquet"
    base = [sys.executable, str(TOOLS / "batch_infer.py"), "--backend", BACKEND, "--score-thresh", str(SCORE_THRESHOLD),
            "--no-progress", "--out", str(out)]
    proc = subprocess.run([*base, "--input", str(frames_dir), "--address", ray_cluster, "--batch-size", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and f"batch_infer: ERROR: {failed[0]['error']}" in proc.stderr
    assert "4 frames (1 failed, 0 already done)" in proc.stderr
    rows = {r["frame"]: r for r in pq.read_table(out).to_pylist()}
    for stem, record in want.items():
        assert_same_as_infer(rows[stem], record)
    for extra, text in [(["--input", str(tmp_path / "missing")], "no such file or directory"),
                        (["--input", str(frames_dir), "--ckpt", str(tmp_path / "no.pth")], "no.pth"),
                        (["--input", str(frames_dir), "--score-thresh", "0.9"], "holds results of another run"),
                        (["--input", str(frames_dir), "--actor-concurrency", "0"], "actor_concurrency must be >= 1"),
                        # found by the actor, not before Ray starts: still one line
                        (["--input", str(frames_dir), "--max-batch", "4", "--out", str(tmp_path / "o2.parquet"),
                          "--address", ray_cluster], "does not apply to backend onnxruntime")]:
        proc = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=120)
        errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert len(errors) == 1 and text in errors[0], proc.stderr


def test_bench_fleet_runs_on_cpu(ray_cluster, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_fleet as bench
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    out = tmp_path / "bench.json"
    assert bench.main(["--frames", "4", "--batch-size", "2", "--frames-per-task", "2", "--warmup", "0", "--backend", BACKEND, "--no-progress",
                       "--actor-concurrency", "2", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["fleet"]["frames"] == result["in_process"]["frames"] == 4 and result["same_boxes"]
    assert [r["actor_concurrency"] for r in result["runs"]] == [2, 1] and all(r["same_boxes"] for r in result["runs"])
    assert result["ratio"] > 0 and "frames/s" in capsys.readouterr().out


@pytest.mark.parametrize("threshold", [1.5, -0.2])
def test_fleet_options_refuse_a_score_threshold_outside_zero_one(threshold):
    from pointpillars_trt.errors import ConfigError

    with pytest.raises(ConfigError, match=r"score_threshold: must be in \[0, 1\]"):
        FleetOptions(score_threshold=threshold)
