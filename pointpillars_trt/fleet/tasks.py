"""Read tasks: the unit of work a Ray Data read stage runs, each yielding decoded frame rows.

A task is a small picklable object with ``frames()``, an iterator of frame rows (dicts with the
keys of :data:`FRAME_KEYS`): :class:`PointsTask` for point files (a directory, a glob, a KITTI
split), :class:`BagTask` for one message range of one topic of a rosbag1 / rosbag2 / MCAP
recording. A frame that cannot be read is a row with ``points`` empty and ``error`` set, so
every frame a task owns gives exactly one row.

Frame keys: ``source`` (the point file, a KITTI split file, or the bag) and ``index`` (0 for a
point file, the position in a KITTI split, the message index of the bag's topic in record order).
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import PointPillarsError

#: the keys of a frame row, as the read stage yields them
FRAME_KEYS = ("source", "index", "frame", "record_ns", "stamp_ns", "frame_id", "points", "read_ms", "error")

NO_POINTS = np.zeros((0, 4), np.float32)


def frame_row(source: str, index: int, frame: str, points: np.ndarray = NO_POINTS, *, record_ns: int = -1,
              stamp_ns: int = -1, frame_id: str = "", read_ms: float = 0.0, error: str = "") -> dict[str, Any]:
    """One frame row: ``points`` float32 ``[N, 4]``; ``record_ns`` / ``stamp_ns`` / ``frame_id`` a
    bag message's record time, header stamp and frame (-1, -1, "" for files); ``error`` empty when
    the frame was read."""
    return {"source": source, "index": index, "frame": frame, "record_ns": record_ns, "stamp_ns": stamp_ns,
            "frame_id": frame_id, "points": points, "read_ms": read_ms, "error": error}


def _error_text(source: str, exc: Exception) -> str:
    """``exc`` as one line that names ``source``."""
    text = str(exc) if isinstance(exc, PointPillarsError) else f"unexpected {type(exc).__name__}: {exc}"
    return text if source in text else f"{source}: {text}"


@dataclass(frozen=True)
class PointsItem:
    """One frame of a point file: its key, its name (file stem or KITTI frame id), its loader."""

    source: str
    index: int
    frame: str
    load: Callable[[], np.ndarray]


@dataclass(frozen=True)
class PointsTask:
    """Frames loaded from point files, one :class:`PointsItem` each."""

    items: tuple[PointsItem, ...]

    @property
    def rows(self) -> int:
        """How many frame rows :meth:`frames` yields."""
        return len(self.items)

    def frames(self) -> Iterator[dict[str, Any]]:
        for item in self.items:
            t0 = time.perf_counter()
            try:
                points = item.load()
            except Exception as exc:  # noqa: BLE001 - recorded in the frame's row, the run goes on
                yield frame_row(item.source, item.index, item.frame, error=_error_text(item.source, exc))
                continue
            yield frame_row(item.source, item.index, item.frame, points, read_ms=(time.perf_counter() - t0) * 1e3)


@dataclass(frozen=True)
class BagTask:
    """Messages ``first .. first + count - 1`` of ``topic`` in the recording ``path`` (see
    :meth:`~pointpillars_trt.ros.bag.CloudReader.read_range` for ``start_ns`` and ``skip``);
    the indices in ``done`` were written by an earlier run and are not decoded."""

    path: str
    topic: str
    first: int
    count: int
    start_ns: int | None = None
    skip: int = 0
    done: frozenset[int] = frozenset()
    intensity_scale: float | str = 1.0

    @property
    def rows(self) -> int:
        """How many frame rows :meth:`frames` yields."""
        return self.count - len(self.done)

    def frames(self) -> Iterator[dict[str, Any]]:
        seen: set[int] = set()
        why = "the recording ended or could not be read before it"
        try:
            for row in self._read():
                seen.add(row["index"])
                yield row
        except PointPillarsError as exc:  # the bag does not open (any more)
            why = str(exc)
        for index in range(self.first, self.first + self.count):  # every frame of the task gets its row
            if index not in seen and index not in self.done:
                yield frame_row(self.path, index, f"{index:06d}", error=f"{self.path}: message {index} on {self.topic} not read: {why}")

    def _read(self) -> Iterator[dict[str, Any]]:
        from ..ros.bag import CloudReader
        from ..ros.cloud import cloud_to_points

        with CloudReader(self.path, self.topic) as reader:
            t0 = time.perf_counter()
            for msg in reader.read_range(self.first, self.count, self.start_ns, self.skip, self.done):
                key = (self.path, msg.index, f"{msg.index:06d}")
                if msg.cloud is None:
                    yield frame_row(*key, record_ns=msg.timestamp_ns,
                                    error=f"{self.path}: message {msg.index} on {self.topic}: {msg.error}")
                    continue
                try:
                    points = cloud_to_points(msg.cloud, self.intensity_scale)
                except PointPillarsError as exc:
                    yield frame_row(*key, record_ns=msg.timestamp_ns, error=f"{self.path}: message {msg.index}: {exc}")
                    continue
                t1 = time.perf_counter()
                header = msg.cloud.header
                yield frame_row(*key, points, record_ns=msg.timestamp_ns, stamp_ns=header.stamp.nanoseconds,
                                frame_id=header.frame_id, read_ms=(t1 - t0) * 1e3)
                t0 = t1


def task_frames(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The read stage's ``flat_map`` function: the frame rows of the task pickled in ``row["task"]``."""
    yield from pickle.loads(row["task"]).frames()


__all__ = ["BagTask", "FRAME_KEYS", "PointsItem", "PointsTask", "frame_row", "task_frames"]
