"""Inputs -> read tasks: expand the paths a user gives into :mod:`~pointpillars_trt.fleet.tasks`.

An input is a point file (``.bin .npy .pcd .ply``), a directory of them, a glob pattern
(``drives/*/velodyne/*.bin``), a KITTI dataset root (a directory with ``ImageSets/``; the frames
of one split), or a recording (a ``.bag`` / ``.mcap`` / ``.db3`` file or a rosbag2 directory with
``metadata.yaml``; needs a topic). Point frames are grouped ``frames_per_task`` to a task; a
recording with more messages than that is split into message ranges of that size (its record
times are read once, raw, to find where each range starts), so one big bag keeps many readers busy.

Frames whose key ``(source, index)`` is in ``done`` (written by an earlier run) get no task.
"""

from __future__ import annotations

import glob
import os
from bisect import bisect_left
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import AbstractSet, Iterable, Sequence

from ..errors import ConfigError
from ..io.pointcloud import SUPPORTED_SUFFIXES, load_points
from .tasks import BagTask, PointsItem, PointsTask

BAG_SUFFIXES = (".bag", ".mcap", ".db3")
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputSpec:
    """How inputs are read: ``topic`` of recordings, ``split`` of KITTI roots, ``nonfinite`` of
    point files (``error`` / ``drop``, as ``load_points``), ``intensity_scale`` of bag clouds
    (as :func:`~pointpillars_trt.ros.cloud.cloud_to_points`), ``frames_per_task``."""

    topic: str | None = None
    split: str = "val"
    nonfinite: str = "error"
    intensity_scale: float | str = 1.0
    frames_per_task: int = 64

    def __post_init__(self) -> None:
        if self.frames_per_task < 1:
            raise ConfigError(f"frames_per_task must be >= 1, got {self.frames_per_task}")


def _abs(path: Path) -> Path:
    """``path`` made absolute with ``..`` folded (symbolic links kept): the frames' ``source``."""
    return Path(os.path.abspath(path))


def _file_key(path: Path) -> tuple[str, int, str]:
    """``(source, index, frame)`` of a point file."""
    return str(_abs(path)), 0, path.stem


def is_bag(path: Path) -> bool:
    """A recording: a bag / MCAP / sqlite3 file, or a rosbag2 directory."""
    return path.suffix.lower() in BAG_SUFFIXES if path.is_file() else (path / "metadata.yaml").is_file()


def point_items(path: Path, spec: InputSpec) -> list[PointsItem]:
    """The frames of one non-bag input (see the module docstring)."""
    load = partial(load_points, nonfinite=spec.nonfinite)
    if any(c in str(path) for c in GLOB_CHARS) and not path.exists():
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).suffix.lower() in SUPPORTED_SUFFIXES)
        if not found:
            raise ConfigError(f"{path}: the pattern matches no point-cloud file ({', '.join(SUPPORTED_SUFFIXES)})")
        return [PointsItem(*_file_key(p), partial(load, _abs(p))) for p in found]
    if (path / "ImageSets").is_dir():
        return kitti_items(path, spec)
    if path.is_dir():
        found = sorted(f for f in path.iterdir() if f.suffix.lower() in SUPPORTED_SUFFIXES)
        if not found:
            raise ConfigError(f"{path}: directory holds no point-cloud file ({', '.join(SUPPORTED_SUFFIXES)}), "
                              "no ImageSets/ (KITTI) and no metadata.yaml (rosbag2)")
        return [PointsItem(*_file_key(p), partial(load, _abs(p))) for p in found]
    if not path.exists():
        raise ConfigError(f"{path}: no such file or directory")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ConfigError(f"{path}: not a point-cloud file ({', '.join(SUPPORTED_SUFFIXES)}) nor a recording "
                          f"({', '.join(BAG_SUFFIXES)}, a rosbag2 directory)")
    return [PointsItem(*_file_key(path), partial(load, _abs(path)))]


def kitti_items(root: Path, spec: InputSpec) -> list[PointsItem]:
    """The frames of KITTI split ``spec.split`` under ``root``: keyed by the split file and the
    position in it; points as the evaluation reads them (``velodyne_reduced``, else ``velodyne``
    cropped to the camera view)."""
    from ..eval.dataset import load_frame_points, open_split

    kitti = open_split(_abs(root), spec.split, require=())
    source = str(kitti.root / "ImageSets" / f"{spec.split}.txt")
    load = partial(load_points, nonfinite=spec.nonfinite)
    return [PointsItem(source, i, fid, partial(load_frame_points, kitti, fid, True, load)) for i, fid in enumerate(kitti.frame_ids)]


def bag_tasks(path: Path, spec: InputSpec, done: AbstractSet[int]) -> list[BagTask]:
    """Message-range tasks of ``spec.topic`` in the recording ``path`` (``done``: indices to skip)."""
    from ..ros.bag import CloudReader

    if not spec.topic:
        raise ConfigError(f"{path}: a recording needs a topic (--topic)")
    source, n = str(_abs(path)), spec.frames_per_task
    with CloudReader(path, spec.topic) as reader:
        times = reader.message_times() if len(reader) > n else None
        total = len(times) if times is not None else len(reader)
    tasks = []
    for first in range(0, total, n):
        count = min(n, total - first)
        todo = frozenset(i for i in done if first <= i < first + count)
        if len(todo) == count:
            continue
        start = times[first] if times is not None and first else None
        skip = first - bisect_left(times, start) if start is not None else 0
        tasks.append(BagTask(source, spec.topic, first, count, start, skip, todo, spec.intensity_scale))
    return tasks


def plan_tasks(inputs: Sequence[str | Path], spec: InputSpec, done: AbstractSet[tuple[str, int]] = frozenset()
               ) -> list[PointsTask | BagTask]:
    """The read tasks of ``inputs`` (in the order given), leaving out the frames in ``done``.

    Raises:
        ConfigError: an input that is missing, matches nothing, or is a recording without a topic;
        BagError / DatasetError: a recording or KITTI split that cannot be opened.
    """
    tasks: list[PointsTask | BagTask] = []
    items: list[PointsItem] = []
    for given in inputs:
        path = Path(given)
        if path.exists() and is_bag(path):
            source = str(_abs(path))
            tasks += bag_tasks(path, spec, {i for s, i in done if s == source})
        else:
            items += [it for it in point_items(path, spec) if (it.source, it.index) not in done]
    n = spec.frames_per_task
    tasks += [PointsTask(tuple(items[i:i + n])) for i in range(0, len(items), n)]
    return tasks


def frame_count(tasks: Iterable[PointsTask | BagTask]) -> int:
    """How many frame rows the tasks yield."""
    return sum(t.rows for t in tasks)


__all__ = ["InputSpec", "frame_count", "is_bag", "plan_tasks"]
