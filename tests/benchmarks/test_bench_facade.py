"""bench_facade.py runs on a machine without CUDA, and its stub of the device executor's host path
(the real per-frame code, GPU left out) gives the packed row's boxes through the facade."""

from __future__ import annotations

import numpy as np

from benchmarks import bench_facade as bench


def test_stub_device_path_gives_the_packed_rows_boxes(kitti_frames, capsys):
    pts = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)
    det = bench.stub_device_detector(len(pts))
    row = det.executor.pipeline.bufs.packed_host_np[0]
    lay = det.executor.pipeline.bufs.layout
    want_boxes, want_scores, want_labels, c = lay.unpack(row)
    for _ in range(3):  # the same each time: nothing is left over from the previous frame
        d = det.detect(pts)
        np.testing.assert_array_equal(d.boxes, want_boxes)
        np.testing.assert_array_equal(d.scores, want_scores)
        np.testing.assert_array_equal(d.labels, want_labels)
        assert d.boxes.dtype == np.float32 and d.labels.dtype == np.int64 and len(d) == bench.STUB_BOXES
        assert (d.num_points, d.num_pillars, d.num_dropped_pillars) == (len(pts), c.num_pillars, 0)
        assert {"validate", "gpu", "host_stage", "host_wait", "total"} <= set(d.timings_ms)
    staged = det.executor.pipeline.bufs.points_host_np[0, : len(pts)]
    np.testing.assert_array_equal(staged, pts)  # staged exactly once, as given
    assert bench.main(["--frame", str(kitti_frames[0]), "--repeat", "3"]) == 0
    assert "device executor's host path" in capsys.readouterr().out
