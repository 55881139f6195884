"""bench_facade.py runs on a machine without CUDA, and its stub of the device executor's host path
(the real per-frame code, GPU left out) gives the packed row's boxes through the facade."""

from __future__ import annotations

import numpy as np

from benchmarks import bench_facade as bench
from tests.executors.packed_reference import unpack


def test_stub_device_path_gives_the_packed_rows_boxes(kitti_frames, capsys):
    pts = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)
    det = bench.stub_device_detector(len(pts))
    row = det.executor.pipeline.bufs.packed_host_np[0]
    lay = det.executor.pipeline.bufs.layout
    want_boxes, want_scores, want_labels, c = unpack(lay, row)
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


def test_device_path_policies_from_the_packed_row(kitti_frames):
    """The facade's policies on what the device executor decodes (the stub's packed row edited as
    the GPU would leave it): a NaN box is dropped with a warning, NaN/inf rows counted by the
    voxelizer raise under ``nonfinite="error"`` and leave ``num_points`` under ``"drop"``, an
    intensity range outside the model's warns, dropped pillars warn with their counts."""
    import warnings

    import pytest

    from pointpillars_trt.detector import NonFiniteBoxWarning, PillarOverflowWarning
    from pointpillars_trt.errors import IntensityRangeWarning, PointCloudError
    from pointpillars_trt.options import DetectorOptions, NonFinitePolicy

    pts = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)
    det = bench.stub_device_detector(len(pts))
    bufs = det.executor.pipeline.bufs
    row, lay, clean = bufs.packed_host_np[0], bufs.layout, bufs.packed_host_np[0].copy()
    row.view(np.float32)[lay.boxes + 7 * 3 + 2] = np.nan  # box 3's z
    with pytest.warns(NonFiniteBoxWarning, match="dropped 1 of 40 decoded boxes"):
        d = det.detect(pts)
    assert len(d) == 39 and np.isfinite(d.boxes).all()
    row[:] = clean
    row[lay.counters + 8] = 5  # five NaN/inf rows
    bad = pts.copy()
    bad[[7, 9, 11, 13, 15], 0] = np.nan
    with pytest.raises(PointCloudError, match="first bad row index 7"):
        det.detect(bad, source="bad.bin")
    det.options = DetectorOptions(nonfinite=NonFinitePolicy.DROP)
    assert det.detect(bad).num_points == len(pts) - 5
    row[:] = clean
    row[lay.counters + 10] = np.array(254.0, np.float32).view(np.int32)  # intensities up to 254
    with pytest.warns(IntensityRangeWarning, match="intensity_scale=1/255"):
        det.detect(pts)
    row[:] = clean
    row[lay.counters + 3: lay.counters + 5] = [12, 30]  # 12 pillars holding 30 points dropped
    with pytest.warns(PillarOverflowWarning, match="dropped 12 pillars holding 30 points"):
        det.detect(pts)
    row[:] = clean
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(det.detect(pts)) == 40


def test_device_path_warnings_point_at_the_caller(kitti_frames):
    """``detect`` and ``detect_batch`` give the same result and attribute every warning to their
    caller (one frame skips ``detect_batch``'s lists, so the two call depths must agree)."""
    import warnings

    pts = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)

    def warning_detector():  # a fresh one per call: the intensity warning is rate-limited per detector
        det = bench.stub_device_detector(len(pts))
        row, lay = det.executor.pipeline.bufs.packed_host_np[0], det.executor.pipeline.bufs.layout
        row.view(np.float32)[lay.boxes + 2] = np.inf  # box 0: NonFiniteBoxWarning
        row[lay.counters + 3: lay.counters + 5] = [1, 2]  # PillarOverflowWarning
        row[lay.counters + 10] = np.array(254.0, np.float32).view(np.int32)  # IntensityRangeWarning
        return det

    for call in (lambda det: det.detect(pts), lambda det: det.detect_batch([pts])[0]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            d = call(warning_detector())
        assert len(d) == bench.STUB_BOXES - 1 and (d.num_pillars, d.num_dropped_pillars) == (5000, 1)
        assert sorted(type(w.message).__name__ for w in caught) == ["IntensityRangeWarning", "NonFiniteBoxWarning",
                                                                     "PillarOverflowWarning"]
        assert {w.filename for w in caught} == {__file__}
    det = bench.stub_device_detector(len(pts))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(det.detect(pts[:0])) == 0 and len(det.detect_batch([pts[:0]])[0]) == 0
    assert [type(w.message).__name__ for w in caught] == ["EmptyFrameWarning"] * 2 and {w.filename for w in caught} == {__file__}


def test_stub_device_path_reads_input_buffer_in_place(kitti_frames):
    """``Detector.input_buffer`` on the device executor is lane 0's staging row: ``detect`` of it
    stages nothing (the row holds what the caller wrote) and gives the packed row's boxes."""
    pts = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)
    det = bench.stub_device_detector(len(pts))
    bufs = det.executor.pipeline.bufs
    want = det.detect(pts)
    bufs.points_host_np[:] = 0
    with det.input_buffer(len(pts)) as buf:
        assert np.shares_memory(buf, bufs.points_host_np) and buf.shape == pts.shape
        buf[:] = pts
        d = det.detect(buf)
    np.testing.assert_array_equal(d.boxes, want.boxes)
    assert d.num_points == len(pts) and bufs.n_host_np[0] == len(pts)
    np.testing.assert_array_equal(bufs.points_host_np[0, : len(pts)], pts)
