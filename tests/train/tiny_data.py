"""A tiny KITTI-layout dataset written by the tests: box-shaped point clusters on a flat ground."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointpillars_trt.config import PointPillarsConfig
from pointpillars_trt.io.kitti import Calibration, KittiObject, boxes_lidar_to_camera, project_boxes_to_image, write_label

IMAGE_SHAPE = (375, 1242)
GROUND_Z = -1.73

TINY_CONFIG = {
    "name": "tiny_test",
    "classes": ["Car", "Pedestrian"],
    "voxel": {
        "point_cloud_range": [0.0, -9.6, -3.0, 19.2, 9.6, 1.0],
        "voxel_size": [0.3, 0.3, 4.0],
        "max_points_per_pillar": 16,
        "max_pillars": 6000,
        "max_pillars_train": 6000,
    },
    "network": {
        "pfn_channels": 32,
        "backbone": {
            "layer_nums": [1, 1, 1],
            "layer_strides": [2, 2, 2],
            "num_filters": [32, 32, 64],
            "upsample_strides": [1, 2, 4],
            "num_upsample_filters": [32, 32, 32],
        },
    },
    "anchors": [
        {"class": "Car", "sizes": [[3.9, 1.6, 1.56]], "rotations": [0.0, 1.57], "bottom_height": -1.78,
         "matched_threshold": 0.6, "unmatched_threshold": 0.45},
        {"class": "Pedestrian", "sizes": [[0.8, 0.6, 1.73]], "rotations": [0.0, 1.57], "bottom_height": -0.6,
         "matched_threshold": 0.5, "unmatched_threshold": 0.35},
    ],
}


def tiny_config() -> PointPillarsConfig:
    return PointPillarsConfig.from_dict(TINY_CONFIG)


def calibration() -> Calibration:
    """LiDAR -> camera: cam x = -y, cam y = -z, cam z = x (camera at the LiDAR origin)."""
    tr = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    p2 = np.array([[700.0, 0.0, 621.0, 0.0], [0.0, 700.0, 187.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    return Calibration(P2=p2, R0_rect=np.eye(3), Tr_velo_to_cam=tr)


def box_points(box: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points on the surface of a canonical box (all six faces), intensity 0.5."""
    x, y, z, l, w, h, yaw = box
    local = rng.uniform(-0.5, 0.5, size=(n, 3)) * np.array([l, w, h])
    face = rng.integers(0, 3, size=n)
    sign = rng.choice([-0.5, 0.5], size=n)
    dims = np.array([l, w, h])
    local[np.arange(n), face] = sign * dims[face] * 0.98
    c, s = np.cos(yaw), np.sin(yaw)
    px = x + local[:, 0] * c - local[:, 1] * s
    py = y + local[:, 0] * s + local[:, 1] * c
    pz = z + local[:, 2]
    return np.stack([px, py, pz, np.full(n, 0.5)], axis=1).astype(np.float32)


def ground_points(n: int, rng: np.random.Generator, extent=(1.0, 19.0, -9.5, 9.5)) -> np.ndarray:
    xy = rng.uniform([extent[0], extent[2]], [extent[1], extent[3]], size=(n, 2))
    z = GROUND_Z + rng.normal(0, 0.02, size=n)
    return np.column_stack([xy, z, rng.uniform(0, 0.2, n)]).astype(np.float32)


def frame(boxes: np.ndarray, seed: int, per_box: int = 300, ground: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = [ground_points(ground, rng)] + [box_points(b, per_box, rng) for b in boxes]
    return np.concatenate(pts)


def write_dataset(root: Path, frames: list[tuple[np.ndarray, list[str]]], val: int = 0, seed: int = 0) -> Path:
    """Write ``frames`` (canonical boxes, names) as a KITTI-layout dataset; the last ``val`` frames
    form ``ImageSets/val.txt``. Returns ``root``."""
    base = root / "training"
    for d in ("velodyne_reduced", "label_2", "calib"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    calib = calibration()
    ids = []
    for i, (boxes, names) in enumerate(frames):
        fid = f"{i:06d}"
        ids.append(fid)
        frame(boxes, seed + i).tofile(base / "velodyne_reduced" / f"{fid}.bin")
        calib.write(base / "calib" / f"{fid}.txt")
        cam = boxes_lidar_to_camera(boxes, calib)
        bbox = project_boxes_to_image(boxes, calib, IMAGE_SHAPE)
        objs = [
            KittiObject(n, 0.0, 0, 0.0, bbox[k], (cam[k, 4], cam[k, 5], cam[k, 3]), cam[k, :3], cam[k, 6])
            for k, n in enumerate(names)
        ]
        write_label(base / "label_2" / f"{fid}.txt", objs)
    n_train = len(ids) - val
    (root / "ImageSets" / "train.txt").write_text("".join(f + "\n" for f in ids[:n_train]))
    (root / "ImageSets" / "val.txt").write_text("".join(f + "\n" for f in (ids[n_train:] or ids[:1])))
    return root


def scene_boxes() -> list[tuple[np.ndarray, list[str]]]:
    """Two frames with cars and pedestrians inside the tiny config's range."""
    f0 = np.array(
        [[10.0, 3.0, -0.95, 4.0, 1.7, 1.6, 0.3], [15.0, -5.0, -0.95, 4.2, 1.8, 1.5, -1.2], [8.0, -3.0, -0.87, 0.7, 0.6, 1.75, 0.5]],
        dtype=np.float32,
    )
    f1 = np.array(
        [[14.0, 6.0, -0.95, 3.8, 1.6, 1.55, 2.8], [7.0, 1.0, -0.95, 4.0, 1.7, 1.6, 1.57], [12.0, -6.0, -0.87, 0.8, 0.6, 1.7, -2.0]],
        dtype=np.float32,
    )
    return [(f0, ["Car", "Car", "Pedestrian"]), (f1, ["Car", "Car", "Pedestrian"])]
