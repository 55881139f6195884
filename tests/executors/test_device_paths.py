"""Every entry point reaches the device executor on a GPU machine: ``backend="auto"``, the ROS
node's processor, tools/infer_bag.py and tools/eval_kitti.py; and one GPU detector shared by two
threads. Marked ``gpu``: they skip on the CPU and run on the device through tools/gpu_suite.sh."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from tests.cuda_helpers import cuda_device, torch_cuda  # noqa: F401  (fixtures)
from tests.eval.conftest import kitti_layout  # noqa: F401  (fixture)
from tests.helpers import REPO, jittered_million, share_between_threads

pytestmark = pytest.mark.gpu


def matched(ref, got, iou=0.9, score=0.3) -> float:
    """Fraction of ``ref``'s boxes above ``score`` that ``got`` has (same class, BEV IoU > ``iou``)."""
    from pointpillars_trt.postprocess import iou_bev

    sel = ref.scores > score
    if not sel.any():
        return 1.0
    if len(got) == 0:
        return 0.0
    ious = iou_bev(ref.boxes[sel], got.boxes) * (ref.labels[sel][:, None] == got.labels[None, :])
    return float((ious.max(axis=1) > iou).mean())


@pytest.fixture(scope="module")
def cpu_reference():
    from pointpillars_trt.detector import Detector

    return Detector.from_checkpoint(None, backend="torch", device="cpu")


@pytest.fixture(scope="module")
def real_frames(kitti_frames):
    return [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames]


def test_auto_picks_the_gpu_pipeline(torch_cuda):
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.options import Backend

    det = Detector.from_checkpoint(None)
    assert det.backend == Backend.GPU and det.path.startswith("device (cuda")
    det.close()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ros_processor_on_the_gpu_path_matches_the_cpu_detector(torch_cuda, cpu_reference, real_frames, precision):
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.options import Backend
    from pointpillars_trt.ros.cloud import Header, Stamp, points_to_cloud
    from pointpillars_trt.ros.processor import FrameProcessor, NodeParams, build_detector

    params = NodeParams(frame_id="velodyne")
    det = build_detector(params) if precision == "fp16" else Detector.from_checkpoint(None, precision="fp32")
    assert det.backend == Backend.GPU  # the node's own factory reaches the device executor (fp16 by default)
    proc = FrameProcessor(det, params)
    staging = det.executor.pipeline.bufs.staging
    stage, in_place = staging.stage, []

    def recording_stage(clouds):  # did the processor decode into the pinned row itself (no staging copy)?
        in_place.append(len(clouds) == 1 and clouds[0].__array_interface__["data"][0] == staging.addr[0])
        return stage(clouds)

    staging.stage = recording_stage
    for i, pts in enumerate(real_frames):
        res = proc.process(points_to_cloud(pts, Header(Stamp(i, 0), "velodyne")))
        want = cpu_reference.detect(pts)
        assert res.detections.num_pillars == want.num_pillars
        assert matched(want, res.detections) >= (0.99 if precision == "fp32" else 0.95)
        assert matched(res.detections, want) >= (0.99 if precision == "fp32" else 0.95)
    assert in_place == [True] * len(real_frames)
    det.close()


def test_infer_bag_runs_the_gpu_pipeline(torch_cuda, real_frames, tmp_path):
    from tests.ros.test_bag import make_bag

    make_bag(tmp_path / "in.bag", real_frames[:3], "rosbag1")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "infer_bag.py"), str(tmp_path / "in.bag"), "--topic", "/points",
                           "--out", str(tmp_path / "out.mcap"), "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "backend gpu" in proc.stderr and "device (cuda" in proc.stderr and "3 clouds processed" in proc.stderr


def test_eval_kitti_runs_the_gpu_pipeline(torch_cuda, kitti_layout, tmp_path):
    (kitti_layout.root / "ImageSets" / "mini.txt").write_text("000000\n000001\n")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "eval_kitti.py"), "--data-root", str(kitti_layout.root),
                           "--split", "mini", "--out-dir", str(tmp_path / "res"), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "device (cuda" in proc.stderr and sorted(p.name for p in (tmp_path / "res").glob("*.txt")) == ["000000.txt", "000001.txt"]


def test_one_gpu_detector_shared_by_two_threads(torch_cuda, real_frames):
    from pointpillars_trt.detector import Detector, PillarOverflowWarning

    det = Detector.from_checkpoint(None, backend="gpu", precision="fp16", max_batch=2)
    clouds = real_frames + [jittered_million(real_frames[:5], seed=s) for s in range(2)]
    rounds = 50
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PillarOverflowWarning)
        want = [det.detect(c) for c in clouds]
        # every fifth call of a thread is a batch of two: the replays of both shapes interleave
        got, errors = share_between_threads(
            lambda i, r: det.detect(clouds[i]) if r % 5 else det.detect_batch([clouds[i], clouds[0]])[0], len(clouds), rounds)
        after = [det.detect(c) for c in clouds]
    assert not errors, errors
    assert len(got) == 2 * rounds
    for i, d in got.values():
        assert len(d) == len(want[i]) and d.num_pillars == want[i].num_pillars
        np.testing.assert_allclose(d.boxes, want[i].boxes, atol=1e-4)
    for a, w in zip(after, want):
        np.testing.assert_array_equal(a.boxes, w.boxes)
    det.close()


@pytest.fixture(scope="module")
def gpu_fp32():
    from pointpillars_trt.detector import Detector

    det = Detector.from_checkpoint(None, backend="gpu", precision="fp32")
    yield det
    det.close()


def with_bad_rows(pts: np.ndarray, seed: int = 0) -> np.ndarray:
    """``pts`` with 37 rows holding NaN or inf in some column, spread through the cloud."""
    bad = pts.copy()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(bad), 37, replace=False)
    bad[rows, rng.integers(0, 4, 37)] = rng.choice([np.nan, np.inf, -np.inf], 37)
    return bad


def test_nonfinite_rows_are_counted_on_the_gpu(torch_cuda, gpu_fp32, real_frames):
    """The device executor checks NaN/inf rows on the GPU instead of the host: ``error`` still
    raises naming the frame and the first bad row; ``drop`` gives what the host path gives for
    the cloud without those rows, with the same point count."""
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.errors import PointCloudError

    assert gpu_fp32.executor.checks_points
    bad = with_bad_rows(real_frames[0])
    first = int(np.flatnonzero(~np.isfinite(bad).all(axis=1))[0])
    with pytest.raises(PointCloudError, match=f"frame.bin: 37 of {len(bad)} rows hold NaN/inf values \\(first bad row index {first}\\)"):
        gpu_fp32.detect(bad, source="frame.bin")
    with pytest.raises(PointCloudError, match="frame.bin"):  # a bad cloud in a batch: no result at all
        gpu_fp32.detect_batch([real_frames[1], bad], sources=["ok.bin", "frame.bin"])
    drop = Detector.from_checkpoint(None, backend="gpu", precision="fp32", nonfinite="drop")
    got = drop.detect(bad)
    want = gpu_fp32.detect(bad[np.isfinite(bad).all(axis=1)])
    assert got.num_points == want.num_points == len(bad) - 37
    np.testing.assert_array_equal(got.boxes, want.boxes)
    np.testing.assert_array_equal(got.scores, want.scores)
    with pytest.warns(Warning, match="no point lies inside"):  # every row bad: an empty result
        empty = drop.detect(np.full((100, 4), np.nan, np.float32))
    assert len(empty) == 0 and empty.num_points == 0
    drop.close()


def test_intensity_range_is_checked_on_the_gpu(torch_cuda, gpu_fp32, real_frames):
    from pointpillars_trt.errors import IntensityRangeWarning

    scaled = real_frames[2].copy()
    scaled[:, 3] *= 255.0
    gpu_fp32._intensity._last = -float("inf")  # outside the rate limit's quiet period
    with pytest.warns(IntensityRangeWarning, match="intensity_scale=1/255"):
        gpu_fp32.detect(scaled, source="scaled.bin")
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntensityRangeWarning)
        gpu_fp32._intensity._last = -float("inf")
        gpu_fp32.detect(real_frames[2])  # in range: no warning


def test_cudnn_autotuned_sets_the_flags_inside_and_restores_them():
    import torch

    from pointpillars_trt.executors.device import cudnn_autotuned

    cud = torch.backends.cudnn
    before = cud.benchmark
    try:
        cud.benchmark = False
        with cudnn_autotuned(False):
            assert cud.benchmark is False
        with cudnn_autotuned(True):
            assert cud.benchmark is True
        assert cud.benchmark is False
        with pytest.raises(RuntimeError), cudnn_autotuned(True):
            raise RuntimeError("a failed capture")
        assert cud.benchmark is False
    finally:
        cud.benchmark = before
