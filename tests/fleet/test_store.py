"""The resumable Parquet output (fleet.store) and its rows (fleet.results): parts, merging, a
stopped run's parts, failed rows run again, rows of another model refused. No Ray needed."""

from __future__ import annotations

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet")

from pointpillars_trt.detector import Detections
from pointpillars_trt.errors import OutputError
from pointpillars_trt.fleet import ResultStore
from pointpillars_trt.fleet.results import result_table
from pointpillars_trt.fleet.tasks import frame_row
from pointpillars_trt.io.atomic import file_mode

RUN = {"ckpt": "model.safetensors", "score_thresh": 0.3}


def batch(keys, failed=()):
    """A result table of frames ``keys`` ((source, index)); those in ``failed`` have an error."""
    rows = [frame_row(s, i, f"{i:06d}", np.zeros((5, 4), np.float32), read_ms=1.0) for s, i in keys]
    frames = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}
    det = Detections(np.arange(14, dtype=np.float32).reshape(2, 7), np.array([0.9, 0.5], np.float32), np.array([0, 1]),
                     ("Car", "Pedestrian"), {"total": 2.0}, num_points=5, num_pillars=3)
    dets = [None if k in failed else det for k in keys]
    return result_table(frames, dets, [[] for _ in keys], [f"{k[0]}: bad" if k in failed else "" for k in keys])


def keys_and_errors(path):
    t = pq.read_table(path)
    return sorted(zip(t.column("source").to_pylist(), t.column("index").to_pylist(), t.column("error").to_pylist()))


def test_rows_parts_and_resume(tmp_path):
    out = tmp_path / "o.parquet"
    store = ResultStore(out, RUN, part_rows=2)
    assert store.done == set()
    store.add(batch([("a", 0), ("a", 1)]))
    assert len(store.parts()) == 1 and not out.exists()  # a part as soon as part_rows arrived
    store.add(batch([("b", 0)], failed=[("b", 0)]))
    store.finish()
    assert not store.parts_dir.exists()
    assert keys_and_errors(out) == [("a", 0, None), ("a", 1, None), ("b", 0, "b: bad")]
    row = pq.read_table(out).slice(0, 1).to_pylist()[0]
    assert row["boxes"][1] == list(range(7, 14)) and row["labels"] == ["Car", "Pedestrian"] and row["record_ns"] is None
    assert dict(row["timings_ms"]) == {"read": 1.0, "total": 2.0} and row["num_points"] == 5
    assert out.stat().st_mode & 0o777 == file_mode()  # as open() makes it, not mkstemp's 0600

    again = ResultStore(out, RUN)  # the failed frame is not done: it runs again and replaces its row
    assert again.done == {("a", 0), ("a", 1)}
    again.add(batch([("b", 0)]))
    again.finish()
    assert keys_and_errors(out) == [("a", 0, None), ("a", 1, None), ("b", 0, None)]


def test_a_stopped_run_is_resumed_from_its_parts(tmp_path):
    out = tmp_path / "o.parquet"
    ResultStore(out, RUN).finish()  # an empty output
    stopped = ResultStore(out, RUN)
    stopped.add(batch([("a", 0)]))
    stopped.flush()  # ... and the process dies here
    resumed = ResultStore(out, RUN)
    assert resumed.done == {("a", 0)} and not resumed.parts()
    assert keys_and_errors(out) == [("a", 0, None)]


def test_rows_of_another_run_are_refused(tmp_path):
    out = tmp_path / "o.parquet"
    store = ResultStore(out, RUN)
    store.add(batch([("a", 0)]))
    store.finish()
    with pytest.raises(OutputError, match="holds results of another run"):
        ResultStore(out, {**RUN, "score_thresh": 0.5})
    fresh = ResultStore(out, {**RUN, "score_thresh": 0.5}, overwrite=True)
    assert fresh.done == set()
    fresh.add(batch([("b", 0)]))
    fresh.finish()
    assert keys_and_errors(out) == [("b", 0, None)]
    (tmp_path / "junk.parquet").write_text("no parquet")
    with pytest.raises(OutputError, match="not a readable Parquet file"):
        ResultStore(tmp_path / "junk.parquet", RUN)
    with pytest.raises(OutputError):
        ResultStore(tmp_path / "junk.parquet" / "o.parquet", RUN)
