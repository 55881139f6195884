"""The whole-frame GPU pipeline (GpuDetector; graph and eager) against the CPU Detector, FP16 vs
FP32, batches, and the buffer policies. GPU tests are marked ``gpu``; ``point_bucket`` runs anywhere."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cuda_helpers import cuda_device, torch_cuda  # noqa: F401  (fixtures)
from tests.helpers import random_cloud
from pointpillars_trt.compare.detections import match_detections, select_above


@pytest.fixture(scope="module")
def lively(kitti_config):
    from tests.helpers import lively_state_dict

    return lively_state_dict(kitti_config)


@pytest.fixture(scope="module")
def cpu_detector(kitti_config, lively):
    from pointpillars_trt.network import create_backend
    from pointpillars_trt.detector import Detector

    return Detector.from_backend(kitti_config, create_backend("torch", cfg=kitti_config, state_dict=lively))


def gpu_detector(cfg, state_dict, **kw):
    from pointpillars_trt.detector import Detector

    kw.setdefault("precision", "fp32")  # against the CPU detector: TF32 off, same arithmetic
    return Detector.from_weights(cfg, state_dict, backend="gpu", **kw)


@pytest.mark.gpu
@pytest.mark.parametrize("use_graph", [True, False], ids=["graph", "eager"])
@pytest.mark.parametrize("pfn", ["fused", "torch"])
def test_matches_cpu_detector(torch_cuda, kitti_config, lively, cpu_detector, kitti_frames, use_graph, pfn):
    det = gpu_detector(kitti_config, lively, use_graph=use_graph, pfn=pfn, max_batch=2)
    for path in kitti_frames[:4]:
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
        want = cpu_detector.detect(pts)
        got = det.detect(pts)
        assert got.num_pillars == want.num_pillars and got.num_points == want.num_points
        assert abs(len(got) - len(want)) <= max(2, len(want) // 50)
        k = min(10, len(want), len(got))  # the strongest boxes: same order
        from pointpillars_trt.postprocess import iou_bev

        assert np.all(np.diag(iou_bev(got.boxes[:k], want.boxes[:k])) > 0.99)
        np.testing.assert_array_equal(got.labels[:k], want.labels[:k])
        assert match_detections(select_above(want, 0.3), got, 0.99).recall >= 0.98
        assert "total" in got.timings_ms and "gpu" in got.timings_ms
        if not use_graph:
            assert {"h2d", "voxelize", "network", "postprocess", "d2h"} <= set(got.timings_ms)
    det.close()


@pytest.mark.gpu
def test_fp16_keeps_fp32_boxes(torch_cuda, kitti_config, lively, kitti_frames):
    fp32 = gpu_detector(kitti_config, lively, precision="fp32")
    fp16 = gpu_detector(kitti_config, lively, precision="fp16")
    rates = []
    for path in kitti_frames:
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
        a, b = fp32.detect(pts), fp16.detect(pts)
        rates.append(match_detections(select_above(a, 0.3), b, 0.9).recall)
    print(f"FP16 keeps {100 * np.mean(rates):.2f} % of FP32 boxes (score > 0.3) with IoU > 0.9 (per frame min {100 * min(rates):.1f} %)")
    assert np.mean(rates) >= 0.95
    fp32.close()
    fp16.close()


@pytest.mark.gpu
@pytest.mark.parametrize("use_graph", [True, False], ids=["graph", "streams"])
def test_detect_batch_equals_detect(torch_cuda, kitti_config, lively, kitti_frames, use_graph):
    # the frames of a batch voxelize and post-process concurrently, each on its own stream; with
    # overlap, two pipelines take turns (groups of 3 and 2 here)
    from pointpillars_trt.errors import PointCloudError

    det = gpu_detector(kitti_config, lively, max_batch=3, use_graph=use_graph)
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:5]]
    batched = det.detect_batch(clouds)
    assert det.executor._second is not None  # two groups: two pipelines take turns
    for pts, b in zip(clouds, batched):
        one = det.detect(pts)
        assert len(one) == len(b)
        np.testing.assert_allclose(one.boxes, b.boxes, atol=1e-4)
    bad = clouds[:4] + [np.full((10, 4), np.nan, np.float32)]
    with pytest.raises(PointCloudError, match="<cloud 4>"):  # the first group is in flight when this fails
        det.detect_batch(bad)
    again = det.detect_batch(clouds)  # nothing left pending
    assert [len(d) for d in again] == [len(d) for d in batched]
    det.close()


@pytest.mark.gpu
def test_threaded_staging_gives_the_same_results(torch_cuda, kitti_config, lively, kitti_frames):
    # staging_threads=4 splits copies of >= 1 MiB (a 360-degree-sized cloud here; a batch of three FOV frames is just
    # under) over the SplitCopier's threads; the pinned rows, and so every box, must be what one thread gives
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:3]]
    big = np.concatenate([clouds[0]] * 5)  # ~100k points, 1.6 MB
    one = gpu_detector(kitti_config, lively, max_batch=3, staging_threads=1)
    four = gpu_detector(kitti_config, lively, max_batch=3, staging_threads=4)
    assert one.executor.pipeline.bufs.copier is None
    assert four.executor.pipeline.bufs.copier.parts(big.nbytes) == 3
    for a, b in zip(one.detect_batch(clouds) + [one.detect(big)], four.detect_batch(clouds) + [four.detect(big)]):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.num_points == b.num_points
    one.close(), four.close()


def assert_same_boxes(a, b):
    """``b`` has ``a``'s boxes, scores and labels, bit for bit (``a`` holds some)."""
    assert len(a) > 0
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.gpu
def test_batched_post_gives_the_same_results(torch_cuda, kitti_config, lively, kitti_frames):
    # DeviceOptions.batched_post: the batch's post-processing as one launch per pass (CudaPostProcessor lanes)
    # instead of a chain per lane on its own stream; every box must be the same, for full and partial batches
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:5]]
    lanes = gpu_detector(kitti_config, lively, max_batch=3)
    one = gpu_detector(kitti_config, lively, max_batch=3, batched_post=True)
    assert len(one.executor.pipeline.post) == 1 and one.executor.pipeline.post[0].lanes == 3
    for a, b in zip(lanes.detect_batch(clouds) + [lanes.detect(clouds[0])], one.detect_batch(clouds) + [one.detect(clouds[0])]):
        assert_same_boxes(a, b)
    lanes.close(), one.close()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_mapped_points_give_the_same_results(torch_cuda, kitti_config, lively, kitti_frames, precision):
    # DeviceOptions.mapped_points: no host-to-device copy in the graph, the voxelizer's first pass reads the pinned rows
    # (True: always; None, the default: single frames only); every box and count must be the same as copying (False),
    # batch 1 and full and partial batches, and through input_buffer
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:5]]
    runs = {}
    for option in (False, True, None):
        det = gpu_detector(kitti_config, lively, max_batch=3, precision=precision, mapped_points=option)
        assert det.executor.pipeline.bufs.mapped_points is option
        got = det.detect_batch(clouds) + [det.detect(c) for c in clouds[:2]]
        with det.input_buffer(len(clouds[0])) as buf:
            buf[:] = clouds[0]
            got.append(det.detect(buf))
        runs[option] = got
        det.close()
    for option in (True, None):
        for a, b in zip(runs[False], runs[option]):
            assert a.num_points == b.num_points and a.num_pillars == b.num_pillars
            assert_same_boxes(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_mapped_output_gives_the_same_results(torch_cuda, kitti_config, lively, kitti_frames, precision):
    # DeviceOptions.mapped_output: no device-to-host copy in the graph, the post-processor's last pass writes the
    # pinned rows (with the voxelizer's counters); every box and count must be the same as copying (False), batch 1,
    # full and partial batches, per-lane and batched post-processing
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:5]]
    runs = {}
    for option, batched in ((False, False), (True, False), (None, False), (True, True)):
        det = gpu_detector(kitti_config, lively, max_batch=3, precision=precision, mapped_output=option, batched_post=batched)
        assert det.executor.pipeline.bufs.mapped_output is option
        got = det.detect_batch(clouds) + [det.detect(c) for c in clouds[:3]]
        runs[option, batched] = got
        det.close()
    assert len({len(r.boxes) for r in runs[False, False]}) > 1  # frames with more boxes before ones with fewer
    for key in ((True, False), (None, False), (True, True)):
        for a, b in zip(runs[False, False], runs[key]):
            assert (a.num_points, a.num_pillars, a.num_dropped_pillars, a.num_dropped_points) == \
                (b.num_points, b.num_pillars, b.num_dropped_pillars, b.num_dropped_points)
            assert_same_boxes(a, b)


@pytest.mark.gpu
def test_input_buffer_grows_on_a_thread_that_ran_no_frame(torch_cuda, kitti_config, lively, kitti_frames):
    # a ROS callback thread whose first call is input_buffer() beyond the rows: they grow there (their mapped address
    # is a driver call that needs the GPU's context current on that thread), and the frame gives the same boxes
    import threading

    cloud = np.fromfile(kitti_frames[0], dtype=np.float32).reshape(-1, 4)
    ref = gpu_detector(kitti_config, lively)
    want = ref.detect(cloud)
    ref.close()
    det = gpu_detector(kitti_config, lively, max_points=4096)
    assert det.executor.pipeline.bufs.capacity < len(cloud)
    out = {}

    def work():
        try:
            with det.input_buffer(len(cloud)) as buf:
                buf[:] = cloud
                out["got"] = det.detect(buf)
        except Exception as exc:  # noqa: BLE001 - reported below
            out["error"] = exc

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert "error" not in out, out.get("error")
    assert det.executor.pipeline.bufs.capacity >= len(cloud)
    assert_same_boxes(want, out["got"])
    det.close()


@pytest.mark.gpu
@pytest.mark.parametrize("max_batch", [1, 3])
def test_input_buffer_is_the_staging_row_and_gives_the_same_boxes(torch_cuda, kitti_config, lively, kitti_frames, max_batch):
    # written in place, a single frame skips the staging copy; in a batch (one group, or several groups and so both
    # pipelines) the row is copied out before any lane is written
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:3]]
    det = gpu_detector(kitti_config, lively, max_batch=max_batch)
    want = [det.detect(c) for c in clouds]
    rows = det.executor.pipeline.bufs
    for c, w in zip(clouds, want):
        with det.input_buffer(len(c)) as buf:
            assert rows.holds(buf) and buf.__array_interface__["data"][0] == rows.lane_row(0, 1).__array_interface__["data"][0]
            buf[:] = c
            got = det.detect(buf)
        np.testing.assert_array_equal(got.boxes, w.boxes)
        assert got.num_points == w.num_points
    with det.input_buffer(len(clouds[2])) as buf:
        buf[:] = clouds[2]
        batch = det.detect_batch([clouds[0], clouds[1], buf])
    for got, w in zip(batch, want):
        np.testing.assert_allclose(got.boxes, w.boxes, atol=1e-4)
    with det.input_buffer(200000) as big:  # beyond the buffer: it grows
        assert big.shape == (200000, 4) and rows is det.executor.pipeline.bufs
    det.close()


@pytest.mark.gpu
def test_cudnn_autotune_finds_the_same_boxes_and_restores_the_flags(torch_cuda, kitti_config, lively, kitti_frames):
    # cuDNN's timed engine choice changes which kernels the graph holds, not what they compute (fp16 rounding aside)
    clouds = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:3]]
    before = (torch_cuda.backends.cudnn.benchmark, torch_cuda.backends.cudnn.benchmark_limit)
    plain = gpu_detector(kitti_config, lively, precision="fp16")
    tuned = gpu_detector(kitti_config, lively, precision="fp16", cudnn_autotune=True)
    rates = []
    for pts in clouds:
        want, got = plain.detect(pts), tuned.detect(pts)
        assert got.num_pillars == want.num_pillars and len(want) > 0
        rates.append(match_detections(select_above(want, 0.3), got, 0.9).recall)
    assert np.mean(rates) >= 0.95, rates
    assert (torch_cuda.backends.cudnn.benchmark, torch_cuda.backends.cudnn.benchmark_limit) == before
    plain.close(), tuned.close()


@pytest.mark.gpu
def test_other_config_and_360_cloud(torch_cuda, example_config):
    from pointpillars_trt.network import create_backend
    from pointpillars_trt.detector import Detector
    from tests.helpers import lively_state_dict

    sd = lively_state_dict(example_config)
    cpu = Detector.from_backend(example_config, create_backend("torch", cfg=example_config, state_dict=sd))
    det = gpu_detector(example_config, sd)
    pts = random_cloud(example_config, 15000, seed=5)
    want, got = cpu.detect(pts), det.detect(pts)
    assert got.num_pillars == want.num_pillars and len(got) > 0
    assert match_detections(select_above(want, 0.3), got, 0.99).recall >= 0.98
    det.close()


@pytest.mark.gpu
def test_point_buffer_policies_and_bad_frames(torch_cuda, kitti_config, lively):
    from pointpillars_trt.errors import PillarOverflowError, PointCloudError

    small = gpu_detector(kitti_config, lively, max_points=1000, on_points_overflow="error")
    with pytest.raises(PointCloudError, match="exceed the GPU pipeline's point buffer"):
        small.detect(random_cloud(kitti_config, 20000, seed=1))
    grow = gpu_detector(kitti_config, lively, max_points=1000)
    out = grow.detect(random_cloud(kitti_config, 40000, seed=1))
    assert out.num_points == 40000 and grow.executor.pipeline.bufs.capacity >= 40000
    from pointpillars_trt.detector import EmptyFrameWarning

    with pytest.warns(EmptyFrameWarning, match="no point lies inside"):
        assert len(grow.detect(np.array([[500.0, 0, 0, 0]], np.float32))) == 0
    tight = gpu_detector(kitti_config.replace(voxel={"max_pillars": 500}), lively, on_overflow="error")
    with pytest.raises(PillarOverflowError, match="exceed the maximum 500"):
        tight.detect(random_cloud(kitti_config, 20000, seed=2))
    for d in (small, grow, tight):
        d.close()


@pytest.mark.gpu
def test_graph_launched_through_the_driver_equals_torch_replay(torch_cuda, kitti_config, lively, kitti_frames):
    """The graph path replays through cuGraphLaunch (torch >= 2.8 exposes the executable graph); the
    same captured graph replayed by torch gives bit-identical rows."""
    from pointpillars_trt.cuda.graph_launch import GraphLaunch
    from pointpillars_trt.executors.device import TorchGraphLaunch

    det = gpu_detector(kitti_config, lively, use_graph=True, max_batch=1, precision="fp16")
    pts = [np.fromfile(p, dtype=np.float32).reshape(-1, 4) for p in kitti_frames[:3]]
    first = [det.detect(p) for p in pts]
    pipe = det.executor.pipeline
    launchers = list(pipe._graphs.values())
    assert launchers and all(isinstance(g, GraphLaunch) for g in launchers)
    for key, g in list(pipe._graphs.items()):  # the same graphs, replayed by torch
        pipe._graphs[key] = TorchGraphLaunch(g.graph, pipe.device)
    again = [det.detect(p) for p in pts]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.timings_ms["gpu"] > 0 and b.timings_ms["gpu"] > 0
    det.close()
