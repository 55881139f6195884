"""tools/infer.py never loses results to bad input: per-file guards, atomic outputs checked up front
(run as a user runs it: a subprocess on real files)."""

from __future__ import annotations

import json
import os
import resource
import shutil

import numpy as np
import pytest

from pointpillars_trt.io.pointcloud import load_points, save_points

from .test_infer import FRAME, REPO, SHARED, run_tool

SAMPLE = REPO / "pointpillars_trt" / "data" / "sample_cloud.bin"


@pytest.fixture()
def frames_dir(tmp_path):
    """a.bin, b.bin (corrupt: 18 bytes), c.pcd: two good frames around a bad one."""
    d = tmp_path / "frames"
    d.mkdir()
    shutil.copy(SAMPLE, d / "a.bin")
    (d / "b.bin").write_bytes(np.zeros(4, np.float32).tobytes() + b"xx")
    save_points(d / "c.pcd", load_points(SAMPLE))
    return d


def assert_no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr


def test_one_bad_file_keeps_the_others(frames_dir, tmp_path):
    out = tmp_path / "res.json"
    proc = run_tool(frames_dir, "--out", out, "--quiet", check=False)
    assert proc.returncode == 2, proc.stderr
    assert_no_traceback(proc)
    doc = json.loads(out.read_text())
    assert [os.path.basename(f["path"]) for f in doc["frames"]] == ["a.bin", "c.pcd"]
    assert doc["frames"][0]["boxes"] == doc["frames"][1]["boxes"]
    [failed] = doc["failed"]
    assert failed["path"] == str(frames_dir / "b.bin") and "not a multiple of 16" in failed["error"]
    errors = [line for line in proc.stderr.splitlines() if ": ERROR: " in line]
    assert len(errors) == 1 and "b.bin" in errors[0]
    assert "2 ok / 1 failed" in proc.stderr


def test_fail_fast_stops_at_the_bad_file(frames_dir, tmp_path):
    out = tmp_path / "res.json"
    proc = run_tool(frames_dir, "--out", out, "--quiet", "--fail-fast", check=False)
    assert proc.returncode == 2 and "b.bin" in proc.stderr
    assert_no_traceback(proc)
    assert not out.exists()


@pytest.mark.skipif(not FRAME.exists(), reason="../shared KITTI frames absent")
def test_label_directory_with_a_bad_file(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    shutil.copy(FRAME, d / "000134.bin")
    (d / "000135.bin").write_bytes(b"\0" * 5)  # not a whole point
    (d / "000136.bin").write_bytes(b"")  # a dropped sweep: no point, an empty result
    labels = tmp_path / "labels"
    proc = run_tool(d, "--calib", SHARED / "calib" / "000134.txt", "--out", labels, "--quiet", check=False)
    assert proc.returncode == 2 and "000135.bin" in proc.stderr and "not a multiple of 16" in proc.stderr
    assert_no_traceback(proc)
    assert sorted(p.name for p in labels.iterdir()) == ["000134.txt", "000136.txt"]
    assert (labels / "000136.txt").read_text() == "" and "000136.bin: no point lies inside" in proc.stderr
    assert "2 ok / 1 failed" in proc.stderr


def test_a_failed_write_keeps_the_previous_json(tmp_path):
    out = tmp_path / "res.json"
    previous = json.dumps({"model": "earlier run", "frames": []})
    out.write_text(previous)

    def small_files():  # the JSON of one frame is larger than 300 bytes
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))

    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(REPO / "tools" / "infer.py"), str(SAMPLE), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert proc.returncode == 2, proc.stderr
    assert_no_traceback(proc)
    assert "res.json: cannot write" in proc.stderr
    assert out.read_text() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.json"]  # no temporary file left


@pytest.mark.parametrize("make_out", [
    lambda tmp: tmp / "a_file" / "res.json",  # the parent is a file
    lambda tmp: tmp / "a_file" / "labels",  # label directory under a file
    lambda tmp: "/proc/pointpillars_res.json",
])
def test_unwritable_out_is_found_before_detection(tmp_path, make_out):
    (tmp_path / "a_file").write_text("x")
    out = make_out(tmp_path)
    proc = run_tool(SAMPLE, "--out", out, "--calib", SHARED / "calib" / "000134.txt", check=False)
    assert proc.returncode == 2, proc.stderr
    assert_no_traceback(proc)
    assert str(out) in proc.stderr
    assert "model:" not in proc.stderr and "times (ms)" not in proc.stdout  # no detection ran
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_found_before_detection(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        proc = run_tool(SAMPLE, "--out", ro / "res.json", check=False)
    finally:
        ro.chmod(0o700)
    assert proc.returncode == 2 and "res.json: cannot write" in proc.stderr and "model:" not in proc.stderr


def test_nonfinite_drop_reaches_the_reader(tmp_path):
    pts = load_points(SAMPLE)
    with_nan = np.insert(pts, [3, 300], np.nan, axis=0)
    path = tmp_path / "nan.bin"
    with_nan.tofile(path)
    strict = run_tool(path, "--quiet", check=False)
    assert strict.returncode == 2 and "nonfinite='drop'" in strict.stderr
    out = tmp_path / "res.json"
    run_tool(path, "--nonfinite", "drop", "--out", out, "--quiet")
    [frame] = json.loads(out.read_text())["frames"]
    assert frame["num_points"] == len(pts)


def test_a_frame_outside_the_range_gives_an_empty_result(tmp_path):
    far = np.array([[500.0, 500.0, 0.0, 0.1], [-400.0, 30.0, 1.0, 0.2]], np.float32)
    path = tmp_path / "far.bin"
    far.tofile(path)
    out = tmp_path / "res.json"
    proc = run_tool(path, "--out", out)
    assert "the result is empty" in proc.stderr and "0 boxes" in proc.stdout
    [frame] = json.loads(out.read_text())["frames"]
    assert frame["boxes"] == [] and frame["num_points"] == 2


def test_an_invalid_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("voxel: [1, 2\n")
    proc = run_tool(SAMPLE, "--config", bad, "--quiet", check=False)
    assert proc.returncode == 2
    assert_no_traceback(proc)
    [line] = proc.stderr.strip().splitlines()
    assert "bad.yaml: not valid YAML: line 2, column 1:" in line


@pytest.mark.parametrize("value", ["2", "-0.5", "nan", "high"])
def test_a_score_threshold_outside_zero_one_is_refused(value):
    proc = run_tool(SAMPLE, "--score-thresh", value, check=False)
    assert proc.returncode == 2 and "--score-thresh" in proc.stderr and "model:" not in proc.stderr
    assert_no_traceback(proc)
