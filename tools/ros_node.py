#!/usr/bin/env python3
"""Run the PointPillars detector as a ROS node: PointCloud2 in, MarkerArray + boxes + latency out.

    # ROS 1 (rospy from Debian's python3-rospy or /opt/ros/noetic), from the project's venv:
    .venv/bin/python tools/ros_node.py --ros 1 --ckpt model.safetensors --input /velodyne_points
    # ROS 2 (source /opt/ros/<distro>/setup.bash first):
    .venv/bin/python tools/ros_node.py --ros 2 --engine-dir engines/ --backend tensorrt --input /points

ROS parameters of the same names (``~input``, ``~score_threshold``, ... on ROS 1; ``-p name:=value``
on ROS 2) override the flags. Unknown arguments (ROS 1 remappings such as ``__name:=x``,
``/points:=/velodyne_points``; ROS 2 ``--ros-args ...``) are passed to rospy / rclpy.
See docs/ROS.md.

Exit codes: 0 clean shutdown, 2 bad configuration (checkpoint, parameters, ROS not importable),
1 unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pointpillars_trt.cli import LOG_FORMAT
from pointpillars_trt.errors import PointPillarsError
from pointpillars_trt.options import Backend, NonFinitePolicy
from pointpillars_trt.ros.processor import BOX_MSG_CHOICES, NodeParams

log = logging.getLogger("ros_node")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    d = NodeParams()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ros", type=int, choices=(1, 2), required=True, help="ROS version: 1 (rospy) or 2 (rclpy)")
    p.add_argument("--name", default="pointpillars", help="node name")
    p.add_argument("--master-timeout", type=float, default=30.0, help="ROS 1: seconds to wait for the master")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ckpt", default=d.ckpt, help="checkpoint (native, OpenPCDet, mmdet3d, zhulf0804); default: demo model")
    g.add_argument("--engine-dir", default=d.engine_dir, help="directory of ONNX graphs / TensorRT engines")
    p.add_argument("--config", default=d.config, help="config YAML (default: the checkpoint's)")
    p.add_argument("--format", default=d.format, help="force the checkpoint format")
    p.add_argument("--backend", default=d.backend, choices=Backend.values(), help="auto: the whole frame on the GPU when CUDA is usable, else ONNX Runtime, else torch")
    p.add_argument("--device", default=d.device, help="cpu or cuda[:N] (default: as --backend picks)")
    p.add_argument("--input", default=d.input, help="PointCloud2 topic")
    p.add_argument("--markers", default=d.markers, help="MarkerArray topic")
    p.add_argument("--boxes", default=d.boxes, help="box-array topic (Detection3DArray / BoxArray)")
    p.add_argument("--latency-topic", dest="latency", default=d.latency, help="Float32 latency topic (ms)")
    p.add_argument("--box-msg", default=d.box_msg, choices=BOX_MSG_CHOICES, help="box-array message type")
    p.add_argument("--frame-id", default=d.frame_id, help="detector frame (default: each cloud's own frame)")
    p.add_argument("--transform", nargs="+", type=float, metavar="V",
                   help="cloud -> detector frame: x y z roll pitch yaw, or 16 numbers (row-major 4x4)")
    p.add_argument("--transform-from", default=d.transform_from, help="the cloud frame the transform maps from (default: any)")
    p.add_argument("--score-thresh", dest="score_threshold", type=float, default=d.score_threshold,
                   help="score threshold (negative: the config's)")
    p.add_argument("--intensity-scale", default=d.intensity_scale, help="multiply intensity: a number, 1/255, or auto")
    p.add_argument("--intensity-field", default=d.intensity_field, help="intensity field name (default: intensity, i, reflectance)")
    p.add_argument("--nonfinite", default=d.nonfinite, choices=NonFinitePolicy.values(), help="NaN/inf points: drop them or reject the cloud")
    p.add_argument("--warmup", type=int, default=d.warmup, help="warm-up frames before subscribing")
    p.add_argument("--marker-ns", default=d.marker_ns, help="marker namespace")
    p.add_argument("--marker-lifetime", type=float, default=d.marker_lifetime, help="marker lifetime in s (0: until replaced)")
    return p.parse_known_args(argv)


def params_from_args(args: argparse.Namespace) -> NodeParams:
    values = {name: getattr(args, name) for name in NodeParams.names() if hasattr(args, name)}
    values["transform"] = " ".join(repr(v) for v in args.transform) if args.transform else ""
    return NodeParams(**values)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    args, ros_args = parse_args(argv)
    try:
        params = params_from_args(args).check()
        if args.ros == 1:
            from pointpillars_trt.ros import ros1_node

            return ros1_node.run(params, [sys.argv[0], *ros_args], node_name=args.name, master_timeout_s=args.master_timeout)
        from pointpillars_trt.ros import ros2_node

        return ros2_node.run(params, [sys.argv[0], *ros_args], node_name=args.name)
    except PointPillarsError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
