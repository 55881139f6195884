"""Optional detections recording written from the finished Parquet output: per frame of a
recording input, the box array and the ``MarkerArray`` at the cloud's record time, stamped with
its header stamp and frame (the messages of ``tools/infer_bag.py``; ``OUT.mcap``: ROS 2 messages,
boxes as ``vision_msgs/msg/Detection3DArray``; ``OUT.bag``: rosbag1). Written from the whole
output, so a resumed run gives the complete recording; rows without a record time (point files)
and failed frames are left out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from ..io.atomic import check_writable
from .tasks import BagTask, PointsTask

#: the columns a recording is written from
COLUMNS = ["record_ns", "stamp_ns", "frame_id", "boxes", "scores", "labels", "error"]


def check_recording_inputs(path: Path, tasks: Sequence[PointsTask | BagTask]) -> Path:
    """ConfigError when ``path`` is no ``.mcap`` / ``.bag`` or the run has point-file inputs (no
    record times); the path made writable."""
    if path.suffix.lower() not in (".mcap", ".bag"):
        raise ConfigError(f"{path}: a detections recording is an OUT.mcap or OUT.bag file")
    if any(isinstance(t, PointsTask) for t in tasks):
        raise ConfigError(f"{path}: a detections recording needs recording inputs only (point files have no record time)")
    return check_writable(path)


def write_recording(results: Path, out: Path, class_names: Sequence[str], markers_topic: str = "/pointpillars/markers",
                    boxes_topic: str = "/pointpillars/boxes") -> int:
    """Write the detections of ``results`` (a fleet Parquet file) into the recording ``out``, in
    record-time order, replacing it atomically; returns the number of frames written."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..ros.bag import DetectionBagWriter
    from ..ros.cloud import Header, Stamp
    from ..ros.markers import detections_to_boxes, detections_to_markers
    from ..ros.processor import FrameResult

    table = pq.read_table(results, columns=COLUMNS)
    table = table.filter(pc.and_(pc.is_null(table.column("error")), pc.is_valid(table.column("record_ns"))))
    table = table.sort_by("record_ns")
    ids = {name: i for i, name in enumerate(class_names)}
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    partial.unlink(missing_ok=True)  # left by a run that stopped while moving it into place
    with DetectionBagWriter(partial, markers_topic, boxes_topic) as writer:
        for row in table.to_pylist():
            boxes = np.asarray(row["boxes"], np.float32).reshape(-1, 7)
            labels = np.array([ids[n] for n in row["labels"]], np.int64)
            header = Header(Stamp.from_nanoseconds(row["stamp_ns"]), row["frame_id"] or "")
            result = FrameResult(header, None, detections_to_markers(boxes, row["scores"], labels, class_names),
                                 detections_to_boxes(boxes, row["scores"], labels, class_names), 0)
            writer.write(row["record_ns"], result)
    os.replace(partial, out)
    return table.num_rows


__all__ = ["check_recording_inputs", "write_recording"]
