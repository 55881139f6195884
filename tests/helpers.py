"""Paths and small data makers shared by the tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KITTI = SHARED / "data" / "kitti_frames"


def kitti_frame_paths() -> list[Path]:
    """Every real LiDAR frame in ../shared (10 CUDA-PointPillars frames + 2 zhulf0804 frames)."""
    return sorted(KITTI.glob("*/velodyne_reduced/*.bin"))


def random_cloud(cfg, n: int, seed: int = 0, margin: float = 0.0) -> np.ndarray:
    """``n`` uniform points inside ``cfg``'s point-cloud range (float32 [n, 4])."""
    r = cfg.voxel.point_cloud_range
    rng = np.random.default_rng(seed)
    lo = np.array(r[:3]) - margin
    hi = np.array(r[3:]) + margin
    xyz = rng.uniform(lo, hi, size=(n, 3))
    return np.concatenate([xyz, rng.uniform(0, 1, (n, 1))], axis=1).astype(np.float32)
