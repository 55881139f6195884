"""The device executor's buffers: every batch lane of an engine-bound tensor starts on a 256-byte
boundary (TensorRT's setTensorAddress refuses others), whatever max_pillars or the output size is."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.executors.base import PillarCounts
from pointpillars_trt.voxelize.cuda import NUM_COUNTERS
from pointpillars_trt.executors.buffers import (ALIGN_BYTES, PackedLayout, aligned_count, lane_tensor, point_bucket, maps_host_memory,
                                               tensor_ptr)

from .packed_reference import frame_result, unpack

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("max_pillars", [1, 7, 500, 12000, 20000, 40000])
@pytest.mark.parametrize("dtype", [torch.int32, torch.float16, torch.float32])
def test_every_lane_is_aligned(max_pillars, dtype):
    for shape in ((max_pillars,), (max_pillars, 2), (max_pillars, 32, 10), (max_pillars, 64), (18, 248, 216)):
        t = lane_tensor(5, shape, dtype, "cpu")
        assert tuple(t.shape) == (5, *shape)
        for b in range(5):
            assert tensor_ptr(t, b) % ALIGN_BYTES == 0 and t[b].is_contiguous()
        t[3].fill_(7)  # lanes do not overlap
        assert bool((t[3] == 7).all()) and not t[2].any() and not t[4].any()


def test_aligned_count_and_layout():
    assert aligned_count(1, 4) == 64 and aligned_count(64, 4) == 64 and aligned_count(65, 2) == 128 and aligned_count(3, 10) == 128
    lay = PackedLayout(500)
    assert lay.words % 64 == 0 and lay.words >= lay.counters + NUM_COUNTERS
    row = np.zeros(lay.words, np.int32)
    row[lay.count] = 2
    row.view(np.float32)[lay.boxes: lay.boxes + 14] = np.arange(14)
    row[lay.counters: lay.counters + 7] = [3, 4, 5, 1, 6, 0, 100]
    boxes, scores, labels, c = unpack(lay, row)
    assert boxes.shape == (2, 7) and boxes[1, 0] == 7 and len(scores) == len(labels) == 2
    assert (c.num_pillars, c.num_found, c.num_dropped_pillars, c.num_input) == (3, 4, 1, 100)
    keys = np.array([-0.5, 0.75], np.float32).view(np.int32)
    row[lay.counters + 8: lay.counters + 11] = [2, *np.where(keys >= 0, keys, keys ^ 0x7FFFFFFF)]
    c = unpack(lay, row)[3]
    assert (c.num_nonfinite, c.intensity_min, c.intensity_max) == (2, -0.5, 0.75)


@pytest.mark.parametrize("option, batch, want", [(None, 1, True), (None, 2, False), (None, 16, False), (True, 1, True), (True, 16, True),
                                                  (False, 1, False), (False, 16, False)])
def test_mapped_rows_by_default_for_single_frames_only(option, batch, want):
    """DeviceOptions.mapped_points / mapped_output: None (the default) reads the points from and writes the results
    into the pinned rows for single frames, and copies batches."""
    from pointpillars_trt.options import DeviceOptions

    assert DeviceOptions().mapped_points is None and DeviceOptions().mapped_output is None
    assert maps_host_memory(option, batch) is want


def test_point_bucket():
    assert point_bucket(0) == point_bucket(1) == 16384
    prev = 0
    for n in (1, 20000, 70000, 120000, 500000):
        b = point_bucket(n)
        assert b >= n and b % 4096 == 0 and b >= prev and b <= max(1.5 * n + 4096, 16384)
        prev = b


@pytest.mark.parametrize("count", [0, 3, 500, 501, -1])
def test_frame_result_equals_unpack(count):
    """The per-frame decoding (one tolist, precompiled structs) gives what the reference ``unpack`` does."""
    lay, rng = PackedLayout(500), np.random.default_rng(count + 7)
    row = rng.integers(-2**31, 2**31 - 1, lay.words, dtype=np.int64).astype(np.int32)
    row[lay.count] = count
    for lo, hi in ((-0.5, 0.75), (0.0, 254.0), (float("inf"), float("-inf"))):  # the last: no finite intensity
        keys = np.array([lo, hi], np.float32).view(np.int32)
        row[lay.counters + 9: lay.counters + 11] = np.where(keys >= 0, keys, keys ^ 0x7FFFFFFF)
        timings = {"gpu": 0.5}
        r = frame_result(lay, row, timings)
        boxes, scores, labels, c = unpack(lay, row)
        assert r.boxes.dtype == np.float32 and r.scores.dtype == np.float32 and r.labels.dtype == np.int64
        assert r.boxes.shape == (min(max(count, 0), 500), 7) and r.boxes.flags.c_contiguous
        np.testing.assert_array_equal(r.boxes.view(np.int32), boxes.view(np.int32))  # bit for bit (NaN payloads too)
        np.testing.assert_array_equal(r.scores.view(np.int32), scores.view(np.int32))
        np.testing.assert_array_equal(r.labels, labels)
        assert r.counts == PillarCounts(c.num_input, c.num_pillars, c.num_found, c.num_dropped_pillars, c.num_dropped_points,
                                        c.num_nonfinite, (c.intensity_min, c.intensity_max))
        assert r.counts.intensity == (lo, hi) and r.timings_ms is timings
        row.view(np.float32)[:10] = 1.0  # the result owns its arrays
        assert not np.shares_memory(r.boxes, row) and not np.shares_memory(r.scores, row)


def test_packed_rows_are_views_that_decode_what_the_rows_hold_now():
    from pointpillars_trt.executors.buffers import PackedRows

    lay = PackedLayout(7)
    rows = np.zeros((3, lay.words), np.int32)
    views = PackedRows(lay, rows)
    for v in (views.boxes, views.scores, views.labels, views.head):
        assert np.shares_memory(v, rows)
    for count in (2, 7, 0):  # rewritten between decodes, as the pinned buffer is by every replay
        rows[1] = np.random.default_rng(count).integers(-1000, 1000, lay.words)
        rows[1, lay.count] = count
        r = views.frame_result(1, {})
        boxes, scores, labels, _ = unpack(lay, rows[1])
        np.testing.assert_array_equal(r.boxes, boxes)
        np.testing.assert_array_equal(r.scores.view(np.int32), scores.view(np.int32))
        np.testing.assert_array_equal(r.labels, labels)
        assert r.counts == frame_result(lay, rows[1], {}).counts and not views.frame_result(0, {}).boxes.size


def _rows(batch: int, capacity: int, copier=None):
    from pointpillars_trt.executors.buffers import StagingRows

    return StagingRows(np.zeros((batch, capacity, 4), np.float32), np.zeros(batch, np.int32), copier)


def _cloud(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 4])
def test_staging_rows_copy_clouds_and_counts(threads):
    from pointpillars_trt.executors.staging import SplitCopier

    copier = SplitCopier(threads) if threads > 1 else None
    rows = _rows(3, 70000, copier)
    clouds = [_cloud(n, i) for i, n in enumerate((70000, 5, 40000))]  # 1.1 MB in all: split with four threads
    rows.stage(clouds)
    for b, c in enumerate(clouds):
        np.testing.assert_array_equal(rows.points[b, : len(c)], c)
    assert rows.counts.tolist() == [70000, 5, 40000] and not rows.holds(clouds[0])
    if copier is not None:
        copier.close()


def test_only_batches_are_split_over_the_threads():
    """A single cloud, however large, is copied on the caller's thread (rows written by several threads
    just before the H2D copy slow it down); a batch of the same bytes goes to the threads."""
    from pointpillars_trt.executors.staging import SplitCopier

    copier = SplitCopier(4)
    split = []
    copy = copier.copy
    copier.copy = lambda jobs: (split.append(sum(n for _, _, n in jobs)), copy(jobs))[1]
    rows = _rows(2, 150000, copier)
    big = _cloud(150000, 0)  # 2.4 MB: four shares if it were split
    rows.stage([big])
    assert split == [] and rows.counts[0] == 150000
    np.testing.assert_array_equal(rows.points[0], big)
    rows.stage([big, big[:1000]])
    assert split == [big.nbytes + 16000]
    np.testing.assert_array_equal(rows.points[1, :1000], big[:1000])
    copier.close()


@pytest.mark.parametrize("threads", [1, 4])
def test_a_cloud_in_the_rows_is_read_in_place_alone_and_copied_out_in_a_batch(threads):
    from pointpillars_trt.errors import ConfigError
    from pointpillars_trt.executors.staging import SplitCopier

    copier = SplitCopier(threads) if threads > 1 else None
    rows = _rows(3, 70000, copier)
    a, b = _cloud(70000, 1), _cloud(60000, 2)
    buf = rows.lane_row(0, len(b))
    assert rows.holds(buf) and buf.shape == (60000, 4)
    buf[:] = b
    rows.stage([buf])  # alone at its own row: nothing to copy
    assert rows.counts[0] == 60000
    np.testing.assert_array_equal(rows.points[0, :60000], b)
    rows.stage([a, a, buf])  # the row is lane 2's cloud: read before lane 0 is overwritten
    np.testing.assert_array_equal(rows.points[2, :60000], b)
    np.testing.assert_array_equal(rows.points[0], a)
    assert rows.counts.tolist() == [70000, 70000, 60000]
    with pytest.raises(ConfigError, match="70001 points"):
        rows.lane_row(0, 70001)
    if copier is not None:
        copier.close()
