#!/usr/bin/env python3
"""Replay the PointCloud2 messages of a recording through the detector (no ROS install needed).

    python tools/infer_bag.py drive.bag --topic /velodyne_points --out detections.bag
    python tools/infer_bag.py rosbag2_dir/ --topic /points --out detections.mcap --ckpt model.pth
    python tools/infer_bag.py drive.mcap --topic /points --kitti-dir results/ --calib calib.txt

BAG: a rosbag1 file, a rosbag2 directory (sqlite3 or MCAP storage), or a bare .mcap / .db3 file.
--out: OUT.bag (rosbag1; boxes as pointpillars_trt_msgs/BoxArray), OUT.mcap (one MCAP file, ROS 2
messages; boxes as vision_msgs/msg/Detection3DArray) or a new directory (rosbag2, --storage).
Every output message has the input cloud's record time and header stamp.
--kitti-dir: per-frame text files (KITTI result lines with --calib, else LiDAR-frame boxes).
See docs/ROS.md.

A cloud without a usable point (empty, all NaN/inf, all outside the range) is written as an
empty result ("no objects": a DELETEALL marker, an empty box array, an empty label file). A bad
cloud and a message that does not deserialize are logged (index, topic, reason), skipped and
counted; every other message is still written. Outputs are checked before the model loads and
moved into place when complete.

Exit codes: 0 every message was written; 2 bad input: some messages were skipped (the rest are
written) or the bag, topic, checkpoint, parameters or an output is bad; 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from pointpillars_trt.cli import tool_main
from pointpillars_trt.errors import PointPillarsError
from pointpillars_trt.options import Backend, NonFinitePolicy
from pointpillars_trt.ros.bag import STORAGES, CloudReader, DetectionBagWriter, KittiFrameWriter, replay
from pointpillars_trt.ros.processor import FrameProcessor, NodeParams, RepeatFilter, build_detector

log = logging.getLogger("infer_bag")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = NodeParams()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", type=Path, help="rosbag1 file, rosbag2 directory, or .mcap / .db3 file")
    p.add_argument("--topic", required=True, help="the PointCloud2 topic")
    p.add_argument("--out", type=Path, help="output recording: OUT.bag, OUT.mcap or a new rosbag2 directory")
    p.add_argument("--storage", default="mcap", choices=STORAGES, help="storage of a rosbag2 directory output")
    p.add_argument("--markers-topic", default=d.markers, help="MarkerArray topic in the output")
    p.add_argument("--boxes-topic", default=d.boxes, help="box-array topic in the output")
    p.add_argument("--copy-input", action="store_true", help="also write the input clouds (same topic) into the output")
    p.add_argument("--kitti-dir", type=Path, help="directory for per-frame KITTI-style files")
    p.add_argument("--calib", type=Path, help="KITTI calib file: write KITTI result lines (camera frame) into label_2/")
    p.add_argument("--image-shape", type=int, nargs=2, metavar=("H", "W"), help="clip projected 2D boxes to this size")
    p.add_argument("--save-points", action="store_true", help="also write velodyne/NNNNNN.bin (detector frame)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ckpt", default="", help="checkpoint; default: the demo model")
    g.add_argument("--engine-dir", default="", help="directory of ONNX graphs / TensorRT engines")
    p.add_argument("--config", default="", help="config YAML")
    p.add_argument("--format", default="", help="force the checkpoint format")
    p.add_argument("--backend", default="auto", choices=Backend.values(),
                   help="auto: the whole frame on the GPU when CUDA is usable, else ONNX Runtime when installed, else torch")
    p.add_argument("--device", default="", help="cpu or cuda[:N] (default: as --backend picks)")
    p.add_argument("--score-thresh", type=float, default=-1.0, help="score threshold (negative: the config's)")
    p.add_argument("--frame-id", default="", help="detector frame (default: each cloud's frame)")
    p.add_argument("--transform", nargs="+", type=float, metavar="V", help="cloud -> detector: x y z roll pitch yaw, or 16 numbers")
    p.add_argument("--transform-from", default="", help="the cloud frame the transform maps from")
    p.add_argument("--intensity-scale", default="1.0", help="multiply intensity: a number, 1/255, or auto")
    p.add_argument("--intensity-field", default="", help="intensity field name")
    p.add_argument("--nonfinite", default="drop", choices=NonFinitePolicy.values(), help="NaN/inf points: drop or skip the cloud")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def rate_limited(log_fn):
    """``log_fn`` for a line, similar lines at most once per 5 s (with the count suppressed)."""
    repeat = RepeatFilter()

    def emit(text: str) -> None:
        line = repeat(text)
        if line is not None:
            log_fn("%s", line)

    return emit


def run(args: argparse.Namespace) -> int:
    if args.out is None and args.kitti_dir is None:
        raise PointPillarsError("nothing to write: give --out and/or --kitti-dir")
    params = NodeParams(
        markers=args.markers_topic, boxes=args.boxes_topic, frame_id=args.frame_id,
        transform=" ".join(repr(v) for v in args.transform) if args.transform else "", transform_from=args.transform_from,
        ckpt=args.ckpt, engine_dir=args.engine_dir, config=args.config, format=args.format, backend=args.backend,
        device=args.device, score_threshold=args.score_thresh, intensity_scale=args.intensity_scale,
        intensity_field=args.intensity_field, nonfinite=args.nonfinite, warmup=0,
    ).check()
    calib = None
    if args.calib is not None:
        from pointpillars_trt.io.kitti import Calibration

        calib = Calibration.from_file(args.calib)
    with CloudReader(args.bag, args.topic) as reader, ExitStack() as outputs:
        log.info("%s: %d PointCloud2 messages on %s", args.bag, len(reader), args.topic)
        # the outputs first: one that cannot be written is reported before the model loads
        bag_writer = (
            outputs.enter_context(DetectionBagWriter(
                args.out, params.markers, params.boxes, args.topic if args.copy_input else None, args.storage))
            if args.out is not None else None
        )
        kitti = KittiFrameWriter(args.kitti_dir, calib, tuple(args.image_shape) if args.image_shape else None, args.save_points) if args.kitti_dir else None
        detector = build_detector(params)
        outputs.callback(detector.close)
        log.info("model: %s; %s", detector.source.describe(), detector.path)
        if detector.source.is_random:
            log.warning("no trained checkpoint given: using RANDOM weights, the boxes are meaningless")
        processor = FrameProcessor(detector, params, keep_points=kitti is not None and kitti.save_points)
        try:
            summary = replay(reader, processor, bag_writer, kitti, progress=not args.no_progress, on_error=log.warning,
                             on_note=rate_limited(log.warning))
        finally:  # what was written survives a failure part-way
            if bag_writer is not None:
                bag_writer.close()
                log.info("wrote %s (%d frames)", args.out, bag_writer.count)
            if kitti is not None:
                log.info("wrote %s", kitti.close())
    lat = np.array(summary.latencies_ms) if summary.latencies_ms else np.zeros(1)
    log.info(
        "%d clouds processed, %d skipped, %d unreadable messages, %d boxes; median %.1f ms per cloud",
        summary.frames, summary.skipped, summary.unreadable, summary.boxes, float(np.median(lat)),
    )
    return 2 if summary.skipped or summary.unreadable else 0


def main(argv: list[str] | None = None) -> int:
    return tool_main(parse_args, run, log, argv)


if __name__ == "__main__":
    sys.exit(main())
