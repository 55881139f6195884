#!/usr/bin/env python3
"""The first thing to run on a machine with TensorRT: export, build, and compare against PyTorch.

    python tools/check_tensorrt.py                                # demo/random weights, FP32 + FP16
    python tools/check_tensorrt.py --ckpt pointpillar_7728.pth --precision fp32 --reference torch onnxruntime
    python tools/check_tensorrt.py --frames my_bins/ --native-scatter --iters 50

For each precision it exports the ONNX graphs (``pointpillars_trt.exporter.export_onnx``), builds
the engines (``export/build_engines.py``'s code, timing cache shared in the work folder), then
runs every frame (``*.bin`` under ``--frames``, default ``../shared/data/kitti_frames``) through
the TensorRT backend and the reference backend(s) on the same pillars, and prints:

* a parity table per frame: max abs / max relative error of ``cls``, ``box``, ``dir``
  (``pointpillars_trt.compare.arrays``: relative to max(|ref|, 1e-3 max|ref|)) and the boxes after
  post-processing (TensorRT / reference count, matched by BEV IoU, worst IoU, worst score difference);
* per-stage times of the TensorRT backend (CUDA events: h2d, pfn, scatter, rpn, d2h), median
  over ``--iters`` runs per frame, and the reference's.

Exit codes: 0 done (parity is reported, not judged); 2 with one line when it could not be done (TensorRT or
cuda-python missing, a bad checkpoint or frame folder, a lane bug: any PointPillarsError).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pointpillars_trt.cli import tool_main
from pointpillars_trt.options import Precision
from pointpillars_trt.errors import EngineError, PointPillarsError

log = logging.getLogger("check_tensorrt")
REPO = Path(__file__).resolve().parents[1]
DEFAULT_FRAMES = REPO.parent / "shared" / "data" / "kitti_frames"
OUTPUTS = ("cls", "box", "dir")


# ---- the table (pure) ------------------------------------------------------------------------------
def parity_row(name: str, num_pillars: int, run_name: str, ref_name: str, out, ref_out, det, ref_det) -> str:
    """One line of the parity table: the head outputs ``out`` (``cls``, ``box``, ``dir``) and boxes
    ``det`` of ``run_name`` against ``ref_name``'s (:func:`~pointpillars_trt.compare.arrays.array_errors`,
    :func:`~pointpillars_trt.compare.detections.match_detections` at BEV IoU 0.5)."""
    from pointpillars_trt.compare.arrays import named_errors
    from pointpillars_trt.compare.detections import match_detections

    errs = named_errors(ref_out, out, OUTPUTS)
    m = match_detections(ref_det, det)
    return (f"{name[-42:]:<42} {num_pillars:>7} {run_name:<24} {ref_name:<11} "
            + " ".join(f"{e.max_abs:>11.3e} {e.max_rel:>8.1e}" for e in errs.values())
            + f" {m.n_got:>4}/{m.n_ref:<4} {m.n_matched:>7} {m.min_iou:>7.4f} {m.max_score_diff:>7.4f}")


def lane_report(names: list[str], singles: list, batched: list) -> tuple[list[str], int]:
    """One line per frame: ``detect_batch``'s result against the same frame's ``detect`` (exact,
    :func:`~pointpillars_trt.compare.detections.compare_detections`); returns ``(lines, frames that differ)``."""
    from pointpillars_trt.compare.detections import compare_detections

    lines, bad = [], 0
    for b, (name, one, many) in enumerate(zip(names, singles, batched)):
        d = compare_detections(one, many)
        same = d.agrees() and d.same_count
        bad += not same
        lines.append(f"  {name:<42} lane {b:>2}: {d.n_ref:>4} boxes alone, {d.n_got:>4} in the batch, "
                     f"max box diff {d.max_box_diff:.2e}, score {d.max_score_diff:.2e}  {'same' if same else 'DIFFERENT'}")
    return lines, bad


def check_batch_lanes(engine_dir: Path, frames, batch: int, device: int) -> int:
    """The whole-frame engine path (our kernels around the engines) on ``batch`` lanes: every frame
    of ``detect_batch`` against ``detect`` alone. Returns the number of frames that differ."""
    from pointpillars_trt.detector import Detector

    det = Detector.from_engine_dir(engine_dir, backend="gpu", device=f"cuda:{device}", max_batch=batch)
    names, clouds = [n for n, _ in frames], [pts for _, pts in frames]
    singles = [det.detect(pts, source=n) for n, pts in frames]
    lines, bad = lane_report(names, singles, det.detect_batch(clouds, sources=names))
    print(f"\ndetect_batch on {batch} lanes ({det.path}) against detect, frame by frame:")
    print("\n".join(lines))
    det.close()
    return bad


def format_ms(samples: list[float]) -> str:
    """``median (p90 ...)`` of latency samples in ms, or ``-`` when there are none."""
    from pointpillars_trt.compare.runs import summarize

    s = summarize(samples)
    return f"{s['median']:7.3f} (p90 {s['p90']:7.3f})" if s["n"] else "      -"


# ---- the run ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, help="checkpoint (any supported format); default: the demo model or random weights")
    p.add_argument("--config", help="config YAML or name (default: the checkpoint's)")
    p.add_argument("--frames", type=Path, default=DEFAULT_FRAMES, help="folder searched recursively for *.bin frames")
    p.add_argument("--work-dir", type=Path, help="where ONNX graphs, engines and the timing cache go (default: a temp folder)")
    p.add_argument("--precision", nargs="+", choices=Precision.values(), default=list(Precision.values()))
    p.add_argument("--reference", nargs="+", choices=("torch", "onnxruntime"), default=["torch"])
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--native-scatter", action="store_true", help="also run the ScatterND MFN engine instead of our kernel")
    p.add_argument("--no-tf32", action="store_true", help="build FP32 engines without TF32 (tighter FP32 parity)")
    p.add_argument("--iters", type=int, default=20, help="timed runs per frame (after 3 warm-up runs)")
    p.add_argument("--max-pillars", type=int, help="engine profile maximum (default: the config's)")
    p.add_argument("--batch", type=int, default=4, help="lanes of the whole-frame engine path checked against single frames (0: skip)")
    return p.parse_args(argv)


def load_model(args):
    from pointpillars_trt.detector import resolve_weights

    cfg, state_dict, source = resolve_weights(args.ckpt, args.config)
    if source.is_random:
        log.warning("no checkpoint: RANDOM weights (parity is still meaningful, boxes are not)")
    return cfg, state_dict, source.path


def load_frames(root: Path) -> list[tuple[str, np.ndarray]]:
    from pointpillars_trt.io.pointcloud import load_points

    paths = sorted(root.rglob("*.bin")) if root.is_dir() else []
    if not paths:
        raise PointPillarsError(f"{root}: no *.bin frames found (use --frames)")
    return [(str(p.relative_to(root)), load_points(p)) for p in paths]


def time_backend(backend, feeds, iters: int) -> dict[str, list[float]]:
    for _ in range(3):
        backend.infer(feeds)
    stages: dict[str, list[float]] = {}
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.infer(feeds)
        wall = (time.perf_counter() - t0) * 1e3
        for k, v in backend.last_timings_ms.items():
            stages.setdefault(k, []).append(v)
        stages.setdefault("host total", []).append(wall)
    return stages


def run_precision(precision: str, args, cfg, state_dict, ckpt_path, frames, work: Path) -> None:
    from pointpillars_trt.network import create_backend
    from pointpillars_trt.exporter import export_onnx
    from pointpillars_trt.postprocess import PostProcessor
    from pointpillars_trt.tensorrt.build import BuildOptions, build_engines
    from pointpillars_trt.voxelize import make_voxelizer

    onnx_dir, engine_dir = work / f"onnx_{precision}", work / f"engines_{precision}"
    t0 = time.perf_counter()
    export_onnx(state_dict, cfg, onnx_dir, fp16=precision == "fp16", checkpoint_path=ckpt_path)
    t1 = time.perf_counter()
    build_engines(onnx_dir, engine_dir, BuildOptions(precision=precision, max_pillars=args.max_pillars, timing_cache=work / "timing.cache",
                                                     tf32=not args.no_tf32), native_scatter=args.native_scatter, device=args.device)
    t2 = time.perf_counter()
    print(f"\n=== {precision}: export {t1 - t0:.1f} s, engine build {t2 - t1:.1f} s ({engine_dir})")

    runs = {"tensorrt": create_backend("tensorrt", cfg=cfg, engine_dir=engine_dir, device=args.device)}
    if args.native_scatter:
        runs["tensorrt-native-scatter"] = create_backend("tensorrt", cfg=cfg, engine_dir=engine_dir, device=args.device, scatter="native")
    refs = {}
    import torch

    torch_device = f"cuda:{args.device}" if torch.cuda.is_available() else "cpu"
    if "torch" in args.reference:
        refs["torch"] = create_backend("torch", cfg=cfg, state_dict=state_dict, device=torch_device)
    if "onnxruntime" in args.reference:
        refs["onnxruntime"] = create_backend("onnxruntime", cfg=cfg, engine_dir=work / "onnx_fp32" if (work / "onnx_fp32").is_dir() else onnx_dir)
    ref_name = next(iter(refs))
    voxelize = make_voxelizer(cfg.voxel, max_pillars=min(b.max_pillars for b in runs.values()))
    post = PostProcessor(cfg)

    header = f"{'frame':<42} {'pillars':>7} {'run':<24} {'vs':<11} " + " ".join(f"{'max|d' + o + '|':>11} {'rel':>8}" for o in OUTPUTS) + f" {'boxes':>9} {'matched':>7} {'minIoU':>7} {'dscore':>7}"
    print(header)
    timings: dict[str, dict[str, list[float]]] = {}
    for name, pts in frames:
        pillars = voxelize(pts)
        feeds = {"features": pillars.features, "num_points": pillars.num_points, "coords": pillars.coords}
        ref_out = {r: b.infer(feeds) for r, b in refs.items()}
        ref_det = {r: post(o["cls"], o["box"], o["dir"]) for r, o in ref_out.items()}
        for run_name, backend in runs.items():
            out = backend.infer(feeds)
            det = post(out["cls"], out["box"], out["dir"])
            for r in refs:
                print(parity_row(name, pillars.num_pillars, run_name, r, out, ref_out[r], det, ref_det[r]))
            for stage, vals in time_backend(backend, feeds, args.iters).items():
                timings.setdefault(run_name, {}).setdefault(stage, []).extend(vals)
        for stage, vals in time_backend(refs[ref_name], feeds, max(3, args.iters // 4)).items():
            timings.setdefault(f"{ref_name} ({torch_device if ref_name == 'torch' else 'ort'})", {}).setdefault(stage, []).extend(vals)
    print(f"\nper-stage times, ms, median (p90) over all frames x iterations ({precision}):")
    for run_name, stages in timings.items():
        print(f"  {run_name}")
        for stage, vals in stages.items():
            print(f"    {stage:<12} {format_ms(vals)}")
    for b in list(runs.values()) + list(refs.values()):
        b.deactivate()
    if args.batch and check_batch_lanes(engine_dir, frames, args.batch, args.device):
        raise EngineError(f"{engine_dir}: detect_batch differs from detect on some lanes (see above): a lane bug; please report it")


def run(args: argparse.Namespace) -> int:
    from pointpillars_trt.cuda.device import get_device
    from pointpillars_trt.tensorrt.api import load_tensorrt, tensorrt_version

    load_tensorrt()
    dev = get_device(args.device).info
    print(f"TensorRT {tensorrt_version()} on {dev.name} (sm_{dev.compute_capability[0]}{dev.compute_capability[1]}, driver {dev.driver_version})")
    cfg, state_dict, ckpt_path = load_model(args)
    frames = load_frames(args.frames)
    print(f"config {cfg.name}; weights {ckpt_path or 'random/demo'}; {len(frames)} frames from {args.frames}")
    with tempfile.TemporaryDirectory(prefix="check_tensorrt_") as tmp:
        work = args.work_dir or Path(tmp)
        for precision in args.precision:
            run_precision(precision, args, cfg, state_dict, ckpt_path, frames, work)
    return 0


def main(argv: list[str] | None = None) -> int:
    return tool_main(parse_args, run, log, argv)


if __name__ == "__main__":
    sys.exit(main())
