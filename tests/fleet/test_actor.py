"""The detector stage on its own (no Ray): one bad cloud fails only its frame; batches run from
several threads at once (a threaded actor) give the rows of serial calls, warnings included."""

from __future__ import annotations

import threading
from functools import partial

import numpy as np

from pointpillars_trt.fleet.actor import DetectorActor
from pointpillars_trt.fleet.tasks import frame_row

from .conftest import SCORE_THRESHOLD, make_detector


def numpy_batch(rows):
    """Frame rows as Ray Data's numpy batch format gives them to the actor."""
    return {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}


def without_timings(table):
    return [{k: v for k, v in row.items() if k != "timings_ms"} for row in table.to_pylist()]


def test_detector_actor_isolates_a_bad_cloud(clouds):
    """One detect_batch call fails for a NaN cloud (nonfinite=error): only that frame fails."""
    bad = clouds[0][:100].copy()
    bad[3, 0] = np.nan
    rows = [frame_row("a.bin", 0, "a", clouds[0][:2000]), frame_row("b.bin", 0, "b", bad)]
    table = DetectorActor(partial(make_detector), SCORE_THRESHOLD, warmup=0)(numpy_batch(rows)).to_pylist()
    assert table[0]["error"] is None and "b.bin" in table[1]["error"] and "NaN" in table[1]["error"]


def test_threads_at_once_give_the_serial_rows(clouds):
    """Three batches, each a real frame and a frame out of range (its EmptyFrameWarning must stay
    in its own row), through one actor from three threads at once and then one after another."""
    far = np.zeros((50, 4), np.float32)
    far[:, :3] = 1000.0  # intensity 0: in range (the rate-limited intensity warning would depend on call order)
    batches = [numpy_batch([frame_row(f"f{i}.bin", 0, f"f{i}", clouds[i]), frame_row(f"e{i}.bin", 0, f"e{i}", far)])
               for i in range(3)]
    actor = DetectorActor(partial(make_detector), SCORE_THRESHOLD, warmup=0)
    together: list = [None] * 3
    start = threading.Barrier(3)

    def call(i: int) -> None:
        start.wait()
        together[i] = actor(batches[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    serial = [actor(b) for b in batches]
    for i in range(3):
        assert without_timings(together[i]) == without_timings(serial[i])
        real, empty = without_timings(together[i])
        assert real["error"] is None and len(real["scores"]) > 0 and real["warnings"] == []
        assert len(empty["warnings"]) == 1 and empty["warnings"][0].startswith(f"e{i}.bin: no point lies inside")
