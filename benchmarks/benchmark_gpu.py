#!/usr/bin/env python3
"""GPU benchmark: the plain eager PyTorch pipeline against our whole-frame GPU pipeline, same run.

    python benchmarks/benchmark_gpu.py [--ckpt FILE] [--frames DIR] [--synthetic-360 3] [--iters 20]
                                  [--batch 8 16] [--json out/bench_gpu.json]
    python benchmarks/benchmark.py --stage gpu ...          # the same, through the main benchmark tool

Rows (each on the real FOV frames and on synthetic 360-degree frames of ~110k points):

* ``eager``: ``Detector`` with the ``torch`` backend on ``cuda`` (numba voxelization on the CPU,
  torch PFN / index_put scatter / RPN, numpy post-processing): the plain eager PyTorch pipeline;
* ``gpu/{fp32,fp16}/{graph,eager}``: ``Detector`` on the device executor, batch 1;
  without a graph every stage is timed with CUDA events;
* ``gpu/{fp32,fp16}/graph/batchB``: ``detect_batch`` with B frames per replay (offline throughput);
* ``gpu/fp16/graph/pfn-torch``: the same with the torch (cuBLAS) PFN on all ``max_pillars`` rows;
* ``gpu/fp16/graph/copy-points`` and ``gpu/fp16/graph/mapped-points/batchB``: the batch-1 row with the points copied
  host to device, and the largest batch with them read by the voxelizer from the pinned rows
  (``DeviceOptions.mapped_points``; the default reads them for single frames and copies batches);
* ``gpu/fp16/graph/copy-output`` and ``gpu/fp16/graph/mapped-output/batchB``: the same for the results
  (``DeviceOptions.mapped_output``: copied device to host, or written by the last post-processing pass into the
  pinned rows);
* ``gpu/fp16/graph/pdl`` and ``gpu/fp16/graph/pdl/batchB``: the fp16 graph row and the largest batch with
  programmatic dependent launches turned on (``set_programmatic_launch(True)``; off by default since 2026-12-03);
* ``gpu/fp16/graph/stagingT`` and ``gpu/fp16/graph/stagingT/batchB``: the fp16 graph row and the largest batch
  with ``staging_threads=T`` (:data:`STAGING_THREADS`, 1: the caller's thread alone, against the default's
  ``min(4, cores // 4)`` threads);
* ``gpu/fp16/graph/cudnn-autotune`` and ``.../cudnn-autotune/batchB``: the same two with ``cudnn_autotune=True``
  (cuDNN times every engine of each convolution before the capture);
* ``gpu/fp16/graph/rpn-FORM``: the fp16 graph row with another RPN form (:func:`rpn_forms`), among
  them ``split-head`` (cuDNN upsampling, the head per upsampling branch in float32 products: the
  default before the fused neck, also as ``rpn-split-head/batchB``) and ``concat-head`` (the head
  over the concatenated map) for the A/B;
* ``fp16_vs_fp32/GROUP`` and ``fp16_vs_fp32/GROUP/rpn-{split,concat}-head``: the share of FP32 boxes
  FP16 finds again, with the default RPN, the per-branch head and the head over the concatenated map.

Rows of device detectors name the head their RPN ran (``rpn_head``: ``fused``, ``split`` or ``concat``).

Each row: host-to-host latency per frame (``total``) and GPU time (``gpu``, CUDA events) with
median / p90 / p99, frames/s, peak torch memory and device memory in use; per stage in eager
(non-graph) rows. Profiled rows add ``kernel_ms_per_frame`` (CUPTI kernel sums per stage) and in it
``idle_per_call`` (:func:`gpu_idle`: the GPU's span, busy and idle time per call and the largest
idle stretches between two activities; with programmatic launches a kernel waiting for its
predecessor counts as busy, so the default rows, without them, show the launch gaps). Also measured: the two ceilings of the device (device-to-device copy bandwidth
and float16 matmul rate) for the floor analysis in docs/PERFORMANCE.md. Writes JSON with the GPU,
driver, date and command. Keeps the whole run to a few minutes on an H100.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_FRAMES = REPO.parent / "shared" / "data" / "kitti_frames"
log = logging.getLogger("benchmark_gpu")

from pointpillars_trt.compare.runs import summarize  # noqa: E402  (after the sys.path line above)


def load_frame_groups(frames_dir: Path | None, n360: int) -> dict[str, list[np.ndarray]]:
    from pointpillars_trt.io.pointcloud import load_points
    from pointpillars_trt.synthetic import generate_frame

    root = frames_dir or DEFAULT_FRAMES
    paths = sorted(root.rglob("*.bin")) if root.is_dir() else []
    groups = {"fov": [load_points(p) for p in paths], "360": [generate_frame(0, i).points for i in range(n360)]}
    return {k: v for k, v in groups.items() if v}


def ceilings(torch) -> dict[str, float]:
    """Device-to-device copy bandwidth (GB/s, bytes read + written) and float16 matmul TFLOP/s."""
    dev = torch.device("cuda")
    src = torch.empty(1 << 28, dtype=torch.float32, device=dev)  # 1 GiB
    dst = torch.empty_like(src)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        dst.copy_(src)
    a.record()
    for _ in range(10):
        dst.copy_(src)
    b.record()
    b.synchronize()
    copy_gbs = 2 * src.numel() * 4 * 10 / (a.elapsed_time(b) * 1e-3) / 1e9
    del src, dst
    n = 8192
    x = torch.randn(n, n, dtype=torch.float16, device=dev)
    y = torch.randn(n, n, dtype=torch.float16, device=dev)
    for _ in range(3):
        x @ y
    a.record()
    for _ in range(20):
        x @ y
    b.record()
    b.synchronize()
    tflops = 2 * n**3 * 20 / (a.elapsed_time(b) * 1e-3) / 1e12
    return {"d2d_copy_GBps": copy_gbs, "fp16_matmul_TFLOPs": tflops}


def _mem(torch) -> dict[str, float]:
    free, total = torch.cuda.mem_get_info()
    return {"torch_peak_MiB": torch.cuda.max_memory_allocated() / 2**20, "device_used_MiB": (total - free) / 2**20}


def run_row(torch, detect, frames: list[np.ndarray], iters: int, per_call: int = 1, group: int | None = None) -> dict:
    """``detect(list_of_frames) -> list[Detections]``; ``per_call`` frames per call, in groups of
    ``group`` frames (``per_call`` by default) whose ``timings_ms`` cover the group."""
    group = group or per_call
    torch.cuda.reset_peak_memory_stats()
    calls = [frames[i: i + per_call] for i in range(0, len(frames), per_call)] if per_call > 1 else [[f] for f in frames]
    if per_call > 1:  # full batches only: repeat frames to fill
        pool = (frames * per_call)[: per_call * max(1, -(-len(frames) // per_call))]
        calls = [pool[i: i + per_call] for i in range(0, len(pool), per_call)]
    for c in calls[:2]:
        detect(c)  # warm-up: graph capture, cuDNN choice, numba JIT
    stages: dict[str, list[float]] = {}
    host: list[float] = []
    t_all = time.perf_counter()
    n_frames = 0
    for _ in range(iters):
        for c in calls:
            t = time.perf_counter()
            out = detect(c)
            host.append((time.perf_counter() - t) * 1e3 / len(c))
            n_frames += len(c)
            for k, v in out[0].timings_ms.items():
                stages.setdefault(k, []).append(v / (min(group, len(c)) if k in ("gpu", "total") else 1))
    wall = time.perf_counter() - t_all
    row = {"host_ms_per_frame": summarize(host), "frames_per_s": n_frames / wall, "stages_ms": {k: summarize(v) for k, v in stages.items()},
           "points": int(np.mean([len(f) for f in frames])), "boxes": int(np.mean([len(d) for d in detect(calls[0])]))}
    row.update(_mem(torch))
    return row


def rpn_forms() -> dict:
    """The RPN forms of the ablation (the shipped one is ``InferenceRPN()``: on CUDA in float16 with
    Triton its upsampling and head in one Triton kernel): the head per branch (cuDNN upsampling,
    cuBLAS products; the default before 2026-12-03) and the head over the concatenated map, each
    named explicitly; upsampling as transposed convolutions + ReLU + cat; BatchNorm folded only; the
    module as trained."""
    from pointpillars_trt.model.inference_rpn import InferenceRPN, fold_batchnorm

    return {"split-head": lambda m: InferenceRPN(m, split_head=True, fused_neck=False),
            "concat-head": lambda m: InferenceRPN(m, split_head=False, fused_neck=False),
            "fused-deconv": lambda m: InferenceRPN(m, upsample="deconv"), "folded": fold_batchnorm, "plain": lambda m: m}


def rpn_head_of(det) -> str:
    """The head a device detector's RPN runs: ``fused`` (upsampling and head in one Triton kernel),
    ``split`` (per upsampling branch), ``concat`` (over the concatenated map), or ``n/a`` for a form
    that is not an ``InferenceRPN``; asked of the module
    itself on the network's own canvas (so a fallback, e.g. a torch without float32 GEMM outputs,
    shows)."""
    import torch

    from pointpillars_trt.model.inference_rpn import InferenceRPN

    net = getattr(getattr(det.executor, "pipeline", None), "network", None)
    rpn, canvas = getattr(net, "rpn", None), getattr(net, "canvas", None)
    if not isinstance(rpn, InferenceRPN) or canvas is None:
        return "n/a"
    with torch.inference_mode():
        return rpn.head_form(canvas[:1])


RPN_FORMS = rpn_forms()
STAGING_THREADS = 1  # the staging A/B rows: one thread against the default (min(4, cores // 4))


def device_detector(cfg, state, rpn_form=None, source=None, **options):
    """A Detector on the device executor; ``rpn_form`` swaps the fused network's RPN module (ablation)."""
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.executors.device import DeviceExecutor, torch_cuda_device
    from pointpillars_trt.network.device import FusedTorchNetwork
    from pointpillars_trt.options import Backend, DetectorOptions, DeviceOptions, parse_options

    if rpn_form is None:
        return Detector.from_weights(cfg, state, backend=Backend.GPU, source=source, **options)
    facade = parse_options(DetectorOptions, {k: options.pop(k) for k in ("on_overflow", "nonfinite") if k in options}, "bench")
    opts = parse_options(DeviceOptions, options, "bench")
    dev = torch_cuda_device(opts.device)
    make = lambda: FusedTorchNetwork(cfg, state, dev, precision=opts.precision, rpn_form=rpn_form)  # noqa: E731
    return Detector(cfg, DeviceExecutor(cfg, make, opts, dev), options=facade, source=source)


def fp16_vs_fp32(make, cfg, state, frames: list[np.ndarray], max_points: int, rpn_form=None) -> dict:
    """The issue's accuracy check on the benchmarked model: the share of FP32 boxes with score > 0.3
    that FP16 (with ``rpn_form``'s RPN when given) finds again (same label, BEV IoU > 0.9), over all
    frames and per frame."""
    from types import SimpleNamespace

    from pointpillars_trt.compare.detections import match_detections

    dets = {"fp32": make(cfg, state, precision="fp32", max_points=max_points, max_batch=1),
            "fp16": make(cfg, state, rpn_form=rpn_form, precision="fp16", max_points=max_points, max_batch=1)}
    heads = {k: rpn_head_of(d) for k, d in dets.items()}
    matched = total = 0
    per_frame = []
    for f in frames:
        r, g = dets["fp32"].detect(f), dets["fp16"].detect(f)
        keep = r.scores > 0.3
        m = match_detections(SimpleNamespace(boxes=r.boxes[keep], scores=r.scores[keep], labels=r.labels[keep]), g, 0.9)
        matched, total = matched + m.n_matched, total + m.n_ref
        per_frame.append(m.recall)
    for d in dets.values():
        d.close()
    return {"kept": matched / total if total else 1.0, "fp32_boxes": total, "min_frame": float(min(per_frame)),
            "per_frame": [float(v) for v in per_frame], "rpn_head": heads["fp16"], "fp32_rpn_head": heads["fp32"]}


STAGE_OF_KERNEL = (("pp_vox_", "voxelize+pfn"), ("pp_post_", "postprocess"), ("pp_scatter", "scatter"), ("pp_clear", "scatter"),
                   ("memcpy htod", "h2d"), ("memcpy dtoh", "d2h"), ("memset", "memset"))


TIMELINE_MAX = 64  # activities of gpu_idle's timeline (a batch of 16 has ~290 per call)


def gpu_idle(activities: list[tuple[str, float, float]], calls: int, top: int = 8) -> dict | None:
    """Where the GPU waits inside each call, from its activities ``(name, start_us, end_us)`` (kernels,
    copies, memsets; any order, streams may overlap) over ``calls`` calls with the same number of
    activities each (else None: they cannot be told apart). Per call: ``span`` from the first start to
    the last end, ``busy`` (the union of the intervals) and ``idle = span - busy``, as medians in us; and
    ``gaps``: the ``top`` largest idle stretches by the pair of activities around them (the one that
    ended last before the gap, then the one that starts it; names cut to 48 characters), the median
    over the calls of each pair's idle us per call, largest first; ``timeline``: the first call's activities in
    order, ``[name (40 characters), start us after the call's first start, length us]`` (the first
    :data:`TIMELINE_MAX`)."""
    if calls < 1 or not activities or len(activities) % calls:
        return None
    acts = sorted(activities, key=lambda a: (a[1], a[2]))
    per = len(acts) // calls
    spans, busies, pairs = [], [], {}
    for c in range(calls):
        chunk = acts[c * per:(c + 1) * per]
        start, end, last = chunk[0][1], chunk[0][2], chunk[0][0][:48]
        busy, mine = chunk[0][2] - chunk[0][1], {}
        for name, a, b in chunk[1:]:
            if a > end:  # idle from the latest end so far to this start
                key = f"{last} -> {name[:48]}"
                mine[key] = mine.get(key, 0.0) + a - end
            busy += max(0.0, b - max(a, end))
            if b > end:
                end, last = b, name[:48]
        spans.append(end - start)
        busies.append(busy)
        for key, us in mine.items():
            pairs.setdefault(key, []).append(us)
    med = lambda xs: float(np.median(xs))  # noqa: E731
    gaps = {k: med(v + [0.0] * (calls - len(v))) for k, v in pairs.items()}
    best = sorted(gaps.items(), key=lambda kv: -kv[1])[:top]
    first = acts[:per]
    timeline = [[name[:40], round(a - first[0][1], 1), round(b - a, 1)] for name, a, b in first[:TIMELINE_MAX]]
    return {"activities_per_call": per, "span_us": round(med(spans), 2), "busy_us": round(med(busies), 2),
            "idle_us": round(med([s - b for s, b in zip(spans, busies)]), 2), "gaps": {k: round(v, 2) for k, v in best},
            "timeline": timeline}


def device_activities(torch, prof) -> list[tuple[str, float, float]]:
    """The GPU activities (kernels, copies, memsets) a torch.profiler run recorded: ``(name, start_us, end_us)``.
    (It records no host-side driver call of a graph launch through ctypes, so the launch latency is not seen here:
    on an H200, 2026-12-03, the host side held 3 events, two of them cudaDeviceSynchronize.)"""
    from torch.autograd import DeviceType

    return [(e.name(), e.start_ns() / 1e3, e.end_ns() / 1e3) for e in prof.profiler.kineto_results.events()
            if e.device_type() == DeviceType.CUDA]


def kernel_profile(torch, detect, call: list[np.ndarray], reps: int = 20) -> dict[str, float]:
    """GPU time per stage from the kernels themselves (CUPTI through torch.profiler, which also
    sees the kernels of a graph replay) of ``detect(call)``: milliseconds per frame (over ``reps``
    calls of ``len(call)`` frames; the lanes of a batch overlap, so a batch's sum exceeds its wall
    time), summed by kernel name; anything not ours is the RPN (cuDNN convolutions, elementwise, casts)."""
    from torch.profiler import ProfilerActivity, profile

    detect(call)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            detect(call)
        torch.cuda.synchronize()
    reps *= len(call)
    out: dict[str, float] = {}
    kernels: dict[str, float] = {}
    for evt in prof.key_averages():
        us = getattr(evt, "device_time_total", None)
        if us is None:
            us = getattr(evt, "cuda_time_total", 0.0)
        if not us:
            continue
        name = evt.key.lower()
        stage = next((st for prefix, st in STAGE_OF_KERNEL if name.startswith(prefix) or prefix in name), "rpn")
        out[stage] = out.get(stage, 0.0) + us / 1e3 / reps
        kernels[evt.key[:90]] = kernels.get(evt.key[:90], 0.0) + us / 1e3 / reps
    out["sum"] = sum(out.values())
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:25]
    out["top_kernels"] = {k: round(v, 4) for k, v in top}
    try:  # where the GPU waits inside a call (the gaps between its activities), when the calls can be told apart
        idle = gpu_idle(device_activities(torch, prof), reps // len(call))
        if idle is not None:
            out["idle_per_call"] = idle
    except Exception as exc:  # noqa: BLE001 - the profiler's event API differs between torch versions
        out["idle_per_call"] = f"unavailable: {type(exc).__name__}: {exc}"
    return out


def copy_owners(torch, fn) -> dict[str, int]:
    """What enqueues the memsets and copies of one eager ``fn()`` (torch.profiler with CPU and CUDA activities):
    ``"API call < op < parent ...: activity"`` (at most four names) -> how many."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    out: dict[str, int] = {}
    for evt in prof.events():
        for k in getattr(evt, "kernels", ()):
            if "memset" in k.name.lower() or "memcpy" in k.name.lower():
                chain, parent = [evt.name], evt.cpu_parent
                while parent is not None and len(chain) < 4:
                    chain.append(parent.name)
                    parent = parent.cpu_parent
                key = f"{' < '.join(chain)}: {k.name}"
                out[key] = out.get(key, 0) + 1
    return out


def gpu_machine(torch, argv: list[str] | None) -> dict:
    """Date, GPU, driver, torch, Python and the command line, for a GPU benchmark's JSON report."""
    from pointpillars_trt.cuda.device import get_device

    info = get_device(0).info
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "gpu": info.name,
            "compute_capability": list(info.compute_capability), "driver_cuda_version": info.driver_version,
            "torch": torch.__version__, "torch_cuda": torch.version.cuda, "python": platform.python_version(),
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", help="checkpoint (default: the shipped demo model)")
    p.add_argument("--config")
    p.add_argument("--frames", type=Path)
    p.add_argument("--synthetic-360", type=int, default=3)
    p.add_argument("--iters", type=int, default=20, help="passes over the frames per GPU-pipeline row")
    p.add_argument("--eager-iters", type=int, default=3, help="passes for the (slow) eager PyTorch row")
    p.add_argument("--batch", type=int, nargs="+", default=[8, 16], help="batch sizes of the offline-throughput rows")
    p.add_argument("--precision", choices=("fp32", "fp16", "both"), default="both")
    p.add_argument("--skip-eager", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        log.error("no CUDA GPU visible to torch")
        return 2
    from pointpillars_trt.detector import Detector


    groups = load_frame_groups(args.frames, args.synthetic_360)
    if not groups:
        log.error("no frames")
        return 2
    base = Detector.from_checkpoint(args.ckpt, config=args.config, backend="torch", device="cuda")
    cfg, state = base.config, {k: v.detach().cpu() for k, v in base.executor.backend.model.state_dict().items()}
    precisions = ("fp32", "fp16") if args.precision == "both" else (args.precision,)
    results: dict[str, dict] = {}
    t_start = time.perf_counter()
    max_points = max(len(f) for g in groups.values() for f in g)

    def record(name: str, row: dict) -> None:
        results[name] = row
        s = row["host_ms_per_frame"]
        gpu = row["stages_ms"].get("gpu", {}).get("median", float("nan"))
        st = row["stages_ms"]
        host_parts = " ".join(f"{k} {st[k]['median']:.3f}" for k in ("host_stage", "host_wait") if k in st)
        head = f" | {row['rpn_head']} head" if "rpn_head" in row else ""
        log.info("%-34s host median %7.3f ms p90 %7.3f p99 %7.3f | gpu %7.3f ms | %8.1f frames/s | peak %6.0f MiB | %s%s",
                 name, s["median"], s["p90"], s["p99"], gpu, row["frames_per_s"], row["torch_peak_MiB"], host_parts, head)

    def single_row(name: str, det, iters: int, profiled: bool = True, verbose: bool = False, owners: bool = False) -> None:
        """Record a batch-1 row of ``det`` over ``frames`` (the current group), with its kernel profile
        when ``profiled`` and what enqueues its memsets and copies (:func:`copy_owners`, logged) when ``owners``;
        closes ``det``."""
        detect = lambda c: [det.detect(f) for f in c]  # noqa: E731
        record(name, dict(run_row(torch, detect, frames, iters), rpn_head=rpn_head_of(det)))
        if profiled:
            profile_row(name, detect, [frames[0]], verbose)
        if owners:
            try:
                results[name]["copy_owners"] = found = copy_owners(torch, lambda: det.detect(frames[0]))
                for k, v in found.items():
                    log.info("%-34s %dx %s", name, v, k)
            except Exception as exc:  # noqa: BLE001 - the profiler is optional
                log.warning("copy owners unavailable: %s", exc)
        det.close()

    def profile_row(name: str, detect, call: list[np.ndarray], verbose: bool) -> None:
        """Add :func:`kernel_profile` of ``detect(call)`` to row ``name`` (logged when ``verbose``)."""
        try:
            prof = results[name]["kernel_ms_per_frame"] = kernel_profile(torch, detect, call)
            if verbose:
                log.info("%-34s kernels per frame: %s", name, ", ".join(f"{k} {v:.3f} ms" for k, v in prof.items() if isinstance(v, float)))
                for k, v in list(prof["top_kernels"].items())[:12]:
                    log.info("    %8.4f ms  %s", v, k)
                idle = prof.get("idle_per_call")
                if isinstance(idle, dict):
                    log.info("    GPU per call: span %.1f us, busy %.1f, idle %.1f (%d activities); largest idle stretches:",
                             idle["span_us"], idle["busy_us"], idle["idle_us"], idle["activities_per_call"])
                    for k, v in idle["gaps"].items():
                        log.info("    %8.2f us  %s", v, k)
                    log.info("    one call, in order (start us, length us): %s",
                             "; ".join(f"{n} {a:.1f} {d:.1f}" for n, a, d in idle["timeline"]))
                elif idle:
                    log.info("    GPU idle per call: %s", idle)
        except Exception as exc:  # noqa: BLE001 - the profiler is optional
            log.warning("kernel profile unavailable: %s", exc)

    def batch_row(name: str, batch: int, profiled: bool = False, **options) -> None:
        """Record a ``detect_batch`` row of a device detector with ``options``, ``batch`` frames per
        replay, over ``frames`` (the current group), 4 groups per call (detect_batch double-buffers:
        the next group is staged while the GPU runs one), with the kernel profile of one replay of
        ``batch`` frames when ``profiled``; closes the detector."""
        det = device_detector(cfg, state, use_graph=True, max_points=max_points, max_batch=batch, **options)
        row = run_row(torch, det.detect_batch, frames, max(4, args.iters // 2), 4 * batch, batch)
        record(name, dict(row, rpn_head=rpn_head_of(det)))
        if profiled:
            profile_row(name, det.detect_batch, [frames[i % len(frames)] for i in range(batch)], verbose=True)
        det.close()

    for gname, frames in groups.items():
        if not args.skip_eager:
            record(f"eager/{gname}", run_row(torch, lambda c: [base.detect(f) for f in c], frames, args.eager_iters))
        for prec in precisions:
            for graph in (True, False):
                det = device_detector(cfg, state, precision=prec, use_graph=graph, max_points=max_points, max_batch=1,
                                  source=base.source, on_overflow="warn")
                name = f"gpu/{prec}/{'graph' if graph else 'eager'}/{gname}"
                single_row(name, det, args.iters, profiled=graph, verbose=True, owners=not graph and prec == "fp16")
            for batch in args.batch:
                batch_row(f"gpu/{prec}/graph/batch{batch}/{gname}", batch, profiled=prec == "fp16" and batch == max(args.batch),
                          precision=prec)
        if len(precisions) == 2:
            for form in (None, "split-head", "concat-head"):  # the shipped RPN, the per-branch head and the concatenated-map head (A/B)
                acc = fp16_vs_fp32(device_detector, cfg, state, frames, max_points, RPN_FORMS.get(form))
                results[f"fp16_vs_fp32/{gname}" + (f"/rpn-{form}" if form else "")] = acc
                log.info("FP16 (%s, %s head) vs FP32 on %s: %.2f %% of %d FP32 boxes (score > 0.3) found with IoU > 0.9 "
                         "(worst frame %.1f %%)", form or "default RPN", acc["rpn_head"], gname, 100 * acc["kept"], acc["fp32_boxes"],
                         100 * acc["min_frame"])
        for rpn_mode in RPN_FORMS:  # the RPN without our fusions, same run (the default is "fused")
            det = device_detector(cfg, state, rpn_form=RPN_FORMS[rpn_mode], precision="fp16", use_graph=True, max_points=max_points, max_batch=1)
            single_row(f"gpu/fp16/graph/rpn-{rpn_mode}/{gname}", det, max(2, args.iters // 4), verbose=rpn_mode.endswith("-head"))
        batch_row(f"gpu/fp16/graph/rpn-split-head/batch{max(args.batch)}/{gname}", max(args.batch),  # the fused neck's A/B at batch
                  precision="fp16", rpn_form=RPN_FORMS["split-head"])
        from pointpillars_trt.cuda.nvrtc import set_programmatic_launch

        old_pdl = set_programmatic_launch(True)  # the same graphs with programmatic dependent launches, same run
        try:
            det = device_detector(cfg, state, precision="fp16", use_graph=True, max_points=max_points, max_batch=1)
            single_row(f"gpu/fp16/graph/pdl/{gname}", det, args.iters, verbose=True)
            batch_row(f"gpu/fp16/graph/pdl/batch{max(args.batch)}/{gname}", max(args.batch), precision="fp16")
        finally:
            set_programmatic_launch(old_pdl)
        det = device_detector(cfg, state, precision="fp16", use_graph=True, pfn="torch", max_points=max_points, max_batch=1)
        single_row(f"gpu/fp16/graph/pfn-torch/{gname}", det, max(2, args.iters // 4), profiled=False)
        # the staging copy on STAGING_THREADS threads (the default splits copies of >= 1 MiB), same run: A/B of
        # the batch-1 row and of the largest batch
        det = device_detector(cfg, state, precision="fp16", use_graph=True, max_points=max_points, max_batch=1,
                              staging_threads=STAGING_THREADS)
        single_row(f"gpu/fp16/graph/staging{STAGING_THREADS}/{gname}", det, args.iters, profiled=False)
        if args.batch:
            batch = max(args.batch)
            batch_row(f"gpu/fp16/graph/staging{STAGING_THREADS}/batch{batch}/{gname}", batch, precision="fp16",
                      staging_threads=STAGING_THREADS)
        # cuDNN's timed engine choice for every convolution (DeviceOptions.cudnn_autotune), same run: A/B of the batch-1
        # row (with its kernel profile, for the RPN's convolutions) and of the largest batch
        det = device_detector(cfg, state, precision="fp16", use_graph=True, max_points=max_points, max_batch=1, cudnn_autotune=True)
        single_row(f"gpu/fp16/graph/cudnn-autotune/{gname}", det, args.iters, verbose=True)
        if args.batch:
            batch = max(args.batch)
            batch_row(f"gpu/fp16/graph/cudnn-autotune/batch{batch}/{gname}", batch, precision="fp16", cudnn_autotune=True)
            # the batch's post-processing as one launch per pass (DeviceOptions.batched_post), same run: A/B of the largest
            # batch, with its kernel profile
            batch_row(f"gpu/fp16/graph/batched-post/batch{batch}/{gname}", batch, profiled=True, precision="fp16", batched_post=True)
        # DeviceOptions.mapped_points, same run: the default reads the points from the pinned rows for single frames (no
        # host-to-device copy) and copies batches; A/B: the batch-1 row with the copy (with its kernel profile), and the
        # largest batch reading mapped points
        det = device_detector(cfg, state, precision="fp16", use_graph=True, max_points=max_points, max_batch=1, mapped_points=False)
        single_row(f"gpu/fp16/graph/copy-points/{gname}", det, args.iters, verbose=True)
        if args.batch:
            batch = max(args.batch)
            batch_row(f"gpu/fp16/graph/mapped-points/batch{batch}/{gname}", batch, profiled=True, precision="fp16", mapped_points=True)
        # DeviceOptions.mapped_output, the same A/B at the other end: the batch-1 row with the results copied device to
        # host, and the largest batch writing them into the pinned rows
        det = device_detector(cfg, state, precision="fp16", use_graph=True, max_points=max_points, max_batch=1, mapped_output=False)
        single_row(f"gpu/fp16/graph/copy-output/{gname}", det, args.iters, verbose=True)
        if args.batch:
            batch = max(args.batch)
            batch_row(f"gpu/fp16/graph/mapped-output/batch{batch}/{gname}", batch, profiled=True, precision="fp16", mapped_output=True)
        torch.cuda.empty_cache()
    speedups = {}
    for name, row in results.items():
        if name.startswith("gpu/") and "host_ms_per_frame" in row:
            g = name.rsplit("/", 1)[1]
            eager = results.get(f"eager/{g}")
            if eager:
                speedups[name] = {"latency": eager["host_ms_per_frame"]["median"] / row["host_ms_per_frame"]["median"],
                                  "throughput": row["frames_per_s"] / eager["frames_per_s"]}
    for name, s in speedups.items():
        log.info("speed-up vs eager  %-34s latency x%6.1f  throughput x%6.1f", name, s["latency"], s["throughput"])
    ceil = ceilings(torch)
    log.info("ceilings: device-to-device copy %.0f GB/s, fp16 matmul %.0f TFLOP/s", ceil["d2d_copy_GBps"], ceil["fp16_matmul_TFLOPs"])
    report = {
        "machine": gpu_machine(torch, argv),
        "model": base.source.describe(), "config": cfg.name, "frames": {k: len(v) for k, v in groups.items()},
        "results": results, "speedup_vs_eager": speedups, "ceilings": ceil, "wall_s": time.perf_counter() - t_start,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
