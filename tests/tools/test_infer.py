"""tools/infer.py run as a user runs it: a subprocess on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data" / "kitti_frames" / "zhulf0804"
FRAME = SHARED / "velodyne_reduced" / "000134.bin"


def run_tool(*args, check=True, cwd=None):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "infer.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from pointpillars_trt.checkpoint import write_checkpoint
    from pointpillars_trt.config import load_config

    d = tmp_path_factory.mktemp("ckpt")
    cfg = load_config()
    out = {}
    for fmt in ("native", "openpcdet", "mmdet3d", "zhulf0804"):
        path = d / (f"{fmt}.safetensors" if fmt == "native" else f"{fmt}.pth")
        write_checkpoint(path, fmt, cfg, seed=3)
        out[fmt] = path
    return out


@pytest.mark.skipif(not FRAME.exists(), reason="../shared KITTI frames absent")
def test_every_checkpoint_format_on_a_real_frame(checkpoints, tmp_path):
    results = {}
    for fmt, ckpt in checkpoints.items():
        out = tmp_path / f"{fmt}.json"
        proc = run_tool(FRAME, "--ckpt", ckpt, "--out", out)
        assert f"({fmt})" in proc.stderr and "times (ms)" in proc.stdout
        frame = json.loads(out.read_text())["frames"][0]
        assert frame["path"] == str(FRAME)
        assert set(frame) >= {"path", "boxes", "scores", "labels", "timings_ms"}
        assert len(frame["boxes"]) == len(frame["scores"]) == len(frame["labels"])
        assert all(len(b) == 7 for b in frame["boxes"])
        assert set(frame["labels"]) <= {"Car", "Pedestrian", "Cyclist"}
        results[fmt] = frame
    assert all(r["timings_ms"]["total"] > 0 for r in results.values())


@pytest.mark.skipif(not FRAME.exists(), reason="../shared KITTI frames absent")
def test_kitti_label_output_and_bev(checkpoints, tmp_path):
    calib = SHARED / "calib" / "000134.txt"
    run_tool(FRAME, "--ckpt", checkpoints["openpcdet"], "--calib", calib, "--out", tmp_path / "labels",
             "--bev", tmp_path / "bev.png", "--score-thresh", "0.2", "--quiet")
    from pointpillars_trt.io.kitti import read_label

    objs = read_label(tmp_path / "labels" / "000134.txt")
    assert all(o.score is not None and o.score >= 0.2 for o in objs)
    png = (tmp_path / "bev.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_demo_model_on_the_shipped_sample(tmp_path):
    # what tools/demo.sh runs, in a folder without out/ (as a fresh clone is)
    args = [REPO / "pointpillars_trt" / "data" / "sample_cloud.bin", "--bev", "out/sample_bev.png", "--out", tmp_path / "r.json"]
    proc = run_tool(*args, cwd=tmp_path)
    assert (tmp_path / "out" / "sample_bev.png").stat().st_size > 0
    assert "model:" in proc.stderr
    if "RANDOM" in proc.stderr:
        assert "meaningless" in proc.stderr


def test_directory_input_writes_every_frame(tmp_path):
    from pointpillars_trt.io.pointcloud import load_points, save_points

    pts = load_points(REPO / "pointpillars_trt" / "data" / "sample_cloud.bin")
    d = tmp_path / "frames"
    d.mkdir()
    save_points(d / "a.bin", pts)
    save_points(d / "b.pcd", pts)
    save_points(d / "c.ply", pts[::2])
    run_tool(d, "--out", tmp_path / "r.json", "--quiet", "--bev", tmp_path / "bev")
    frames = json.loads((tmp_path / "r.json").read_text())["frames"]
    assert [Path(f["path"]).name for f in frames] == ["a.bin", "b.pcd", "c.ply"]
    assert frames[0]["boxes"] == frames[1]["boxes"]
    assert sorted(p.name for p in (tmp_path / "bev").iterdir()) == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize(
    "content, message",
    [
        (np.zeros(10, np.float32).tobytes() + b"xx", "not a multiple of 16"),
        (np.array([[1, 2, np.nan, 0]], np.float32).tobytes(), "NaN|non-finite|nonfinite"),
    ],
)
def test_bad_files_exit_2_naming_the_file(tmp_path, content, message):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(content)
    proc = run_tool(bad, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "bad.bin" in proc.stderr
    assert __import__("re").search(message, proc.stderr), proc.stderr


def test_a_0_byte_file_gives_an_empty_result(tmp_path):
    empty = tmp_path / "dropout.bin"
    empty.write_bytes(b"")
    proc = run_tool(empty, "--out", tmp_path / "r.json", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "dropout.bin: no point lies inside" in proc.stderr and "(0 points); the result is empty" in proc.stderr
    frames = json.loads((tmp_path / "r.json").read_text())["frames"]
    assert frames[0]["num_points"] == 0 and frames[0]["boxes"] == []


def test_checkpoint_of_another_architecture_lists_keys(tmp_path):
    import torch

    sd = {"backbone.conv1.weight": torch.zeros(3, 3), "head.fc.weight": torch.zeros(2, 2)}
    bad = tmp_path / "other.pth"
    torch.save({"model_state": sd}, bad)
    proc = run_tool(REPO / "pointpillars_trt" / "data" / "sample_cloud.bin", "--ckpt", bad, check=False)
    assert proc.returncode == 2 and "other.pth" in proc.stderr


def test_show_without_open3d_says_how_to_install(tmp_path):
    pytest.importorskip("matplotlib")
    try:
        import open3d  # noqa: F401
        pytest.skip("open3d is installed: the window would open")
    except ImportError:
        pass
    proc = run_tool(REPO / "pointpillars_trt" / "data" / "sample_cloud.bin", "--show", "--quiet", check=False)
    assert proc.returncode == 2 and "open3d" in proc.stderr.lower()


def _torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_torch_cuda(), reason="a CUDA GPU is present")
def test_gpu_backend_without_a_gpu_is_a_clear_error():
    proc = run_tool(REPO / "pointpillars_trt" / "data" / "sample_cloud.bin", "--backend", "gpu", check=False)
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr, proc.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not _torch_cuda() or not FRAME.exists(), reason="needs a CUDA GPU and the KITTI frames")
def test_gpu_backend_gives_the_cpu_boxes(tmp_path):
    """The whole frame on the GPU (our kernels, CUDA graph, fp32) against the CPU torch pipeline."""
    from pointpillars_trt.postprocess import iou_bev

    out = {}
    for name, args in {"gpu": ("--backend", "gpu", "--precision", "fp32"), "cpu": ("--backend", "torch")}.items():
        path = tmp_path / f"{name}.json"
        run_tool(FRAME, *args, "--out", path, "--quiet")
        out[name] = json.loads(path.read_text())["frames"][0]
    gpu, cpu = (np.asarray(out[k]["boxes"], np.float32).reshape(-1, 7) for k in ("gpu", "cpu"))
    assert len(gpu) == len(cpu) > 0
    assert out["gpu"]["labels"] == out["cpu"]["labels"]
    assert np.all(np.diag(iou_bev(gpu, cpu)) > 0.99)
