"""benchmarks/bench_voxelize_gpu.py: argument handling, frame loading and saving on the CPU; the
timed run itself on a CUDA GPU (marked ``gpu``; tools/gpu_suite.sh runs the benchmark as a step too)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from benchmarks import bench_voxelize_gpu as bench
from tests.cuda_helpers import cuda_device, cuda_skip_reason, torch_cuda  # noqa: F401  (fixtures)


def test_arguments_defaults_and_rejections(capsys):
    args = bench.parse_args([])
    assert (args.replays, args.chunk, args.spin_ms, args.synthetic_360, args.profile_reps) == (2000, 200, 20, 3, 50)
    assert args.frames is None and args.json is None and args.save_frames is None
    for bad in (["--replays", "0"], ["--chunk", "-3"], ["--spin-ms", "x"], ["--replay", "5"]):
        with pytest.raises(SystemExit) as exc:
            bench.parse_args(bad)
        assert exc.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_variants_are_distinct_and_named():
    names = [v.name for v in bench.VARIANTS]
    assert names == ["pdl/device-count", "no-pdl/device-count", "pdl/host-count"]


def test_frames_are_the_real_files_and_synthetic_360(kitti_frames):
    groups, paths = bench.frame_groups(bench.parse_args(["--synthetic-360", "1"]))
    assert [str(p) for p in kitti_frames] == paths and len(groups["fov"]) == len(paths)
    for path, pts in zip(paths, groups["fov"]):
        np.testing.assert_array_equal(pts, np.fromfile(path, dtype=np.float32).reshape(-1, 4))
    assert len(groups["360"]) == 1 and groups["360"][0].shape[1] == 4 and len(groups["360"][0]) > 50000


def test_save_frames_round_trip(tmp_path):
    frames = [np.arange(40, dtype=np.float32).reshape(10, 4), np.zeros((0, 4), np.float32)]
    paths = bench.save_frames(frames, tmp_path / "out", "synthetic_360")
    assert [p.name for p in paths] == ["synthetic_360_000.bin", "synthetic_360_001.bin"]
    for f, p in zip(frames, paths):
        np.testing.assert_array_equal(np.fromfile(p, dtype=np.float32).reshape(-1, 4), f)


def test_same_pillars_compares_bits():
    from pointpillars_trt.voxelize.pillars import Pillars

    feats = np.zeros((1, 2, 10), np.float32)
    a = Pillars(feats, np.array([1], np.int32), np.array([[3, 4]], np.int32), 5, 4, 0, 0, 0)
    neg_zero = feats.copy()
    neg_zero[0, 0, 0] = -0.0  # equal as floats, not as bits
    assert bench.same_pillars(a, a)
    assert not bench.same_pillars(a, Pillars(neg_zero, a.num_points, a.coords, 5, 4, 0, 0, 0))
    assert not bench.same_pillars(a, Pillars(feats, a.num_points, a.coords, 5, 3, 0, 0, 0))


def test_no_frames_exits_2_with_one_line(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert bench.main(["--frames", str(tmp_path), "--synthetic-360", "0"]) == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"no frames: no *.bin under {tmp_path} and --synthetic-360 0"]


@pytest.mark.skipif(cuda_skip_reason() is None, reason="a CUDA GPU is present: the GPU test runs instead")
def test_without_gpu_saves_frames_then_exits_2(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert bench.main(["--frames", str(tmp_path), "--synthetic-360", "1", "--save-frames", str(tmp_path / "f")]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("no CUDA GPU")
    assert (tmp_path / "f" / "synthetic_360_000.bin").stat().st_size % 16 == 0


@pytest.mark.gpu
def test_runs_on_gpu_identical_to_cpu(torch_cuda, kitti_frames, tmp_path):  # noqa: F811
    out = tmp_path / "vox.json"
    assert bench.main(["--replays", "30", "--chunk", "10", "--spin-ms", "2", "--synthetic-360", "1",
                       "--profile-reps", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["identical_to_cpu"] and set(report["results"]) == {"fov", "360"}
    fov = report["results"]["fov"]
    assert len(fov["frames"]) == len(kitti_frames)
    for name in ("pdl/device-count", "no-pdl/device-count", "pdl/host-count"):
        s = fov["summary"][name]
        assert s["pooled_ms"]["n"] == 30 * len(kitti_frames) and 0 < s["pooled_ms"]["median"] < 5
        assert any(k.startswith("pp_vox_") for k in fov["kernels_ms_per_frame"][name]["top_kernels"])
