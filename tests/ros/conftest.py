"""Fixtures of the ROS tests: real KITTI frames, a native checkpoint, the in-process reference detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FRAMES_DIR = REPO.parent / "shared" / "data" / "kitti_frames" / "cuda_pointpillars" / "velodyne_reduced"
SCORE_THRESHOLD = 0.3  # random weights: a handful of boxes per KITTI frame above this
NUM_FRAMES = 2


def write_test_checkpoint(path: Path) -> Path | None:
    """A native checkpoint with random weights (seed 0); None when the package cannot write one
    (the node and the reference then both use ``Detector.from_checkpoint(None)``)."""
    from pointpillars_trt.config import load_config

    cfg = load_config()
    try:
        from pointpillars_trt.checkpoint import write_checkpoint
    except ImportError:
        write_checkpoint = None
    if write_checkpoint is not None:
        return write_checkpoint(path, "native", cfg, seed=0)
    try:
        import torch

        from pointpillars_trt.checkpoint import save_native
        from pointpillars_trt.model import build_model
    except ImportError:
        return None
    torch.manual_seed(0)
    return save_native(path, build_model(cfg).state_dict(), cfg)


@pytest.fixture(scope="session")
def frame_paths() -> list[Path]:
    paths = sorted(FRAMES_DIR.glob("*.bin"))
    if len(paths) < NUM_FRAMES:
        pytest.skip(f"real KITTI frames not found under {FRAMES_DIR}")
    return paths[:NUM_FRAMES]


@pytest.fixture(scope="session")
def frames(frame_paths) -> list[np.ndarray]:
    return [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in frame_paths]


@pytest.fixture(scope="session")
def ros_ckpt(tmp_path_factory) -> Path | None:
    return write_test_checkpoint(tmp_path_factory.mktemp("ckpt") / "random_native.safetensors")


@pytest.fixture(scope="session")
def ros_detector(ros_ckpt):
    from pointpillars_trt.detector import Detector

    return Detector.from_checkpoint(ros_ckpt)


@pytest.fixture(scope="session")
def expected(ros_detector, frames):
    """``Detector.detect`` on each frame in this process, at :data:`SCORE_THRESHOLD`."""
    return [ros_detector.detect(p, score_threshold=SCORE_THRESHOLD) for p in frames]


def assert_boxes_close(got: np.ndarray, want: np.ndarray, atol: float = 1e-5) -> None:
    """Boxes [N, 7] equal up to ``atol``, the yaw modulo 2 pi (a quaternion does not keep the turn)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got[:, :6], want[:, :6], rtol=1e-6, atol=atol)
    dyaw = (got[:, 6] - want[:, 6] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(dyaw, 0.0, atol=atol)
