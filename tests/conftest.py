"""Shared fixtures: the real KITTI frames in ../shared (tests skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KITTI = SHARED / "data" / "kitti_frames"


def kitti_frame_paths() -> list[Path]:
    """Every real LiDAR frame in ../shared (10 CUDA-PointPillars frames + 2 zhulf0804 frames)."""
    return sorted(KITTI.glob("*/velodyne_reduced/*.bin"))


@pytest.fixture(scope="session")
def kitti_frames() -> list[Path]:
    paths = kitti_frame_paths()
    if not paths:
        pytest.skip(f"real KITTI frames not found under {KITTI}")
    return paths


@pytest.fixture(scope="session")
def kitti_points(kitti_frames) -> np.ndarray:
    return np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)


@pytest.fixture(scope="session")
def kitti_config():
    from pointpillars_trt.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def example_config():
    """A non-KITTI config: 360-degree range, other voxel size, 2 classes, class-aware NMS."""
    from pointpillars_trt.config import load_config

    return load_config(REPO / "configs" / "example_360_2class.yaml")


def random_cloud(cfg, n: int, seed: int = 0, margin: float = 0.0) -> np.ndarray:
    """``n`` uniform points inside ``cfg``'s point-cloud range (float32 [n, 4])."""
    r = cfg.voxel.point_cloud_range
    rng = np.random.default_rng(seed)
    lo = np.array(r[:3]) - margin
    hi = np.array(r[3:]) + margin
    xyz = rng.uniform(lo, hi, size=(n, 3))
    return np.concatenate([xyz, rng.uniform(0, 1, (n, 1))], axis=1).astype(np.float32)
