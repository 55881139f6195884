"""Write synthetic frames as KITTI object-detection files.

Per frame ``XXXXXX`` under ``<root>/training``:

* ``velodyne/XXXXXX.bin``: the full 360-degree cloud, float32 ``[N, 4]``;
* ``velodyne_reduced/XXXXXX.bin``: the points that project into the camera image (OpenPCDet's
  ``get_fov_flag``, as the real ``velodyne_reduced``);
* ``calib/XXXXXX.txt``: one fixed, real KITTI calibration (``KITTI_CALIB``);
* ``label_2/XXXXXX.txt``: objects that appear in the image, in KITTI's label format (2 decimals);
* ``image_2/XXXXXX.png``: a flat grey placeholder of KITTI's image size (no camera is simulated;
  the file exists because KITTI tools read the image size from it).

Label fields: the 3D box in the rect camera frame; ``truncated`` is the fraction of the 3D box
(sampled on a 6x6x6 grid including its corners) that is behind the camera or projects outside
the image; ``occluded`` is 0/1/2 from the fraction of the object's LiDAR rays blocked by nearer
geometry (< 0.2, < 0.7, otherwise); the 2D box is the extent of the projected box clipped to the
image. Objects with no sampled box point in the image get no line (they stay in the cloud). An
object in the image without any LiDAR return inside its (rounded) box is written as
``DontCare`` with its 2D box, as KITTI does for regions it does not label.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..io.kitti import (
    Calibration,
    KittiObject,
    boxes_camera_to_lidar,
    boxes_lidar_to_camera,
    crop_to_fov,
    write_label,
)
from .frame import SyntheticFrame, points_in_boxes

#: KITTI's left colour image size ``(height, width)``.
IMAGE_SHAPE = (375, 1242)

#: Occlusion levels: ``occluded`` is the number of these thresholds the blocked fraction reaches.
OCCLUSION_THRESHOLDS = (0.2, 0.7)

# The calibration of KITTI object frame 000134 (data, written into every synthetic frame).
_P2 = (
    7.070493e02, 0.0, 6.040814e02, 4.575831e01,
    0.0, 7.070493e02, 1.805066e02, -3.454157e-01,
    0.0, 0.0, 1.0, 4.981016e-03,
)
_R0_RECT = (
    9.999128e-01, 1.009263e-02, -8.511932e-03,
    -1.012729e-02, 9.999406e-01, -4.037671e-03,
    8.470675e-03, 4.123522e-03, 9.999556e-01,
)
_TR_VELO_TO_CAM = (
    6.927964e-03, -9.999722e-01, -2.757829e-03, -2.457729e-02,
    -1.162982e-03, 2.749836e-03, -9.999955e-01, -6.127237e-02,
    9.999753e-01, 6.931141e-03, -1.143899e-03, -3.321029e-01,
)


# The calibration of KITTI object frame 000002 (drive of 2011-09-26; generator v2: no hold-out frame's data).
_P2_000002 = (
    7.215377e02, 0.0, 6.095593e02, 4.485728e01,
    0.0, 7.215377e02, 1.728540e02, 2.163791e-01,
    0.0, 0.0, 1.0, 2.745884e-03,
)
_R0_RECT_000002 = (
    9.999239e-01, 9.837760e-03, -7.445048e-03,
    -9.869795e-03, 9.999421e-01, -4.278459e-03,
    7.402527e-03, 4.351614e-03, 9.999631e-01,
)
_TR_VELO_TO_CAM_000002 = (
    7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03,
    1.480249e-02, 7.280733e-04, -9.998902e-01, -7.631618e-02,
    9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01,
)


def _calibration(p2, r0_rect, tr_velo_to_cam) -> Calibration:
    return Calibration(
        P2=np.array(p2).reshape(3, 4), R0_rect=np.array(r0_rect).reshape(3, 3), Tr_velo_to_cam=np.array(tr_velo_to_cam).reshape(3, 4)
    )


def kitti_calibration_000002() -> Calibration:
    """The calibration generator v2 writes into every frame (KITTI frame 000002's, not a hold-out)."""
    return _calibration(_P2_000002, _R0_RECT_000002, _TR_VELO_TO_CAM_000002)


def kitti_calibration() -> Calibration:
    """The fixed calibration every generator v1 frame uses (KITTI frame 000134's)."""
    return _calibration(_P2, _R0_RECT, _TR_VELO_TO_CAM)


def occlusion_level(blocked_fraction: np.ndarray) -> np.ndarray:
    """``[K]`` float blocked fraction -> ``[K]`` int KITTI occlusion level 0, 1 or 2."""
    f = np.asarray(blocked_fraction, dtype=np.float64)
    return sum((f >= t).astype(np.int64) for t in OCCLUSION_THRESHOLDS)


def _box_samples(boxes: np.ndarray, n: int = 6) -> np.ndarray:
    """``[K, n^3, 3]`` LiDAR points on an ``n x n x n`` grid spanning each box (corners included)."""
    g = np.linspace(-0.5, 0.5, n)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    local = grid[None] * boxes[:, None, 3:6]
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, 0:3]


def image_extent(
    boxes_lidar: np.ndarray, calib: Calibration, image_shape: tuple[int, int] = IMAGE_SHAPE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where LiDAR boxes ``[K, 7]`` fall in the image.

    Returns ``(in_view [K] bool, truncation [K] float, bbox [K, 4] float)``: ``in_view`` if any
    sample of the box projects inside the image in front of the camera; ``truncation`` the
    fraction of samples that do not; ``bbox`` ``(x1, y1, x2, y2)`` the extent of the samples in
    front of the camera, clipped to ``[0, W-1] x [0, H-1]`` (zeros where not in view).
    """
    k = len(boxes_lidar)
    if k == 0:
        return np.zeros(0, bool), np.zeros(0), np.zeros((0, 4))
    samples = _box_samples(np.asarray(boxes_lidar, dtype=np.float64))
    m = samples.shape[1]
    uv, depth = calib.rect_to_image(calib.lidar_to_rect(samples.reshape(-1, 3)))
    uv, depth = uv.reshape(k, m, 2), depth.reshape(k, m)
    h, w = image_shape
    front = depth > 0.1
    with np.errstate(invalid="ignore"):
        inside = front & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    in_view = inside.any(axis=1)
    truncation = 1.0 - inside.mean(axis=1)
    big = np.where(front[..., None], uv, np.nan)
    bbox = np.zeros((k, 4))
    if in_view.any():
        with np.errstate(invalid="ignore"):
            lo = np.nanmin(big[in_view], axis=1)
            hi = np.nanmax(big[in_view], axis=1)
        bbox[in_view] = np.concatenate([lo, hi], axis=1)
        bbox[:, [0, 2]] = np.clip(bbox[:, [0, 2]], 0, w - 1)
        bbox[:, [1, 3]] = np.clip(bbox[:, [1, 3]], 0, h - 1)
    return in_view, truncation, bbox


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def frame_objects(
    frame: SyntheticFrame, calib: Calibration, image_shape: tuple[int, int] = IMAGE_SHAPE
) -> list[KittiObject]:
    """The frame's label: its objects in the camera view as :class:`KittiObject` (values rounded to
    2 decimals as written), ``DontCare`` last. See the module docstring for the field definitions."""
    boxes = np.asarray(frame.boxes, dtype=np.float64).reshape(-1, 7)
    in_view, trunc, bbox = image_extent(boxes, calib, image_shape)
    occ = occlusion_level(frame.occluded_fraction)
    cam = np.round(boxes_lidar_to_camera(boxes, calib), 2)
    cam[:, 6] = np.round(_wrap(cam[:, 6]), 2)
    alpha = np.round(_wrap(-np.arctan2(-boxes[:, 1], boxes[:, 0]) + cam[:, 6]), 2)
    rounded_lidar = boxes_camera_to_lidar(cam, calib)
    bbox = np.round(bbox, 2)
    objects, dontcare = [], []
    for i in np.flatnonzero(in_view):
        mine = frame.points[frame.point_object == i]
        n_in = int(points_in_boxes(mine, rounded_lidar[i : i + 1]).sum()) if len(mine) else 0
        if n_in == 0:
            dontcare.append(
                KittiObject("DontCare", -1, -1, -10, bbox[i], (-1, -1, -1), (-1000, -1000, -1000), -10)
            )
            continue
        objects.append(
            KittiObject(
                type=frame.names[i],
                truncated=round(float(trunc[i]), 2),
                occluded=int(occ[i]),
                alpha=float(alpha[i]),
                bbox=bbox[i],
                dimensions=(cam[i, 4], cam[i, 5], cam[i, 3]),
                location=cam[i, 0:3],
                rotation_y=float(cam[i, 6]),
            )
        )
    return objects + dontcare


def _png_gray(path: Path, height: int, width: int, value: int = 128) -> None:
    """Write a flat 8-bit grey PNG (stdlib only)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = (b"\x00" + bytes([value]) * width) * height
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


SUBDIRS = ("velodyne", "velodyne_reduced", "calib", "label_2", "image_2")


def make_layout(root: str | Path, split: str = "training") -> Path:
    """Create ``<root>/<split>/{velodyne,velodyne_reduced,calib,label_2,image_2}`` and ``ImageSets``."""
    root = Path(root)
    for sub in SUBDIRS:
        (root / split / sub).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    return root / split


def write_frame(
    root: str | Path,
    frame_id: str,
    frame: SyntheticFrame,
    calib: Calibration | None = None,
    split: str = "training",
    image_shape: tuple[int, int] = IMAGE_SHAPE,
) -> list[KittiObject]:
    """Write one frame's files under ``<root>/<split>`` (see the module docstring); returns its
    label objects. The directories must exist (:func:`make_layout`)."""
    calib = calib or kitti_calibration()
    base = Path(root) / split
    points = np.ascontiguousarray(frame.points, dtype=np.float32)
    (base / "velodyne" / f"{frame_id}.bin").write_bytes(points.tobytes())
    reduced = np.ascontiguousarray(crop_to_fov(points, calib, image_shape), dtype=np.float32)
    (base / "velodyne_reduced" / f"{frame_id}.bin").write_bytes(reduced.tobytes())
    calib.write(base / "calib" / f"{frame_id}.txt")
    objects = frame_objects(frame, calib, image_shape)
    write_label(base / "label_2" / f"{frame_id}.txt", objects, decimals=2)
    _png_gray(base / "image_2" / f"{frame_id}.png", image_shape[0], image_shape[1])
    return objects


__all__ = [
    "IMAGE_SHAPE",
    "OCCLUSION_THRESHOLDS",
    "SUBDIRS",
    "frame_objects",
    "image_extent",
    "kitti_calibration",
    "kitti_calibration_000002",
    "make_layout",
    "occlusion_level",
    "write_frame",
]
