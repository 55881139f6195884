"""Shared fixtures: the real KITTI frames in ../shared (tests skip when it is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import KITTI, REPO, kitti_frame_paths


@pytest.fixture(scope="session")
def kitti_frames():
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
