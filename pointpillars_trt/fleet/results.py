"""The result rows: one Parquet row per input frame, the Arrow schema, and the detector stage's
conversion of :class:`~pointpillars_trt.detector.Detections` into them.

Columns (:data:`RESULT_SCHEMA`): ``source`` and ``index`` (the frame key, see
:mod:`~pointpillars_trt.fleet.tasks`), ``frame`` (file stem, KITTI frame id, or the message index
as ``NNNNNN``), ``record_ns`` / ``stamp_ns`` / ``frame_id`` (a bag message's record time, header
stamp and frame; null for files), ``num_points``, ``num_pillars``, ``boxes`` (list of ``[x, y, z, dx, dy, dz, yaw]``
float32, LiDAR frame, best score first), ``scores`` (list of float32), ``labels`` (list of class
names), ``timings_ms`` (stage -> ms, with ``read`` for reading and decoding), ``warnings`` (the
detector's warnings for the frame) and ``error`` (null when the frame ran; else why it did not,
and the box lists are empty).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

#: the file's key-value metadata entry holding what made the results (see ResultStore)
RUN_METADATA_KEY = b"pointpillars_trt.run"


def result_schema():
    """The Arrow schema of a result row."""
    import pyarrow as pa

    return pa.schema([
        ("source", pa.string()), ("index", pa.int64()), ("frame", pa.string()),
        ("record_ns", pa.int64()), ("stamp_ns", pa.int64()), ("frame_id", pa.string()),
        ("num_points", pa.int64()), ("num_pillars", pa.int64()),
        ("boxes", pa.list_(pa.list_(pa.float32(), 7))), ("scores", pa.list_(pa.float32())), ("labels", pa.list_(pa.string())),
        ("timings_ms", pa.map_(pa.string(), pa.float64())), ("warnings", pa.list_(pa.string())), ("error", pa.string()),
    ])


def _nullable(values: Sequence[int]) -> list[int | None]:
    """-1 (the read stage's "none") -> null."""
    return [None if int(v) < 0 else int(v) for v in values]


def _list_column(parts: Sequence[np.ndarray], value_type, width: int | None = None):
    """An Arrow list column of ``parts`` (one numpy array per row) built from one flat buffer and
    offsets, not from Python lists (a batch of 64 frames holds some 50,000 box values); ``width``
    makes each row a list of fixed-size lists (``[n, width]`` parts)."""
    import pyarrow as pa

    counts = [len(a) for a in parts]
    offsets = np.zeros(len(parts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat = [np.asarray(a).reshape(-1) for a in parts]
    values = pa.array(np.concatenate(flat) if flat else [], type=value_type)
    if width is not None:
        values = pa.FixedSizeListArray.from_arrays(values, width)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def _label_column(detections: Sequence[Any]):
    """The ``labels`` column: each row's class indices as one flat buffer, then the class names
    taken by index in Arrow (not a Python list of names per frame); rows without detections are empty."""
    import pyarrow as pa

    names = next((d.class_names for d in detections if d is not None), ())
    codes = _list_column([d.labels if d is not None else np.zeros(0, np.int64) for d in detections], pa.int64())
    return pa.ListArray.from_arrays(codes.offsets, pa.array(list(names), pa.string()).take(codes.values))


def result_table(frames: dict[str, np.ndarray], detections: Sequence[Any], warnings: Sequence[list[str]], errors: Sequence[str]):
    """The Arrow table of one batch: ``frames`` the read stage's columns (``source``, ``index``,
    ``frame``, ``record_ns``, ``stamp_ns``, ``frame_id``, ``points``, ``read_ms``), and per row its
    :class:`~pointpillars_trt.detector.Detections` (None where ``errors[i]`` says why not) and
    its warning lines."""
    import pyarrow as pa

    n = len(frames["source"])
    empty = np.zeros((0, 7), np.float32)
    dets = list(detections)
    timings = [{"read": float(frames["read_ms"][i]), **(d.timings_ms if d is not None else {})} for i, d in enumerate(dets)]
    columns = {
        "source": [str(s) for s in frames["source"]], "index": [int(i) for i in frames["index"]],
        "frame": [str(f) for f in frames["frame"]],
        "record_ns": _nullable(frames["record_ns"]), "stamp_ns": _nullable(frames["stamp_ns"]),
        "frame_id": [str(f) or None for f in frames["frame_id"]],
        "num_points": [int(d.num_points) if d is not None else len(frames["points"][i]) for i, d in enumerate(dets)],
        "num_pillars": [int(d.num_pillars) if d is not None else 0 for d in dets],
        "boxes": _list_column([np.asarray(d.boxes if d is not None else empty, np.float32) for d in dets], pa.float32(), 7),
        "scores": _list_column([np.asarray(d.scores if d is not None else empty[:, 0], np.float32) for d in dets], pa.float32()),
        "labels": _label_column(dets),
        "timings_ms": [list(t.items()) for t in timings],
        "warnings": [list(w) for w in warnings],
        "error": [e or None for e in errors],
    }
    assert all(len(v) == n for v in columns.values()), {k: len(v) for k, v in columns.items()}
    return pa.table(columns, schema=result_schema())


__all__ = ["RUN_METADATA_KEY", "result_schema", "result_table"]
