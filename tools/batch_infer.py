#!/usr/bin/env python3
"""Run the detector over many frames on Ray Data: one Parquet row per frame, resumable.

    python tools/batch_infer.py --input frames/ --out results.parquet                    # a local Ray
    python tools/batch_infer.py --input drives/*.mcap --topic /points --out drives.parquet --address auto
    python tools/batch_infer.py --input kitti/ --split val --ckpt model.pth --out val.parquet --kitti-dir val_labels/ --calib kitti/training/calib

--input: point files (.bin .npy .pcd .ply), directories or glob patterns of them, KITTI roots
(ImageSets/<--split>.txt), and recordings (rosbag1 .bag, rosbag2 directories, .mcap, .db3; the
PointCloud2 topic --topic). Big recordings are split into message ranges of --frames-per-task.
--address: local (start Ray here), auto (join this machine's Ray cluster), ray://HOST:PORT.
--num-gpus: GPUs to use, one detector actor each (default: every GPU of the cluster); with none,
ONNX Runtime actors of --num-cpus CPUs each (--cpu-actors of them). --actor-concurrency: batches
each actor runs at once in threads, so that one batch's host work overlaps another's GPU step.
The same command runs on a laptop and on a cluster (docs/FLEET.md).

--kitti-dir: one label file per frame (KITTI result lines with --calib); --mcap OUT.mcap (or
OUT.bag): the detections of recording inputs as infer_bag writes them, from the whole output.

Rows (docs/FLEET.md): source, index, frame, record_ns, stamp_ns, frame_id, num_points, num_pillars, boxes,
scores, labels, timings_ms, warnings, error. A frame that fails (unreadable file or message, bad
cloud) gets a row with its error and the run goes on. Rows are written as they come; a run that
stops is resumed by running the same command again: frames already in the output are skipped and
failed frames run again. --overwrite starts over. The output is replaced atomically at the end.

Exit codes: 0 every frame ran; 2 bad input (some frames failed, or an input, the model or an output
is bad: one line); 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial
from pathlib import Path

from pointpillars_trt.cli import OPTION_ARGS, add_detector_arguments, detector_from_args, tool_main, unit_interval
from pointpillars_trt.errors import ConfigError, PointPillarsError
from pointpillars_trt.fleet.pipeline import FleetOptions

DEFAULTS = FleetOptions()

log = logging.getLogger("batch_infer")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", nargs="+", required=True, metavar="PATH", help="point files, directories, globs, KITTI roots, recordings")
    p.add_argument("--topic", help="PointCloud2 topic of the recordings")
    p.add_argument("--split", default="val", help="split of KITTI roots (ImageSets/SPLIT.txt)")
    p.add_argument("--intensity-scale", default="1.0", help="bag clouds: multiply intensity by a number, 1/255, or auto")
    p.add_argument("--out", type=Path, required=True, help="OUT.parquet")
    p.add_argument("--overwrite", action="store_true", help="discard the results already in --out")
    p.add_argument("--kitti-dir", type=Path, help="also write one label file per frame here")
    p.add_argument("--calib", type=Path, help="KITTI calib file or directory of <frame>.txt: KITTI result lines in --kitti-dir")
    p.add_argument("--image-shape", type=int, nargs=2, metavar=("H", "W"), help="clip projected 2D boxes to this size")
    p.add_argument("--mcap", type=Path, help="also write the detections of recording inputs into this OUT.mcap (or OUT.bag)")
    p.add_argument("--address", default="local", help="local, auto or ray://HOST:PORT")
    p.add_argument("--num-gpus", type=int, help="GPUs (one detector actor each; default: all of the cluster's; 0: CPU actors)")
    p.add_argument("--num-cpus", type=float, default=DEFAULTS.num_cpus, help="CPUs per detector actor")
    p.add_argument("--cpu-actors", type=int, help="detector actors without GPUs (default: the cluster's CPUs less one)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="frames per detect_batch call")
    p.add_argument("--actor-concurrency", type=int, default=DEFAULTS.actor_concurrency,
                   help="batches each detector actor runs at once, in threads (one batch's host work overlaps "
                        "another's GPU step); 1: one at a time")
    p.add_argument("--frames-per-task", type=int, default=64, help="frames per read task (and message range of a recording)")
    add_detector_arguments(p)
    p.add_argument("--score-thresh", type=unit_interval, help="override the config's score threshold (in [0, 1])")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


MAX_ERROR_LINES = 20


def first_errors(limit: int):
    """A callback logging the first ``limit`` failed frames, then one line saying that more follow."""
    seen = [0]

    def report(error: str) -> None:
        seen[0] += 1
        if seen[0] <= limit:
            log.error("%s", error)
        elif seen[0] == limit + 1:
            log.error("more frames failed: see the error column of the output")

    return report


def run_identity(args: argparse.Namespace) -> dict:
    """What makes the rows (recorded in the output; a resumed run must match it)."""
    names = ("ckpt", "engine_dir", "config", "format", "backend", "score_thresh", *OPTION_ARGS)
    return {name: getattr(args, name) for name in names}


def check_model(args: argparse.Namespace):
    """Read the checkpoint / engine folder here once, so that a bad one is one line before Ray
    starts; returns its config."""
    from pointpillars_trt.artifacts import artifact_config
    from pointpillars_trt.sources import resolve_weights

    if args.engine_dir is not None:
        return artifact_config(args.engine_dir, args.config)
    return resolve_weights(args.ckpt, args.config, args.format)[0]


def run(args: argparse.Namespace) -> int:
    from pointpillars_trt.fleet import (FleetOptions, InputSpec, LabelWriter, ResultStore, check_unique_names, connect,
                                        frame_count, plan_tasks, run_fleet)
    from pointpillars_trt.fleet.pipeline import actor_resources
    from pointpillars_trt.fleet.recording import check_recording_inputs, write_recording
    from pointpillars_trt.ros.cloud import parse_intensity_scale

    if args.calib is not None and args.kitti_dir is None:
        raise PointPillarsError("--calib is for --kitti-dir label files: give --kitti-dir too")
    options = FleetOptions(num_gpus=args.num_gpus, num_cpus=args.num_cpus, cpu_actors=args.cpu_actors, batch_size=args.batch_size,
                           score_threshold=args.score_thresh, progress=not args.no_progress, actor_concurrency=args.actor_concurrency)
    try:
        scale = parse_intensity_scale(args.intensity_scale)
    except ValueError as exc:
        raise ConfigError(f"--intensity-scale: {exc}") from exc
    spec = InputSpec(topic=args.topic, split=args.split, nonfinite=args.nonfinite, intensity_scale=scale,
                     frames_per_task=args.frames_per_task)
    store = ResultStore(args.out, run_identity(args), overwrite=args.overwrite)
    tasks = plan_tasks(args.input, spec, store.done)
    labels = None
    if args.kitti_dir is not None:
        check_unique_names(tasks)
        labels = LabelWriter(args.kitti_dir, args.calib, tuple(args.image_shape) if args.image_shape else None)
    if args.mcap is not None:
        check_recording_inputs(args.mcap, tasks)
    log.info("%d frames to run in %d read tasks (%d already in %s)", frame_count(tasks), len(tasks), len(store.done), args.out)
    cfg = check_model(args)
    connect(args.address)
    on_gpus = actor_resources(options)[2]
    # ONNX Runtime's threads, one per CPU of an actor (its default is every core of the node)
    extra = {"threads": max(1, int(args.num_cpus))} if not on_gpus and args.backend in ("auto", "onnxruntime") else {}
    summary = run_fleet(tasks, partial(detector_from_args, args, **extra), store, options, labels, on_error=first_errors(MAX_ERROR_LINES))
    log.info("wrote %s%s", args.out, f" and {labels.count} label files in {args.kitti_dir}" if labels else "")
    if args.mcap is not None:
        log.info("wrote %s (%d frames)", args.mcap, write_recording(args.out, args.mcap, cfg.classes))
    log.info("%s", summary.line())
    return 2 if summary.failed else 0


def main(argv: list[str] | None = None) -> int:
    return tool_main(parse_args, run, log, argv)


if __name__ == "__main__":
    sys.exit(main())
