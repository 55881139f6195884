"""Paths and small data makers shared by the tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import socket
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


def lively_state_dict(cfg, seed=0, target_fraction=0.01):
    """Random weights whose head scores about ``target_fraction`` of the anchors above 0.1 on a
    random cloud, so that post-processing sees a realistic number of candidates."""
    import torch

    from pointpillars_trt.model import build_model

    torch.manual_seed(seed)
    model = build_model(cfg)
    pts = random_cloud(cfg, 20000, seed=seed)
    from pointpillars_trt.voxelize import make_voxelizer

    p = make_voxelizer(cfg.voxel)(pts)
    with torch.inference_mode():
        cls, _, _ = model(torch.from_numpy(p.features), torch.from_numpy(p.num_points), torch.from_numpy(p.coords))
    # shift so that the top `target_fraction` of logits (per channel) lie above logit(0.1)
    top = torch.quantile(cls[0].flatten(1), 1 - target_fraction, dim=1)
    spread = cls.std() + 1e-6
    with torch.no_grad():
        model.rpn.conv_cls.weight.div_(spread)
        model.rpn.conv_cls.bias.sub_(top).div_(spread).add_(-2.2)
    return model.state_dict()


def jittered_million(frames, n=1_000_000, seed=0):
    """~1M points: the real frames repeated with centimetre jitter (as a dense 128-beam sensor)."""
    rng = np.random.default_rng(seed)
    base = np.concatenate(frames)
    reps = -(-n // len(base))
    pts = np.concatenate([base + rng.normal(0, 0.02, base.shape).astype(np.float32) * [1, 1, 1, 0] for _ in range(reps)])
    return np.ascontiguousarray(pts[:n], dtype=np.float32)


def share_between_threads(call, num_clouds: int, rounds: int = 50, threads: int = 2):
    """Run ``call(i, r)`` from ``threads`` threads at once, ``rounds`` times each, thread ``t``
    taking cloud ``i = (3 r + t) % num_clouds``. Returns ``({(t, r): (i, result)}, errors)``: an
    exception in a thread is collected (so that it fails the test), not lost."""
    import threading

    got, errors = {}, []

    def worker(t):
        try:
            for r in range(rounds):
                i = (r * 3 + t) % num_clouds
                got[t, r] = (i, call(i, r))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return got, errors


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
