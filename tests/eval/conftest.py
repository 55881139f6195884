"""A small KITTI-layout dataset built by the tests (ground truth, calib, images, points, val split)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from pointpillars_trt.io.kitti import Calibration, KittiObject, detections_to_kitti_objects, read_label, write_label

IMAGE_SHAPE = (375, 1242)


def png_bytes(height: int, width: int) -> bytes:
    """A valid grey PNG (only its header matters to the code under test)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = (b"\x00" + b"\x80" * width) * height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def layout_calibration() -> Calibration:
    """A KITTI-like camera looking along LiDAR +x from 0.3 m behind and 0.08 m below the LiDAR."""
    p2 = np.array([[720.0, 0, 620.0, 45.0], [0, 720.0, 180.0, -0.3], [0, 0, 1.0, 0.005]])
    velo_to_cam = np.array([[0, -1.0, 0, 0.0], [0, 0, -1.0, -0.08], [1.0, 0, 0, -0.3]])
    return Calibration(P2=p2, R0_rect=np.eye(3), Tr_velo_to_cam=velo_to_cam)


@dataclass
class KittiLayout:
    root: Path
    frame_ids: list[str]
    calib: Calibration
    boxes: dict[str, np.ndarray]  # frame id -> canonical LiDAR boxes [K, 7]
    names: dict[str, list[str]]
    gt: dict[str, list[KittiObject]]

    def write_predictions(self, directory: Path, frame_ids=None, score: float = 0.9) -> Path:
        """Perfect predictions (the ground truth with scores) as KITTI result files."""
        directory.mkdir(parents=True, exist_ok=True)
        for k, fid in enumerate(frame_ids if frame_ids is not None else self.frame_ids):
            objects = [replace(o, score=score - 0.001 * k, truncated=0.0, occluded=0) for o in self.gt[fid] if o.type != "DontCare"]
            write_label(directory / f"{fid}.txt", objects)
        return directory


def build_layout(root: Path, n_frames: int = 45, seed: int = 0) -> KittiLayout:
    """``n_frames`` frames, each with one easy Car, Pedestrian and Cyclist, a DontCare region,
    ``200 + i`` LiDAR points in ``velodyne_reduced`` (frame ``i``), and ``ImageSets/val.txt``."""
    rng = np.random.default_rng(seed)
    calib = layout_calibration()
    training = root / "training"
    for folder in ("label_2", "calib", "image_2", "velodyne_reduced"):
        (training / folder).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    png = png_bytes(*IMAGE_SHAPE)
    ids, boxes_by_id, names_by_id = [], {}, {}
    names = ["Car", "Pedestrian", "Cyclist"]
    for i in range(n_frames):
        fid = f"{i:06d}"
        boxes = np.array(
            [
                [rng.uniform(12, 25), rng.uniform(-4, -2), -0.9, 3.9, 1.6, 1.56, rng.uniform(-3, 3)],
                [rng.uniform(8, 14), rng.uniform(1, 2), -0.8, 0.8, 0.6, 1.73, rng.uniform(-3, 3)],
                [rng.uniform(15, 20), rng.uniform(4, 5), -0.8, 1.76, 0.6, 1.73, rng.uniform(-3, 3)],
            ]
        )
        objects = detections_to_kitti_objects(boxes, names, np.ones(3), calib, IMAGE_SHAPE)
        objects = [replace(o, score=None) for o in objects]
        objects.append(KittiObject("DontCare", -1, -1, -10, (1100, 150, 1180, 190), (-1, -1, -1), (-1000, -1000, -1000), -10))
        write_label(training / "label_2" / f"{fid}.txt", objects, decimals=2)
        calib.write(training / "calib" / f"{fid}.txt")
        (training / "image_2" / f"{fid}.png").write_bytes(png)
        points = np.column_stack([rng.uniform(5, 40, 200 + i), rng.uniform(-10, 10, 200 + i), rng.uniform(-1.5, 0.5, 200 + i),
                                  rng.uniform(0, 1, 200 + i)]).astype(np.float32)  # fmt: skip
        points.tofile(training / "velodyne_reduced" / f"{fid}.bin")
        ids.append(fid)
        boxes_by_id[fid] = boxes
        names_by_id[fid] = names
    (root / "ImageSets" / "val.txt").write_text("".join(f"{fid}\n" for fid in ids))
    gt = {fid: read_label(training / "label_2" / f"{fid}.txt") for fid in ids}
    return KittiLayout(root, ids, calib, boxes_by_id, names_by_id, gt)


@pytest.fixture
def kitti_layout(tmp_path) -> KittiLayout:
    return build_layout(tmp_path / "kitti")
