"""A KITTI-layout directory as training frames: points, LiDAR-frame boxes and class names.

Layout (OpenPCDet's): ``<root>/ImageSets/{train,val}.txt`` and ``<root>/training/`` with
``velodyne_reduced/`` (preferred; camera-FOV points) or ``velodyne/``, ``label_2/``, ``calib/`` and
optionally ``image_2/``. ``<root>/dataset.json`` (written by ``tools/make_synthetic.py``) is read
when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..io.kitti import Calibration, KittiObject, boxes_camera_to_lidar, kitti_objects_to_camera_boxes, read_image_shape, read_label

DIFFICULTY_MIN_HEIGHT = (40.0, 25.0, 25.0)
DIFFICULTY_MAX_OCCLUSION = (0, 1, 2)
DIFFICULTY_MAX_TRUNCATION = (0.15, 0.3, 0.5)


def object_difficulty(obj: KittiObject) -> int:
    """KITTI difficulty of a ground-truth object: 0 easy, 1 moderate, 2 hard, -1 none of them
    (OpenPCDet's ``get_difficulty``; its gt database drops ``-1``)."""
    for d in range(3):
        if (
            obj.height_px >= DIFFICULTY_MIN_HEIGHT[d]
            and obj.occluded <= DIFFICULTY_MAX_OCCLUSION[d]
            and obj.truncated <= DIFFICULTY_MAX_TRUNCATION[d]
        ):
            return d
    return -1


@dataclass(frozen=True)
class FrameAnnotations:
    """Objects of one frame other than ``DontCare``: canonical LiDAR ``boxes [N, 7]`` float32,
    ``names [N]`` (str), ``difficulty [N]`` int (see :func:`object_difficulty`), ``truncation [N]``
    float32 (the label's ``truncated``: the share of the object outside the image, 0..1)."""

    boxes: np.ndarray
    names: np.ndarray
    difficulty: np.ndarray
    truncation: np.ndarray


class KittiFrames:
    """The frames of one split of a KITTI-layout directory."""

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = Path(root)
        self.split = split
        base = self.root / "training"
        split_file = self.root / "ImageSets" / f"{split}.txt"
        if not split_file.is_file():
            raise DatasetError(f"{split_file}: split file not found (expected a KITTI-layout directory at {self.root})")
        self.ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise DatasetError(f"{split_file}: the split lists no frames")
        reduced = base / "velodyne_reduced"
        self.velodyne_dir = reduced if reduced.is_dir() else base / "velodyne"
        self.label_dir = base / "label_2"
        self.calib_dir = base / "calib"
        self.image_dir = base / "image_2"
        for d in (self.velodyne_dir, self.label_dir, self.calib_dir):
            if not d.is_dir():
                raise DatasetError(f"{d}: directory not found in the KITTI-layout dataset {self.root}")
        first = self.ids[0]
        for path in (self.velodyne_dir / f"{first}.bin", self.label_dir / f"{first}.txt", self.calib_dir / f"{first}.txt"):
            if not path.is_file():
                raise DatasetError(f"{path}: missing file for frame {first} of split {split!r}")
        self.info = read_dataset_info(self.root)

    def __len__(self) -> int:
        return len(self.ids)

    def points(self, i: int) -> np.ndarray:
        """float32 ``[N, 4]`` LiDAR points of frame ``i``."""
        path = self.velodyne_dir / f"{self.ids[i]}.bin"
        try:
            size = path.stat().st_size  # the file's bytes: np.fromfile drops a trailing partial float
            data = np.fromfile(path, dtype=np.float32)
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read points ({exc})") from exc
        if size % 16:
            raise DatasetError(f"{path}: size {size} bytes is not a multiple of 16 (x, y, z, intensity float32)")
        return data.reshape(-1, 4)

    def calib(self, i: int) -> Calibration:
        return Calibration.from_file(self.calib_dir / f"{self.ids[i]}.txt")

    def objects(self, i: int) -> list[KittiObject]:
        """Every label line of frame ``i`` (``DontCare`` included), as the evaluation wants them."""
        return read_label(self.label_dir / f"{self.ids[i]}.txt")

    def image_shape(self, i: int) -> tuple[int, int] | None:
        """``(H, W)`` of the frame's image: from ``image_2`` if present, else ``dataset.json``, else None."""
        png = self.image_dir / f"{self.ids[i]}.png"
        if png.is_file():
            return read_image_shape(png)
        shape = self.info.get("image_shape")
        return (int(shape[0]), int(shape[1])) if shape else None

    def annotations(self, i: int) -> FrameAnnotations:
        """Objects of frame ``i`` except ``DontCare``, as LiDAR boxes."""
        objs = [o for o in self.objects(i) if o.type != "DontCare"]
        if not objs:
            return FrameAnnotations(np.zeros((0, 7), np.float32), np.zeros(0, dtype="<U16"), np.zeros(0, np.int64),
                                    np.zeros(0, np.float32))
        boxes = boxes_camera_to_lidar(kitti_objects_to_camera_boxes(objs), self.calib(i)).astype(np.float32)
        names = np.array([o.type for o in objs])
        diff = np.array([object_difficulty(o) for o in objs], dtype=np.int64)
        trunc = np.clip(np.array([o.truncated for o in objs], dtype=np.float32), 0.0, 1.0)
        return FrameAnnotations(boxes, names, diff, trunc)


def read_dataset_info(root: str | Path) -> dict:
    """``<root>/dataset.json`` as a dict (empty when absent); :class:`DatasetError` when unreadable."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read dataset description ({exc})") from exc
