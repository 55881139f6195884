"""Optional per-frame label files beside the Parquet output: ``DIR/<frame>.txt``, KITTI result
lines (camera frame, 4 decimals, as ``tools/infer.py --out DIR``) with a calibration, else the
LiDAR-frame ``class x y z dx dy dz yaw score`` lines of ``tools/infer_bag.py --kitti-dir``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from ..io.atomic import atomic_write_text, check_writable
from .tasks import BagTask, PointsTask


def frame_names(tasks: Iterable[PointsTask | BagTask]) -> Iterable[tuple[str, str]]:
    """``(frame, source)`` of every frame the tasks hold."""
    for task in tasks:
        if isinstance(task, BagTask):
            yield from ((f"{i:06d}", task.path) for i in range(task.first, task.first + task.count))
        else:
            yield from ((it.frame, it.source) for it in task.items)


def check_unique_names(tasks: Sequence[PointsTask | BagTask]) -> None:
    """ConfigError when two sources hold a frame of the same name (their label files would clash)."""
    seen: dict[str, str] = {}
    for frame, source in frame_names(tasks):
        other = seen.setdefault(frame, source)
        if other != source:
            raise ConfigError(f"frame {frame} of {source} and of {other} would both write {frame}.txt: "
                              "give the label directory inputs with distinct frame names")


class LabelWriter:
    """Writes each result row's label file into ``out_dir``; ``calib``: a KITTI calib file, or a
    directory of ``<frame>.txt`` (None: LiDAR-frame lines); ``image_shape``: clip 2D boxes."""

    def __init__(self, out_dir: str | Path, calib: str | Path | None = None, image_shape: tuple[int, int] | None = None) -> None:
        self.out_dir = check_writable(Path(out_dir), directory=True)
        self.calib = Path(calib) if calib is not None else None
        self.image_shape = image_shape
        self.count = 0

    def _calibration(self, frame: str):
        from ..io.kitti import Calibration

        return Calibration.from_file(self.calib / f"{frame}.txt" if self.calib.is_dir() else self.calib)

    def write_table(self, table) -> None:
        """One label file per row of a result table that ran (rows with an error get none)."""
        from ..io.kitti import detections_to_kitti_objects, lidar_box_lines, write_label

        for row in table.select(["frame", "boxes", "scores", "labels", "error"]).to_pylist():
            if row["error"] is not None:
                continue
            path = self.out_dir / f"{row['frame']}.txt"
            boxes = np.asarray(row["boxes"], np.float32).reshape(-1, 7)
            if self.calib is None:
                atomic_write_text(path, lidar_box_lines(row["labels"], boxes, row["scores"]))
            else:
                objects = detections_to_kitti_objects(boxes, row["labels"], row["scores"], self._calibration(row["frame"]), self.image_shape)
                write_label(path, objects, decimals=4)
            self.count += 1


__all__ = ["LabelWriter", "check_unique_names"]
