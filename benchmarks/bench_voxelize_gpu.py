#!/usr/bin/env python3
"""Our unfused GPU voxelization, captured as one CUDA graph and replayed, timed by CUDA events.

    python3 benchmarks/bench_voxelize_gpu.py [--frames DIR] [--synthetic-360 3] [--config NAME]
        [--replays 2000] [--chunk 200] [--spin-ms 20] [--profile-reps 50] [--save-frames DIR] [--json OUT]

What runs: :class:`~pointpillars_trt.voxelize.cuda.CudaVoxelizer`'s ``enqueue`` (points -> pillars,
decorated features, cells), the stage before the PFN in the unfused device network
(``network/device.py``'s ``_UnfusedPFN.voxelize``), on the real FOV frames (every ``*.bin`` under
``--frames``, default ``../shared/data/kitti_frames``, as ``benchmark_gpu.py`` loads them) and on
``--synthetic-360`` generated 360-degree frames. Points are uploaded once per frame, outside the
timing. Three captures of it (:data:`VARIANTS`):

* ``pdl/device-count``: as the device executor runs it: point count read on the device, grids sized
  for the point bucket (``point_bucket(N)``), one graph per bucket, programmatic dependent launches;
* ``no-pdl/device-count``: the same without PDL (per-kernel CUPTI times are only honest here: with PDL
  a kernel's time includes its wait for the one before);
* ``pdl/host-count``: grids sized for the frame's own N, one graph per frame (as NVIDIA's
  ``Voxelization::forward`` is captured: its point count is a host value).

Timed region, per replay: one ``cuGraphLaunch`` of the captured graph (4 kernels: cells, number,
bucket, decorate; the cell tables are restored by the last kernel, so no memset)
between two CUDA events on the same stream. Replays go in chunks of ``--chunk`` behind a spin kernel
(``torch.cuda._sleep``) so that the GPU runs them back to back; ``gpu_ahead_chunks`` counts the chunks
where the host finished enqueueing before the spin ended. ``back_to_back_ms``: first start to last
stop of a chunk, per replay. Per kernel (``--profile-reps``): ``benchmark_gpu.kernel_profile``
(CUPTI through torch.profiler) on the first frame of each group.

Output checked after the timing, per frame and capture: identical to the CPU reference
(:class:`~pointpillars_trt.voxelize.NumbaVoxelizer`, bit for bit) -- see :data:`OUTPUT` for what each
side produces. ``--save-frames DIR`` writes the 360-degree frames as KITTI ``.bin`` files (needs no
GPU), so a peer implementation can be fed the same frames. Exit status 2 with one log line when there
are no frames or no CUDA GPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
log = logging.getLogger("bench_voxelize_gpu")

from benchmarks.benchmark_gpu import DEFAULT_FRAMES, gpu_machine, kernel_profile, load_frame_groups  # noqa: E402  (after sys.path)
from pointpillars_trt.compare.runs import summarize  # noqa: E402

OUTPUT = {
    "ours": "float32 features [max_pillars, M, 10] (x, y, z, r; xyz minus the pillar's point mean; xyz minus the pillar "
            "centre), int32 num_points [max_pillars], int32 coords (ix, iy) [max_pillars, 2], 12 int32 counters (pillar "
            "count, drops, out of range, NaN/inf rows, intensity range); pillars in first-seen order, the first M points "
            "of each in input order: deterministic and identical to the CPU",
    "nvidia": "CUDA-PointPillars lidar-voxelization.cu: fp16 features [40000, 32, 10] (the same 10 channels), uint32 coords "
              "[40000, 4], uint32 num_points [40000], the pillar count; pillar order and which points of a full pillar are "
              "kept depend on atomics (nondeterministic); range check min <= v < max on x, y and z",
}


@dataclass(frozen=True)
class Variant:
    """One capture of our voxelizer: programmatic dependent launches on or off; the point count
    read on the device (grids sized for the point bucket, as the executor runs it) or given by the
    host (grids sized for the frame, one graph per frame)."""

    pdl: bool
    device_count: bool

    @property
    def name(self) -> str:
        return f"{'pdl' if self.pdl else 'no-pdl'}/{'device-count' if self.device_count else 'host-count'}"


VARIANTS = (Variant(True, True), Variant(False, True), Variant(True, False))


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--frames", type=Path, help=f"folder searched for *.bin (default {DEFAULT_FRAMES})")
    p.add_argument("--synthetic-360", type=int, default=3, help="generated 360-degree frames (~110k points)")
    p.add_argument("--config", help="config name or YAML (default: the KITTI 3-class config)")
    p.add_argument("--replays", type=positive_int, default=2000, help="timed graph replays per frame and capture")
    p.add_argument("--chunk", type=positive_int, default=200, help="replays enqueued behind one spin kernel")
    p.add_argument("--spin-ms", type=positive_int, default=20, help="spin kernel length before each chunk")
    p.add_argument("--profile-reps", type=int, default=50, help="replays under the CUPTI profiler (0: no per-kernel times)")
    p.add_argument("--save-frames", type=Path, help="write the 360-degree frames here as KITTI .bin files")
    p.add_argument("--json", type=Path, help="write the results here")
    return p.parse_args(argv)


def frame_groups(args: argparse.Namespace) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """``({"fov": [...], "360": [...]}, fov paths)``: float32 ``[N, 4]`` frames, empty groups left out."""
    root = args.frames or DEFAULT_FRAMES
    paths = [str(p) for p in sorted(root.rglob("*.bin"))] if root.is_dir() else []
    return load_frame_groups(args.frames, max(0, args.synthetic_360)), paths


def save_frames(frames: list[np.ndarray], folder: Path, prefix: str) -> list[Path]:
    """Write float32 ``[N, 4]`` frames as ``folder/{prefix}_{i:03d}.bin`` (KITTI layout); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, f in enumerate(frames):
        path = folder / f"{prefix}_{i:03d}.bin"
        np.ascontiguousarray(f, dtype=np.float32).tofile(path)
        out.append(path)
    return out


def same_pillars(got, want) -> bool:
    """Whether two :class:`~pointpillars_trt.voxelize.Pillars` are identical (features bit for bit)."""
    return (got.num_pillars == want.num_pillars and np.array_equal(got.coords, want.coords)
            and np.array_equal(got.num_points, want.num_points)
            and np.array_equal(got.features.view(np.uint32), want.features.view(np.uint32))
            and all(getattr(got, k) == getattr(want, k) for k in ("num_input", "num_out_of_range", "num_dropped_pillars",
                                                                   "num_dropped_points", "num_excess_points")))


class GraphedVoxelizer:
    """Our CUDA voxelizer on one torch stream, its inputs and outputs in torch buffers sized for
    ``max_points``; one captured graph per (variant, bucket or N), replayed through the driver."""

    def __init__(self, torch: Any, cfg, max_points: int) -> None:
        from pointpillars_trt.executors.buffers import point_bucket
        from pointpillars_trt.voxelize.cuda import CudaVoxelizer, TorchPillarBuffers

        self.torch, self.bucket_of = torch, point_bucket
        self.vox = CudaVoxelizer(cfg.voxel, point_bucket(max_points))
        self.out = TorchPillarBuffers.allocate(self.vox)
        self.points = torch.zeros((self.vox.max_points, 4), dtype=torch.float32, device="cuda")
        self.n_dev = torch.zeros(1, dtype=torch.int32, device="cuda")
        self.stream = torch.cuda.Stream()
        self.n = 0
        self._graphs: dict[tuple[Variant, int], Any] = {}

    def load(self, points: np.ndarray) -> None:
        """Upload one frame (synchronous; outside any timing)."""
        self.n = len(points)
        self.points[: self.n].copy_(self.torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)))
        self.n_dev.fill_(self.n)
        self.torch.cuda.synchronize()

    def _enqueue(self, v: Variant) -> None:
        o = self.out
        count = ({"num_points_ptr": self.n_dev.data_ptr(), "num_points_bound": self.bucket_of(self.n)} if v.device_count
                 else {"num_points": self.n})
        self.vox.enqueue(self.points.data_ptr(), self.stream.cuda_stream, features_ptr=o.features.data_ptr(),
                         num_points_out_ptr=o.num_points.data_ptr(), coords_ptr=o.coords.data_ptr(),
                         counters_ptr=o.counters.data_ptr(), **count)

    def launcher(self, v: Variant) -> Callable[[], None]:
        """Enqueue one replay of the frame's graph for ``v`` (captured on first use) on the stream."""
        from pointpillars_trt.cuda.bindings import bindings, check
        from pointpillars_trt.cuda.graph_launch import raw_graph_exec
        from pointpillars_trt.cuda.nvrtc import set_programmatic_launch

        torch = self.torch
        key = (v, self.bucket_of(self.n) if v.device_count else self.n)
        if key not in self._graphs:
            old = set_programmatic_launch(v.pdl)
            try:
                with torch.cuda.stream(self.stream):
                    self._enqueue(v)  # outside the capture: the first frame's cell-table memset, module loads
                self.stream.synchronize()
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, stream=self.stream, capture_error_mode="thread_local"):
                    self._enqueue(v)
            finally:
                set_programmatic_launch(old)
            torch.cuda.synchronize()
            self._graphs[key] = (g, raw_graph_exec(g))
        g, handle = self._graphs[key]
        if handle is None:  # a torch without raw_cuda_graph_exec: its replay (adds torch's RNG prologue)
            def replay() -> None:
                with torch.cuda.stream(self.stream):
                    g.replay()
            return replay
        drv = bindings()[0]
        exec_, stream = drv.CUgraphExec(int(handle)), drv.CUstream(self.stream.cuda_stream)
        return lambda: check(drv.cuGraphLaunch(exec_, stream), "cuGraphLaunch")

    def pillars(self):
        """The CPU :class:`~pointpillars_trt.voxelize.Pillars` of the last replay."""
        self.stream.synchronize()
        return self.out.to_pillars()

    def free(self) -> None:
        self._graphs.clear()
        self.vox.free()


def spin_cycles(ms: float) -> int:
    """Clock cycles of ``ms`` milliseconds on device 0 (``CU_DEVICE_ATTRIBUTE_CLOCK_RATE``, kHz)."""
    from pointpillars_trt.cuda.bindings import bindings, check
    from pointpillars_trt.cuda.device import get_device

    drv = bindings()[0]
    khz = check(drv.cuDeviceGetAttribute(drv.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_CLOCK_RATE, get_device(0).handle),
                "cuDeviceGetAttribute")
    return int(ms * int(khz))


def time_replays(torch: Any, launch: Callable[[], None], stream: Any, replays: int, chunk: int, cycles: int) -> tuple[dict, list[float]]:
    """Per-replay CUDA-event times (ms) of ``replays`` launches, in chunks behind a spin kernel:
    ``(summarize statistics + back_to_back_ms, gpu_ahead_chunks, chunks; the times)``."""
    from pointpillars_trt.cuda.bindings import bindings
    from pointpillars_trt.cuda.memory import Event

    drv = bindings()[0]
    chunk = min(chunk, replays)
    starts, stops, spun = [Event() for _ in range(chunk)], [Event() for _ in range(chunk)], Event()
    raw = stream.cuda_stream
    times: list[float] = []
    span = 0.0
    ahead = chunks = 0
    for done in range(0, replays, chunk):
        n = min(chunk, replays - done)
        with torch.cuda.stream(stream):
            torch.cuda._sleep(cycles)
        spun.record(raw)
        for i in range(n):
            starts[i].record(raw)
            launch()
            stops[i].record(raw)
        ahead += drv.cuEventQuery(spun._live())[0] == drv.CUresult.CUDA_ERROR_NOT_READY
        chunks += 1
        stream.synchronize()
        times += [starts[i].elapsed_ms(stops[i]) for i in range(n)]
        span += starts[0].elapsed_ms(stops[n - 1])
    for e in (*starts, *stops, spun):
        e.free()
    return {**summarize(times), "back_to_back_ms": span / replays, "gpu_ahead_chunks": ahead, "chunks": chunks}, times


def bench_group(torch: Any, gv: GraphedVoxelizer, frames: list[np.ndarray], names: list[str], cpu, args, cycles: int) -> dict:
    """Every capture of :data:`VARIANTS` on every frame of one group: per-frame rows, a summary
    per variant (pooled replays, median of frame medians) and, for the first frame, per-kernel times."""
    rows, pooled = [], {v.name: [] for v in VARIANTS}
    kernels: dict[str, Any] = {}
    for i, (pts, name) in enumerate(zip(frames, names)):
        gv.load(pts)
        want = cpu(pts)
        row = {"frame": name, "points": len(pts), "pillars": want.num_pillars, "variants": {}}
        for v in VARIANTS:
            launch = gv.launcher(v)
            for _ in range(10):
                launch()
            t, times = time_replays(torch, launch, gv.stream, args.replays, args.chunk, cycles)
            pooled[v.name] += times
            t["identical_to_cpu"] = same_pillars(gv.pillars(), want)
            row["variants"][v.name] = t
            if i == 0 and args.profile_reps > 0:
                kernels[v.name] = kernel_profile(torch, lambda _frames, f=launch: f(), [pts], args.profile_reps)
        rows.append(row)
    summary = {}
    for v in VARIANTS:
        per = [r["variants"][v.name] for r in rows]
        summary[v.name] = {"pooled_ms": summarize(pooled[v.name]), "median_of_frame_medians_ms": float(np.median([p["median"] for p in per])),
                           "back_to_back_ms": float(np.mean([p["back_to_back_ms"] for p in per])),
                           "identical_to_cpu": all(p["identical_to_cpu"] for p in per),
                           "gpu_ahead_chunks": sum(p["gpu_ahead_chunks"] for p in per), "chunks": sum(p["chunks"] for p in per)}
    return {"frames": rows, "summary": summary, "kernels_ms_per_frame": kernels}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    from pointpillars_trt.config import load_config
    from pointpillars_trt.errors import PointPillarsError

    try:
        cfg = load_config(args.config)
    except PointPillarsError as exc:
        log.error("%s", exc)
        return 2
    groups, fov_paths = frame_groups(args)
    if not groups:
        log.error("no frames: no *.bin under %s and --synthetic-360 0", args.frames or DEFAULT_FRAMES)
        return 2
    names = {"fov": fov_paths, "360": [f"synthetic-360/{i:03d}" for i in range(len(groups.get("360", ())))]}
    if args.save_frames and "360" in groups:
        names["360"] = [str(p) for p in save_frames(groups["360"], args.save_frames, "synthetic_360")]
        log.info("wrote %d 360-degree frames to %s", len(names["360"]), args.save_frames)
    import torch

    from pointpillars_trt.cuda.device import cuda_unavailable_reason

    reason = cuda_unavailable_reason(0) or (None if torch.cuda.is_available() else "torch sees no CUDA GPU")
    if reason:
        log.error("no CUDA GPU: %s", reason)
        return 2
    from pointpillars_trt.voxelize import NumbaVoxelizer

    gv = GraphedVoxelizer(torch, cfg, max(len(f) for g in groups.values() for f in g))
    cpu, cycles = NumbaVoxelizer(cfg.voxel), spin_cycles(args.spin_ms)
    results = {}
    try:
        for gname, frames in groups.items():
            results[gname] = bench_group(torch, gv, frames, names[gname], cpu, args, cycles)
            for vname, s in results[gname]["summary"].items():
                log.info("%-4s %-20s median %.4f ms p90 %.4f | frame medians %.4f | back to back %.4f | identical to CPU: %s | GPU ahead %d/%d",
                         gname, vname, s["pooled_ms"]["median"], s["pooled_ms"]["p90"], s["median_of_frame_medians_ms"],
                         s["back_to_back_ms"], s["identical_to_cpu"], s["gpu_ahead_chunks"], s["chunks"])
    finally:
        gv.free()
    report = {"machine": gpu_machine(torch, argv), "config": cfg.name, "frames": names, "output": OUTPUT,
              "variants": {v.name: {"pdl": v.pdl, "device_count": v.device_count} for v in VARIANTS},
              "replays_per_frame": args.replays, "chunk": args.chunk, "spin_ms": args.spin_ms, "results": results,
              "identical_to_cpu": all(s["identical_to_cpu"] for r in results.values() for s in r["summary"].values())}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if not report["identical_to_cpu"]:
        log.error("the GPU output differed from the CPU reference on some frame (see identical_to_cpu in the JSON)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
