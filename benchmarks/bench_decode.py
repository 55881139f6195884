#!/usr/bin/env python3
"""What a ROS node's host path costs per cloud before and around the detector: PointCloud2 decoding
(``cloud_to_points``) in common driver layouts, the marker and box lists of a frame, their messages
(rosbags' ROS 2 classes and genpy's ROS 1 classes, where installed), and
``FrameProcessor.process`` (decode, NaN check, detect, markers, boxes) against ``Detector.detect`` on
the same points.

    python benchmarks/bench_decode.py [--repeat 200] [--rounds 5] [--backend auto] [--no-processor] [--tree DIR] [--json OUT.json]

Clouds: the real KITTI FOV frames in ../shared/data/kitti_frames (cycling) and a 360-degree cloud
of five of them (~100k points). Layouts: x y z intensity float32 in 16 bytes (KITTI, many drivers),
a Velodyne-driver-like 32-byte point (x y z, 4 bytes padding, intensity, ring, time), an organized
cloud of 22-byte points (x y z intensity ring time, Ouster-like), and a uint8 intensity.
Prints, per row, the median over ``--rounds`` rounds of each round's median, in microseconds;
``processor - detect`` is what the node adds around the detector. Runs on any machine; the
processor rows use the detector ``--backend`` gives (the GPU pipeline where there is one).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "data" / "kitti_frames"
BOXES = 58  # boxes of a real FOV frame from the demo model at the config's threshold (benchmark_gpu's FOV row)


def layouts():
    """name -> (fields, point_step, height) of the layouts measured."""
    from pointpillars_trt.ros.cloud import PointFieldData as F

    xyz = (F("x", 0, 7), F("y", 4, 7), F("z", 8, 7))
    return {
        "xyzi float32, 16 B": (xyz + (F("intensity", 12, 7),), 16, 1),
        "velodyne-like, 32 B": (xyz + (F("intensity", 16, 7), F("ring", 20, 4), F("time", 24, 7)), 32, 1),
        "organized 22 B (ouster-like)": (xyz + (F("intensity", 12, 7), F("ring", 16, 4), F("time", 18, 7)), 22, 5),
        "uint8 intensity, 16 B": (xyz + (F("intensity", 12, 2),), 16, 1),
    }


def median_us(fn, items, repeat: int, rounds: int) -> float:
    """Median over rounds of each round's median time of ``fn(item)``, items cycling (microseconds)."""
    per = []
    for _ in range(rounds):
        ts = []
        for i in range(repeat):
            item = items[i % len(items)]
            t = time.perf_counter_ns()
            fn(item)
            ts.append(time.perf_counter_ns() - t)
        per.append(float(np.median(ts)) / 1e3)
    return float(np.median(per))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--backend", default="auto")
    p.add_argument("--no-processor", action="store_true", help="decoding rows only (no model is loaded)")
    p.add_argument("--json", type=Path)
    p.add_argument("--tree", type=Path, default=REPO, help="the tree whose pointpillars_trt/ is measured (default: this checkout; "
                   "e.g. .landed for the landed code; this checkout's ../shared data either way)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(args.tree.resolve()))
    from pointpillars_trt.ros.cloud import Header, Stamp, cloud_to_points, points_to_cloud

    fov = [np.fromfile(f, dtype=np.float32).reshape(-1, 4) for f in sorted(FRAMES.rglob("*.bin"))]
    full = [np.concatenate(fov[i:i + 5]) for i in range(0, len(fov) - 4, 5)]
    rows: dict[str, float] = {}
    for name, (fields, step, height) in layouts().items():
        for kind, clouds in (("FOV", fov), ("360", full)):
            msgs = []
            for c in clouds:
                pts = c[: len(c) - len(c) % height].copy()
                if fields[3].datatype == 2:
                    pts[:, 3] = np.round(np.clip(pts[:, 3], 0, 1) * 255)
                msgs.append(points_to_cloud(pts, Header(Stamp(0, 0), "velodyne"), fields, point_step=step, height=height))
                assert np.array_equal(cloud_to_points(msgs[-1]), pts), name
            n = int(np.mean([m.height * m.width for m in msgs]))
            rows[f"decode {name}, {kind} ({n} points)"] = median_us(cloud_to_points, msgs, args.repeat, args.rounds)
    from pointpillars_trt.ros.markers import detections_to_boxes, detections_to_markers

    rng = np.random.default_rng(0)
    dets = [(rng.uniform(0.5, 40, (BOXES, 7)).astype(np.float32), rng.uniform(0.1, 1, BOXES).astype(np.float32),
             rng.integers(0, 3, BOXES)) for _ in range(8)]
    names = ("Car", "Pedestrian", "Cyclist")
    rows[f"markers ({BOXES} boxes)"] = median_us(lambda d: detections_to_markers(*d, names), dets, args.repeat, args.rounds)
    rows[f"box list ({BOXES} boxes)"] = median_us(lambda d: detections_to_boxes(*d, names), dets, args.repeat, args.rounds)
    marker_lists = [detections_to_markers(*d, names) for d in dets]
    box_lists = [detections_to_boxes(*d, names) for d in dets]
    header = Header(Stamp(0, 0), "velodyne")
    try:  # the message objects a node builds from the markers (rosbags' ROS 2 classes; not in every image)
        from rosbags.typesys import Stores, get_typestore

        from pointpillars_trt.ros.factories import RosbagsFactory
        from pointpillars_trt.ros.messages import marker_array_msg
    except ImportError:
        pass
    else:
        factory = RosbagsFactory(get_typestore(Stores.ROS2_HUMBLE), 2)
        rows[f"marker message, rosbags ROS 2 classes ({BOXES} boxes)"] = median_us(
            lambda m: marker_array_msg(factory, header, m), marker_lists, max(1, args.repeat // 10), args.rounds)
    try:  # the same with ROS 1's genpy classes (Debian's rospy), what the live ROS 1 node builds
        from pointpillars_trt.ros.env import import_ros
        from pointpillars_trt.ros.factories import GenpyFactory
        from pointpillars_trt.ros.messages import box_array_msg, marker_array_msg

        import_ros(1)
    except ImportError:  # RosUnavailableError is one
        pass
    else:
        factory = GenpyFactory()
        rows[f"marker message, genpy ROS 1 classes ({BOXES} boxes)"] = median_us(
            lambda m: marker_array_msg(factory, header, m), marker_lists, max(1, args.repeat // 10), args.rounds)
        rows[f"BoxArray message, genpy ROS 1 classes ({BOXES} boxes)"] = median_us(
            lambda b: box_array_msg(factory, header, b), box_lists, max(1, args.repeat // 10), args.rounds)
    if not args.no_processor:
        from pointpillars_trt.ros.processor import FrameProcessor, NodeParams, build_detector

        params = NodeParams(frame_id="velodyne", backend=args.backend)
        det = build_detector(params)
        proc = FrameProcessor(det, params)
        print(f"tree {args.tree}; detector: {det.path}")
        for kind, clouds in (("FOV", fov), ("360", full)):
            msgs = [points_to_cloud(c, Header(Stamp(i, 0), "velodyne")) for i, c in enumerate(clouds)]
            for m in msgs * 3:
                proc.process(m)
            stages: dict[str, list[float]] = {}
            rows[f"processor, {kind}"] = median_us(
                lambda m: [stages.setdefault(k, []).append(v) for k, v in proc.process(m).timings_ms.items()], msgs,
                args.repeat, args.rounds)
            for k, v in stages.items():  # where process() spends it: its own stages and the detector's
                rows[f"  processor stage {k}, {kind}"] = float(np.median(v)) * 1e3
            if "markers" in inspect.signature(proc.process).parameters:  # no marker subscriber (a tree of before has none)
                rows[f"processor without markers, {kind}"] = median_us(lambda m: proc.process(m, markers=False), msgs,
                                                                       args.repeat, args.rounds)
            rows[f"detect, {kind}"] = median_us(det.detect, clouds, args.repeat, args.rounds)
            rows[f"processor - detect, {kind}"] = rows[f"processor, {kind}"] - rows[f"detect, {kind}"]
        det.close()
    for name, us in rows.items():
        print(f"{name:<52} {us:10.1f} us")
    if args.json:
        args.json.write_text(json.dumps({"rows_us": rows, "repeat": args.repeat, "rounds": args.rounds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
