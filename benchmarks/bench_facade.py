#!/usr/bin/env python3
"""What the Detector facade costs per frame on the host, apart from any executor: the uncontended
lock that makes a Detector thread-safe, the whole facade (validation, intensity check, lock,
result assembly) around an executor that returns a canned result at once, and the device
executor's whole host path with the GPU left out.

    python benchmarks/bench_facade.py [--frame FILE.bin] [--repeat 2000]

The last row runs the real per-frame code of ``Detector.detect`` -> ``DeviceExecutor.run`` ->
``DevicePipeline.submit`` / ``collect`` -> the packed row's unpacking, on plain numpy buffers in
place of the pinned ones, with a graph launcher whose ``launch`` / ``wait`` return at once (the
three driver calls, ~1-2 us on an H200 host, are left out) and a packed row holding 40 boxes: what
the GPU path's host overhead is on this CPU, less the driver calls; and the same for a cloud the caller
wrote into ``Detector.input_buffer`` (no staging copy). Runs on a machine without CUDA.

Prints the median of 7 timeit runs per item, in microseconds.
"""

from __future__ import annotations

import argparse
import sys
import threading
import timeit
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FRAME = REPO.parent / "shared" / "data" / "kitti_frames" / "cuda_pointpillars" / "velodyne_reduced" / "000000.bin"
STUB_BOXES = 40  # boxes in the stub's packed row (a FOV frame of the demo model gives 20-60)


def null_detector():
    from pointpillars_trt.config import load_config
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.executors.base import Executor, FrameResult, PillarCounts

    class Canned(Executor):
        max_pillars, description = 12000, "canned"

        def run(self, clouds, score_threshold=None):
            return [FrameResult(np.zeros((50, 7), np.float32), np.zeros(50, np.float32), np.zeros(50, np.int64),
                                PillarCounts(len(c), 5000, 5000), {"gpu": 0.5}) for c in clouds]

    return Detector(load_config(), Canned())


class NoGpuLaunch:
    """A graph launcher (``GraphLaunch``'s interface) that launches nothing."""

    def launch(self) -> None:
        pass

    def wait(self) -> None:
        pass

    def elapsed_ms(self) -> float:
        return 0.5

    def free(self) -> None:
        pass


class NoDevice:
    def make_current(self) -> None:
        pass


def stub_packed_row(layout, num_points: int, num_boxes: int = STUB_BOXES) -> np.ndarray:
    """A packed output row as the post-processor and voxelizer leave it: ``num_boxes`` finite boxes,
    5000 pillars, no NaN/inf row, intensities in [0, 0.99] (order-preserving int32 keys)."""
    rng = np.random.default_rng(0)
    row = np.zeros(layout.words, np.int32)
    f = row.view(np.float32)
    f[layout.boxes: layout.boxes + 7 * num_boxes] = rng.uniform(0.5, 40, 7 * num_boxes)
    f[layout.scores: layout.scores + num_boxes] = np.sort(rng.uniform(0.1, 1, num_boxes))[::-1]
    row[layout.labels: layout.labels + num_boxes] = rng.integers(0, 3, num_boxes)
    row[layout.count] = num_boxes
    keys = np.array([0.0, 0.99], np.float32).view(np.int32)  # non-negative floats: the key is the bit pattern
    row[layout.counters: layout.counters + 11] = [5000, 5000, 300, 0, 0, 0, num_points, 0, 0, *keys]
    return row


def stub_device_detector(num_points: int):
    """A Detector on the device executor's real host code, GPU left out (see the module docstring)."""
    from pointpillars_trt.config import load_config
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.executors.buffers import FrameBuffers, PackedLayout, PackedRows, StagingRows, point_bucket
    from pointpillars_trt.executors.device import DeviceExecutor, DevicePipeline
    from pointpillars_trt.options import DeviceOptions

    cfg = load_config()
    options = DeviceOptions(max_batch=1)
    bufs = object.__new__(FrameBuffers)
    bufs.batch, bufs.max_pillars, bufs.layout = 1, cfg.voxel.max_pillars, PackedLayout(cfg.postprocess.nms_post_max)
    bufs.capacity = point_bucket(options.max_points)
    bufs.points_host_np = np.zeros((1, bufs.capacity, 4), np.float32)
    bufs.n_host_np = np.zeros(1, np.int32)
    bufs.copier = None  # one thread stages (the default on a machine of fewer than 8 cores)
    bufs.staging = StagingRows(bufs.points_host_np, bufs.n_host_np, None)
    bufs.packed_host_np = stub_packed_row(bufs.layout, num_points)[None].copy()
    bufs.rows = PackedRows(bufs.layout, bufs.packed_host_np)
    pipe = object.__new__(DevicePipeline)
    pipe.cfg, pipe.options, pipe.bufs, pipe.cuda_device = cfg, options, bufs, NoDevice()
    pipe.max_batch, pipe.max_pillars, pipe.use_graph, pipe._pending = 1, bufs.max_pillars, True, None
    pipe._graphs = {(1, point_bucket(num_points)): NoGpuLaunch()}
    executor = object.__new__(DeviceExecutor)
    executor.config, executor.options, executor.device, executor.pipeline = cfg, options, "no GPU", pipe
    executor.max_pillars, executor.max_batch, executor._second, executor._thread = pipe.max_pillars, 1, None, threading.local()
    return Detector(cfg, executor)


def median_us(fn, repeat: int) -> float:
    return float(np.median(timeit.repeat(fn, number=repeat, repeat=7))) / repeat * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frame", type=Path, default=FRAME)
    p.add_argument("--repeat", type=int, default=2000)
    args = p.parse_args(argv)
    from pointpillars_trt.io.pointcloud import validate_points

    pts = np.fromfile(args.frame, dtype=np.float32).reshape(-1, 4)
    lock, det, stub = threading.Lock(), null_detector(), stub_device_detector(len(pts))

    def locked():
        with lock:
            pass

    rows = {"uncontended lock (with: pass)": median_us(locked, args.repeat * 10),
            "validate_points": median_us(lambda: validate_points(pts, "x"), args.repeat),
            f"facade detect, canned executor ({len(pts)} points)": median_us(lambda: det.detect(pts), args.repeat),
            "device executor's host path, GPU left out": median_us(lambda: stub.detect(pts), args.repeat)}
    with stub.input_buffer(len(pts)) as buf:  # written once: detect of the row itself skips the staging copy
        buf[:] = pts
        rows["the same, the cloud written into input_buffer()"] = median_us(lambda: stub.detect(buf), args.repeat)
    for name, us in rows.items():
        print(f"{name:<48} {us:8.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
