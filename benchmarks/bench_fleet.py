#!/usr/bin/env python3
"""Throughput of fleet inference on Ray Data (``pointpillars_trt.fleet``, as tools/batch_infer.py
runs it) against ``Detector.detect_batch`` in one process, over the same frames on one GPU.

    python benchmarks/bench_fleet.py --frames 2000 --backend gpu --precision fp16 --json fleet.json
    python benchmarks/bench_fleet.py --frames 8 --batch-size 4 --backend onnxruntime   # CPU smoke run

The frames are the real KITTI frames of ../shared jittered by a few centimetres (a new cloud
each), written as .bin files that both sides read. The in-process side loads them (timed) and runs
``detect_batch`` in groups of --batch-size; the fleet side runs the files through read tasks, the
actor pool (one actor per GPU, --num-gpus) and the Parquet writer. Both warm up first. Printed:
frames/s of each side, the ratio fleet / in-process (the goal on one GPU: >= 0.90), both over
the whole run ("end to end", with Ray's actor start) and with the fleet's first batch left out
("steady": rows after the first batch over the time after it).

--actor-concurrency K [K ...]: batches each actor runs at once (FleetOptions.actor_concurrency;
default the fleet's default); several values run the fleet side once each against the same
in-process run (``--actor-concurrency 1 2 3``: 1 is the one-batch-at-a-time actor of before).

--num-gpus N [N ...]: GPUs of the fleet side, one detector actor each (default: all of the
cluster's); several values run the fleet side once per count, the scaling run of a host with
several GPUs (``--num-gpus 1 2 4``). Each run after the first is checked row for row against the
first (every frame's boxes, scores and labels, in key order: ``same_rows``), and each GPU run
gets its scaling efficiency against the one-GPU run of the same concurrency (frames/s over
N times the one-GPU frames/s, end to end and steady).

The JSON has every run under ``runs`` and the first one's figures also at the top (``fleet``,
``ratio``, ``steady_ratio``, ``same_boxes``), with ``same_rows`` (every run's rows equal the
first's) and ``scaling`` (one entry per GPU run with a one-GPU run to compare with).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FRAMES = REPO.parent / "shared" / "data" / "kitti_frames"


def write_jittered(base: list[np.ndarray], count: int, out_dir: Path, seed: int = 0) -> list[Path]:
    """``count`` .bin files: frame ``i`` is ``base[i % len(base)]`` with N(0, 2 cm) on x, y, z."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pts = base[i % len(base)].copy()
        pts[:, :3] += rng.normal(0.0, 0.02, (len(pts), 3)).astype(np.float32)
        paths.append(out_dir / f"{i:06d}.bin")
        pts.tofile(paths[-1])
    return paths


def in_process(make_detector, paths: list[Path], batch_size: int, score_threshold, warmup: int) -> dict:
    """frames/s of loading ``paths`` and ``detect_batch`` in groups of ``batch_size``, one process."""
    from pointpillars_trt.fleet.actor import warm_up
    from pointpillars_trt.io.pointcloud import load_points

    det = make_detector()
    warm_up(det, warmup, batch_size)  # as each fleet actor does
    t0 = time.perf_counter()
    boxes = 0
    for i in range(0, len(paths), batch_size):
        group = paths[i:i + batch_size]
        out = det.detect_batch([load_points(p) for p in group], score_threshold, [str(p) for p in group])
        boxes += sum(len(d) for d in out)
    seconds = time.perf_counter() - t0
    det.close()
    return {"frames": len(paths), "seconds": seconds, "frames_per_s": len(paths) / seconds, "boxes": boxes}


def rows_digest(path: Path) -> str:
    """SHA-256 of every frame's boxes, scores and labels in the Parquet file, in (source, index) order:
    equal for two runs that gave every frame the same results, whatever order the actors wrote them in."""
    import hashlib

    import pyarrow.parquet as pq

    rows = pq.read_table(path, columns=["source", "index", "boxes", "scores", "labels"]).to_pylist()
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: (r["source"], r["index"])):
        h.update(json.dumps([r["source"], r["index"], r["boxes"], r["scores"], r["labels"]]).encode())
    return h.hexdigest()


def on_fleet(make_detector, frames_dir: Path, out: Path, args: argparse.Namespace, concurrency: int,
             num_gpus: int | None = None) -> dict:
    """frames/s of the fleet pipeline over the files of ``frames_dir`` into ``out``, each actor
    running ``concurrency`` batches at once, on ``num_gpus`` GPUs (None: all of the cluster's)."""
    import pyarrow.parquet as pq

    from pointpillars_trt.fleet import FleetOptions, InputSpec, ResultStore, plan_tasks, run_fleet

    store = ResultStore(out, {"bench": True}, overwrite=True)
    tasks = plan_tasks([frames_dir], InputSpec(frames_per_task=args.frames_per_task), store.done)
    first: list[float] = []
    options = FleetOptions(num_gpus=num_gpus, batch_size=args.batch_size, score_threshold=args.score_thresh,
                           progress=not args.no_progress, warmup=args.warmup, actor_concurrency=concurrency)
    rows_at_first = [0]
    add = store.add

    def timed_add(table):  # the time and row count of the first batch back
        if not first:
            first.append(time.perf_counter())
            rows_at_first[0] = table.num_rows
        add(table)

    store.add = timed_add  # type: ignore[method-assign]
    t0 = time.perf_counter()
    summary = run_fleet(tasks, make_detector, store, options)
    t1 = time.perf_counter()
    table = pq.read_table(out, columns=["scores", "error"])
    boxes = sum(len(s) for s in table.column("scores").to_pylist())
    steady_rows = summary.frames - rows_at_first[0]
    steady_s = t1 - first[0] if first else 0.0
    return {"actor_concurrency": concurrency, "num_gpus": num_gpus, "frames": summary.frames, "failed": summary.failed,
            "seconds": t1 - t0, "frames_per_s": summary.frames / (t1 - t0),
            "steady_frames_per_s": steady_rows / steady_s if steady_s > 0 and steady_rows else 0.0,
            "actors": summary.actors, "gpu": summary.gpu, "boxes": boxes, "rows_sha256": rows_digest(out)}


def scaling(runs: list[dict]) -> list[dict]:
    """Per GPU run of N actors with a one-GPU run of the same actor concurrency: frames/s over N times
    the one-GPU run's, end to end and steady; prints them."""
    one = {r["actor_concurrency"]: r for r in runs if r["gpu"] and r["actors"] == 1}
    out = []
    for r in runs:
        base = one.get(r["actor_concurrency"])
        if not r["gpu"] or base is None or r is base:
            continue
        e = {"actors": r["actors"], "actor_concurrency": r["actor_concurrency"],
             "efficiency": r["frames_per_s"] / (r["actors"] * base["frames_per_s"]),
             "steady_efficiency": (r["steady_frames_per_s"] / (r["actors"] * base["steady_frames_per_s"])
                                   if base["steady_frames_per_s"] > 0 else 0.0)}
        print(f"scaling    : {r['actors']} GPUs (actor concurrency {r['actor_concurrency']}): efficiency {e['efficiency']:.3f} end to end, "
              f"{e['steady_efficiency']:.3f} steady, against one GPU")
        out.append(e)
    return out


def compared(fleet: dict, single: dict) -> dict:
    """``fleet`` with its ratios to the in-process run ``single`` and whether the box counts match; prints them."""
    out = {**fleet, "ratio": fleet["frames_per_s"] / single["frames_per_s"],
           "steady_ratio": fleet["steady_frames_per_s"] / single["frames_per_s"], "same_boxes": fleet["boxes"] == single["boxes"]}
    print(f"fleet (actor concurrency {fleet['actor_concurrency']}): {fleet['frames_per_s']:9.1f} frames/s end to end, "
          f"{fleet['steady_frames_per_s']:.1f} steady ({fleet['actors']} {'GPU' if fleet['gpu'] else 'CPU'} actor(s), "
          f"{fleet['seconds']:.2f} s)")
    print(f"  ratio    : {out['ratio']:.3f} end to end, {out['steady_ratio']:.3f} steady; "
          f"box counts {'equal' if out['same_boxes'] else 'DIFFER'} ({single['boxes']} / {fleet['boxes']})")
    return out


def main(argv: list[str] | None = None) -> int:
    from pointpillars_trt.cli import add_detector_arguments, detector_from_args
    from pointpillars_trt.fleet import FleetOptions, connect

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--frames-dir", type=Path, default=FRAMES, help="real frames (*.bin under it) to jitter")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--frames-per-task", type=int, default=64)
    p.add_argument("--num-gpus", type=int, nargs="+", default=[None], metavar="N",
                   help="GPUs of the fleet side (default: all of the cluster's); several: one run per count (scaling)")
    p.add_argument("--address", default="local")
    p.add_argument("--score-thresh", type=float)
    p.add_argument("--warmup", type=int, default=1, help="warm-up batches per detector (in process and per actor)")
    p.add_argument("--actor-concurrency", type=int, nargs="+", default=[FleetOptions.actor_concurrency], metavar="K",
                   help="batches each actor runs at once (default: the fleet's); several values: one fleet run each, "
                        "against the same in-process run (e.g. 1 2 3 for an A/B)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--no-progress", action="store_true")
    add_detector_arguments(p)
    args = p.parse_args(argv)
    base = [np.fromfile(f, np.float32).reshape(-1, 4) for f in sorted(args.frames_dir.glob("**/*.bin"))]
    if not base:
        print(f"no .bin frames under {args.frames_dir}", file=sys.stderr)
        return 2
    make_detector = partial(detector_from_args, args)
    with tempfile.TemporaryDirectory(prefix="bench_fleet_") as tmp:
        frames_dir = Path(tmp) / "frames"
        frames_dir.mkdir()
        paths = write_jittered(base, args.frames, frames_dir)
        single = in_process(make_detector, paths, args.batch_size, args.score_thresh, args.warmup)
        connect(args.address)
        runs = [on_fleet(make_detector, frames_dir, Path(tmp) / "out.parquet", args, k, n)
                for n in args.num_gpus for k in args.actor_concurrency]
    print(f"in process : {single['frames_per_s']:9.1f} frames/s ({single['frames']} frames, {single['seconds']:.2f} s)")
    runs = [compared(fleet, single) for fleet in runs]
    same_rows = all(r["rows_sha256"] == runs[0]["rows_sha256"] for r in runs)
    if len(runs) > 1:
        print(f"rows       : {'the same in every run' if same_rows else 'DIFFER between runs'} ({len(runs)} runs)")
    # the first run's figures at the top level too (the default concurrency unless told otherwise)
    result = {"in_process": single, **{k: runs[0][k] for k in ("ratio", "steady_ratio", "same_boxes")}, "same_rows": same_rows,
              "scaling": scaling(runs), "fleet": runs[0], "runs": runs}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if all(r["failed"] == 0 for r in runs) and same_rows else 1


if __name__ == "__main__":
    sys.exit(main())
