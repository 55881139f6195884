"""Replay recorded PointCloud2 messages through the detector with ``rosbags`` (no ROS install).

Input: a rosbag1 file (``.bag``), a rosbag2 directory (sqlite3 or MCAP storage), or a bare
``.mcap`` / ``.db3`` file - whatever ``rosbags.highlevel.AnyReader`` opens.

Outputs (any combination):

* :class:`DetectionBagWriter` - a new recording holding, per processed cloud, the
  ``MarkerArray`` and the box array at the cloud's record time, stamped with the cloud's header
  stamp (and optionally the cloud itself). ``OUT.bag``: rosbag1, box type
  ``pointpillars_trt_msgs/BoxArray`` (its definition is stored in the bag). ``OUT.mcap``: one MCAP
  file with ROS 2 (CDR) messages, box type ``vision_msgs/msg/Detection3DArray``. Any other path:
  a rosbag2 directory (storage ``mcap`` or ``sqlite3``), same types as ``.mcap``.
* :class:`KittiFrameWriter` - per frame ``label_2/NNNNNN.txt`` (KITTI result lines, with a
  calibration) or ``boxes_lidar/NNNNNN.txt`` (``class x y z dx dy dz yaw score`` in the LiDAR
  frame, without one), optionally ``velodyne/NNNNNN.bin``, and ``frames.csv`` mapping each frame
  index to its record time and stamp.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import PointPillarsError
from ..io.atomic import atomic_write_bytes, atomic_write_text, check_writable
from .cloud import CloudData, cloud_from_msg
from .factories import RosbagsFactory
from .messages import (
    DETECTION3D_ARRAY_TYPE,
    MARKER_ARRAY_TYPE,
    POINTCLOUD2_TYPE,
    box_array_msg,
    cloud_msg,
    detection3d_array_msg,
    marker_array_msg,
)
from .msgdefs import BOX_ARRAY_TYPE, register_types
from .processor import FrameProcessor, FrameResult

STORAGES = ("mcap", "sqlite3")


class BagError(PointPillarsError):
    """A recording cannot be read or written, or lacks the requested topic."""


# --------------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class BagCloud:
    """One PointCloud2 message of a recording: its index (record order among the topic's
    messages), record time (ns) and the cloud; for a message that cannot be read, ``cloud`` is
    None and ``error`` says why."""

    timestamp_ns: int
    cloud: CloudData | None
    index: int = 0
    topic: str = ""
    error: str = ""


class CloudReader:
    """PointCloud2 messages of one topic, in record order. Use as a context manager."""

    def __init__(self, path: str | Path, topic: str) -> None:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        self.topic = topic
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag file or directory")
        try:
            self.reader = AnyReader([self.path], default_typestore=get_typestore(Stores.LATEST))
        except Exception as exc:  # rosbags raises its own error types
            raise BagError(f"{self.path}: cannot open as rosbag1 / rosbag2 / MCAP: {exc}") from exc
        self.connections: list[Any] = []

    def __enter__(self) -> "CloudReader":
        try:
            self.reader.open()
        except Exception as exc:
            raise BagError(f"{self.path}: cannot open as rosbag1 / rosbag2 / MCAP: {exc}") from exc
        self.connections = [c for c in self.reader.connections if c.topic == self.topic]
        if not self.connections:
            topics = sorted({f"{c.topic} ({c.msgtype})" for c in self.reader.connections})
            self.reader.close()
            raise BagError(f"{self.path}: no topic {self.topic!r}; topics are {topics}")
        bad = [c.msgtype for c in self.connections if c.msgtype != POINTCLOUD2_TYPE]
        if bad:
            self.reader.close()
            raise BagError(f"{self.path}: topic {self.topic!r} holds {bad[0]}, not {POINTCLOUD2_TYPE}")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.reader.close()

    @property
    def is_ros1(self) -> bool:
        return not self.reader.is2

    def __len__(self) -> int:
        return sum(c.msgcount for c in self.connections)

    def __iter__(self) -> Iterator[BagCloud]:
        """Every message in record order; one that does not deserialize (or is not a readable
        PointCloud2) comes with ``error`` set instead of ending the iteration. A recording that
        cannot be read further ends it with one last item whose ``error`` says so."""
        return self.read_range(0, len(self))

    def message_times(self) -> list[int]:
        """Record times (ns) of the topic's messages in record order, read without deserializing
        them (one pass over the raw messages): where :meth:`read_range` tasks of a big bag start."""
        return [int(t) for _, t, _ in self.reader.messages(connections=self.connections)]

    def read_range(self, first: int, count: int, start_ns: int | None = None, skip: int = 0,
                   done: frozenset[int] = frozenset()) -> Iterator[BagCloud]:
        """Messages ``first .. first + count - 1`` (indices in record order), as :meth:`__iter__`.

        ``start_ns``: the record time of message ``first`` (seeks there instead of reading from the
        start; ``skip``: how many earlier messages share that time); without it the messages before
        ``first`` are read raw and dropped. Indices in ``done`` are read raw but not decoded."""
        messages = self.reader.messages(connections=self.connections, start=start_ns)
        index = first - skip if start_ns is not None else 0
        stop = first + count
        while index < stop:
            try:
                connection, timestamp, raw = next(messages)
            except StopIteration:
                return
            except Exception as exc:  # a corrupt chunk: nothing after it can be read
                yield BagCloud(0, None, max(index, first), self.topic, f"{self.path}: reading stopped: {type(exc).__name__}: {exc}")
                return
            if index >= first and index not in done:
                yield self._decode(index, connection, int(timestamp), raw)
            index += 1

    def _decode(self, index: int, connection: Any, timestamp: int, raw: bytes) -> BagCloud:
        try:
            msg = self.reader.deserialize(raw, connection.msgtype)
        except Exception as exc:  # rosbags raises several types for truncated / garbled bytes
            return BagCloud(timestamp, None, index, connection.topic, f"does not deserialize: {type(exc).__name__}: {exc}")
        try:
            cloud = cloud_from_msg(msg)
        except PointPillarsError as exc:
            return BagCloud(timestamp, None, index, connection.topic, str(exc))
        return BagCloud(timestamp, cloud, index, connection.topic)


# --------------------------------------------------------------------------------------------------
# writing a recording


def output_format(path: str | Path) -> str:
    """``"rosbag1"`` for ``*.bag``, ``"mcap"`` for ``*.mcap``, else ``"rosbag2"`` (a directory)."""
    suffix = Path(path).suffix.lower()
    return {".bag": "rosbag1", ".mcap": "mcap"}.get(suffix, "rosbag2")


class DetectionBagWriter:
    """Writes markers + boxes (+ optionally the input clouds) into a new recording."""

    def __init__(
        self,
        path: str | Path,
        markers_topic: str,
        boxes_topic: str,
        cloud_topic: str | None = None,
        storage: str = "mcap",
    ) -> None:
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        self.kind = output_format(self.path)
        if storage not in STORAGES:
            raise BagError(f"storage must be one of {STORAGES}, got {storage!r}")
        if self.path.exists():
            raise BagError(f"{self.path} exists already; not overwriting it")
        ros1 = self.kind == "rosbag1"
        self.typestore = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
        register_types(self.typestore, ros1=ros1)
        self.factory = RosbagsFactory(self.typestore, 1 if ros1 else 2)
        self.box_type = BOX_ARRAY_TYPE if ros1 else DETECTION3D_ARRAY_TYPE
        self._tmp: Path | None = None
        check_writable(self.path)
        try:
            # everything is written in a temporary directory beside the output and moved into
            # place on close, so a run that fails never leaves a half-written recording at path
            self._tmp = Path(tempfile.mkdtemp(prefix=".pp_bag_", dir=self.path.parent))
            if ros1:
                from rosbags.rosbag1 import Writer as Writer1

                self.writer: Any = Writer1(self._tmp / self.path.name)
            else:
                from rosbags.rosbag2 import StoragePlugin, Writer as Writer2

                plugin = StoragePlugin.MCAP if (self.kind == "mcap" or storage == "mcap") else StoragePlugin.SQLITE3
                # rosbags writes a directory; for OUT.mcap its one .mcap file is moved out on close
                target = self._tmp / (self.path.stem if self.kind == "mcap" else self.path.name)
                self.writer = Writer2(target, version=9, storage_plugin=plugin)
            self.writer.open()
            self.conn_markers = self.writer.add_connection(markers_topic, MARKER_ARRAY_TYPE, typestore=self.typestore)
            self.conn_boxes = self.writer.add_connection(boxes_topic, self.box_type, typestore=self.typestore)
            self.conn_cloud = (
                self.writer.add_connection(cloud_topic, POINTCLOUD2_TYPE, typestore=self.typestore) if cloud_topic else None
            )
        except BagError:
            raise
        except Exception as exc:
            self._cleanup_tmp()
            raise BagError(f"{self.path}: cannot create the output recording: {exc}") from exc
        self.count = 0

    def _serialize(self, msg: Any, typename: str) -> bytes:
        if self.kind == "rosbag1":
            return bytes(self.typestore.serialize_ros1(msg, typename))
        return bytes(self.typestore.serialize_cdr(msg, typename))

    def write(self, timestamp_ns: int, result: FrameResult, cloud: CloudData | None = None) -> None:
        """Write one frame's outputs at record time ``timestamp_ns`` (the input cloud's)."""
        f = self.factory
        markers = marker_array_msg(f, result.header, result.markers)
        build = box_array_msg if self.box_type == BOX_ARRAY_TYPE else detection3d_array_msg
        boxes = build(f, result.header, result.boxes)
        if self.conn_cloud is not None and cloud is not None:
            self.writer.write(self.conn_cloud, timestamp_ns, self._serialize(cloud_msg(f, cloud), POINTCLOUD2_TYPE))
        self.writer.write(self.conn_markers, timestamp_ns, self._serialize(markers, MARKER_ARRAY_TYPE))
        self.writer.write(self.conn_boxes, timestamp_ns, self._serialize(boxes, self.box_type))
        self.count += 1

    def close(self) -> Path:
        """Finish the recording and move it into place; returns its path."""
        if self._tmp is None:
            return self.path
        try:
            self.writer.close()
            product = self._tmp / self.path.name
            if self.kind == "mcap":
                files = sorted((self._tmp / self.path.stem).glob("*.mcap"))
                if len(files) != 1:
                    raise BagError(f"{self.path}: expected one .mcap file from the writer, found {files}")
                product = files[0]
            if self.path.exists():
                raise BagError(f"{self.path} appeared while the recording was written; not overwriting it")
            os.replace(product, self.path)
        except OSError as exc:
            raise BagError(f"{self.path}: cannot finish the output recording: {exc}") from exc
        finally:
            self._cleanup_tmp()
        return self.path

    def _cleanup_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "DetectionBagWriter":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._cleanup_tmp()


# --------------------------------------------------------------------------------------------------
# KITTI-style files


class KittiFrameWriter:
    """Per-frame text files (and optionally points) in KITTI's layout; see the module docstring."""

    def __init__(self, out_dir: str | Path, calib: Any = None, image_shape: tuple[int, int] | None = None, save_points: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.calib = calib
        self.image_shape = image_shape
        self.save_points = save_points
        self.labels_dir = check_writable(self.out_dir / ("label_2" if calib is not None else "boxes_lidar"), directory=True)
        if save_points:
            check_writable(self.out_dir / "velodyne", directory=True)
        self.rows: list[list[Any]] = []

    def write(self, index: int, timestamp_ns: int, result: FrameResult) -> None:
        from ..io.kitti import detections_to_kitti_objects, lidar_box_lines, write_label

        name = f"{index:06d}"
        det = result.detections
        names = [b.class_name for b in result.boxes]
        if self.calib is not None:
            objs = detections_to_kitti_objects(det.boxes, names, det.scores, self.calib, self.image_shape)
            write_label(self.labels_dir / f"{name}.txt", objs)
        else:
            atomic_write_text(self.labels_dir / f"{name}.txt", lidar_box_lines(names, det.boxes, det.scores))
        if self.save_points:
            atomic_write_bytes(self.out_dir / "velodyne" / f"{name}.bin", np.ascontiguousarray(result.points, dtype="<f4").tobytes())
        self.rows.append([name, timestamp_ns, str(result.header.stamp), result.header.frame_id, result.num_points, len(result.boxes)])

    def close(self) -> Path:
        text = io.StringIO(newline="")
        w = csv.writer(text)
        w.writerow(["frame", "record_time_ns", "stamp", "frame_id", "num_points", "num_boxes"])
        w.writerows(self.rows)
        return atomic_write_text(self.out_dir / "frames.csv", text.getvalue())


# --------------------------------------------------------------------------------------------------
# the loop


@dataclass
class ReplaySummary:
    """Counts of a replay: ``frames`` written (a cloud without a usable point counts, written as
    "no objects"), ``skipped`` clouds the processor rejected, ``unreadable`` messages that did not
    deserialize as a PointCloud2; ``errors`` one line per skipped or unreadable message."""

    frames: int = 0
    skipped: int = 0
    unreadable: int = 0
    boxes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def replay(
    reader: CloudReader,
    processor: FrameProcessor,
    bag_writer: DetectionBagWriter | None = None,
    kitti_writer: KittiFrameWriter | None = None,
    progress: bool = True,
    on_error: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> ReplaySummary:
    """Run every cloud of ``reader`` through ``processor`` and write the outputs.

    A message that does not deserialize and a bad cloud are reported through ``on_error`` (index,
    topic, record time, reason) and skipped; the frame index still advances, so KITTI file names
    follow the recording's message order. A cloud without a usable point is written as an empty
    result. The processor's notes (NaN points dropped, no point in range, ...) go to ``on_note``.
    """
    from tqdm import tqdm

    summary = ReplaySummary()

    def report(item: BagCloud, reason: str) -> None:
        line = f"message {item.index} on {item.topic or reader.topic} (record time {item.timestamp_ns}): {reason}"
        summary.errors.append(line)
        if on_error:
            on_error(line)

    for item in tqdm(reader, total=len(reader), desc="infer_bag", unit="cloud", disable=not progress or None):
        if item.cloud is None:
            summary.unreadable += 1
            report(item, item.error)
            continue
        try:
            result = processor.process(item.cloud, markers=bag_writer is not None)  # only the output bag holds markers
        except PointPillarsError as exc:
            summary.skipped += 1
            report(item, str(exc))
            continue
        index = item.index
        for note in result.notes if on_note else ():
            on_note(note)
        if bag_writer is not None:
            bag_writer.write(item.timestamp_ns, result, item.cloud)
        if kitti_writer is not None:
            kitti_writer.write(index, item.timestamp_ns, result)
        summary.frames += 1
        summary.boxes += len(result.boxes)
        summary.latencies_ms.append(result.timings_ms.get("total", 0.0) + result.timings_ms.get("decode", 0.0))
    return summary
