"""Calibration frames for the INT8 export: the user's point clouds, through our own voxelizer.

:class:`CalibrationFrames` is a list of named point clouds loaded on demand (a folder of point files,
a KITTI split, or frames of our synthetic generator); :class:`CalibrationReader` feeds them, one
frame at a time, to ONNX Runtime's calibrators as the ``features``, ``num_points``, ``coords`` the
backends feed (``pointpillars_trt.voxelize``), so no more than a frame's tensors are held at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..config import PointPillarsConfig
from ..errors import ConfigError, DatasetError

#: how many frames ``--calib`` uses at most unless told (spread evenly over what is there)
DEFAULT_MAX_FRAMES = 64


@dataclass(frozen=True)
class CalibrationFrames:
    """``names[i]`` (recorded in the graphs' metadata) and ``load(i)`` -> float32 ``[N, 4]`` points
    (x, y, z, intensity in the config's range); ``source`` says where they came from."""

    source: str
    names: tuple[str, ...]
    load: Callable[[int], np.ndarray]

    def __len__(self) -> int:
        return len(self.names)


def spread(count: int, limit: int | None) -> list[int]:
    """``limit`` indices of ``range(count)`` spread evenly (first and last included); all if fewer."""
    if limit is not None and limit < 1:
        raise ConfigError(f"the number of calibration frames must be >= 1, got {limit}")
    if limit is None or count <= limit:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, limit)})


def _is_kitti_root(path: Path) -> bool:
    return (path / "ImageSets").is_dir() and (path / "training").is_dir()


def point_file_frames(folder: str | Path, limit: int | None = DEFAULT_MAX_FRAMES) -> CalibrationFrames:
    """The point files (``.bin``, ``.npy``, ``.pcd``, ``.ply``) directly in ``folder``, sorted by name."""
    from ..io.pointcloud import SUPPORTED_SUFFIXES, load_points

    d = Path(folder)
    if not d.is_dir():
        raise DatasetError(f"{d}: calibration folder not found")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"{d}: holds no point files ({', '.join(SUPPORTED_SUFFIXES)}) for calibration")
    files = [files[i] for i in spread(len(files), limit)]
    return CalibrationFrames(f"point files in {d}", tuple(p.name for p in files), lambda i: load_points(files[i]))


def kitti_frames(root: str | Path, split: str = "train", limit: int | None = DEFAULT_MAX_FRAMES) -> CalibrationFrames:
    """Frames of ``ROOT/ImageSets/<split>.txt``, cropped to the camera view as the KITTI evaluation
    feeds them (``velodyne_reduced`` if present, else ``velodyne`` cropped with calib and image)."""
    from ..eval.dataset import load_frame_points, open_split
    from ..io.pointcloud import load_points

    kitti = open_split(root, split, require=())
    if not kitti.frame_ids:
        raise DatasetError(f"{root}: split {split!r} lists no frames")
    ids = [kitti.frame_ids[i] for i in spread(len(kitti.frame_ids), limit)]
    return CalibrationFrames(f"KITTI split {split!r} of {Path(root)}", tuple(ids),
                             lambda i: load_frame_points(kitti, ids[i], True, load_points))


def calibration_frames(path: str | Path, split: str = "train", limit: int | None = DEFAULT_MAX_FRAMES) -> CalibrationFrames:
    """``path`` as a KITTI root (it holds ``ImageSets/`` and ``training/``: :func:`kitti_frames` of
    ``split``) or as a folder of point files (:func:`point_file_frames`)."""
    p = Path(path)
    return kitti_frames(p, split, limit) if _is_kitti_root(p) else point_file_frames(p, limit)


def synthetic_frames(count: int, seed: int = 0, first: int = 0, version: str | None = None) -> CalibrationFrames:
    """Frames ``first .. first + count - 1`` of our synthetic generator's dataset ``seed``, made by
    generator ``version`` (default: ``GENERATOR_VERSION``, the generator of the shipped demo model's data)."""
    from ..synthetic import GENERATOR_VERSION, generator_settings

    if count < 1:
        raise ConfigError(f"--calib-synthetic needs at least 1 frame, got {count}")
    settings = generator_settings(version or GENERATOR_VERSION)
    indices = list(range(first, first + count))

    def load(i: int) -> np.ndarray:
        frame = settings.frame(seed, indices[i])
        return np.ascontiguousarray(frame.points, np.float32)

    names = tuple(f"{i:06d}" for i in indices)
    return CalibrationFrames(f"synthetic generator v{settings.version}, seed {seed}", names, load)


def frame_feeds(cfg: PointPillarsConfig, points: np.ndarray, voxelizer: Callable | None = None) -> dict[str, np.ndarray]:
    """``features [P, M, 10]`` float32, ``num_points [P]`` int32, ``coords [P, 2]`` int32 of one
    cloud, from our CPU voxelizer (the inputs of ``pfn.onnx`` / ``full.onnx``)."""
    from ..io.pointcloud import validate_points
    from ..voxelize import make_voxelizer

    vox = voxelizer or make_voxelizer(cfg.voxel)
    pillars = vox(validate_points(points))
    return {"features": pillars.features, "num_points": pillars.num_points, "coords": pillars.coords}


class CalibrationReader:
    """An ONNX Runtime ``CalibrationDataReader`` over :class:`CalibrationFrames`: ``get_next()``
    voxelizes the next frame of the current range; ``__len__`` and ``set_range`` let the calibrator
    take the frames a few at a time (``CalibStridedMinMax``). ``inputs``: the graph's input names
    (a subset of ``features``, ``num_points``, ``coords``)."""

    def __init__(self, cfg: PointPillarsConfig, frames: CalibrationFrames, inputs: Sequence[str]) -> None:
        from ..voxelize import make_voxelizer

        self.cfg, self.frames, self.inputs = cfg, frames, tuple(inputs)
        self._voxelizer = make_voxelizer(cfg.voxel)
        self._next, self._end = 0, len(frames)

    def __len__(self) -> int:
        return len(self.frames)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = int(start_index), min(int(end_index), len(self.frames))

    def rewind(self) -> None:
        self.set_range(0, len(self.frames))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        feeds = frame_feeds(self.cfg, self.frames.load(self._next), self._voxelizer)
        self._next += 1
        return {k: feeds[k] for k in self.inputs}
