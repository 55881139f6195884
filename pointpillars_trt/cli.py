"""The detector's command-line options, written once for every tool and node: argparse arguments
whose choice lists come from :mod:`pointpillars_trt.options`, and the one call that turns them into
a :class:`~pointpillars_trt.detector.Detector` (:func:`~pointpillars_trt.detector.build_detector`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .config import check_unit_interval
from .options import Backend, CheckpointFormat, NonFinitePolicy, OverflowPolicy, Precision, Voxelizer

#: every tool's and node's log line: ``name: LEVEL: message``
LOG_FORMAT = "%(name)s: %(levelname)s: %(message)s"

#: the arguments :func:`add_detector_arguments` adds that become detector options when given
OPTION_ARGS = ("precision", "voxelizer", "on_overflow", "nonfinite", "max_batch")


def add_detector_arguments(p: argparse.ArgumentParser, *, nonfinite: str = "error", prefix: str = "") -> None:
    """``--ckpt --format --config --engine-dir --backend --device --precision --voxelizer
    --on-overflow --nonfinite`` (each after ``prefix``, e.g. ``a-``, for tools that build two)."""
    g = p.add_argument_group(f"detector {prefix.rstrip('-')}".strip())
    f = f"--{prefix}"
    g.add_argument(f"{f}ckpt", type=Path, help="checkpoint (native .safetensors, OpenPCDet, mmdet3d, zhulf0804); default: the demo model")
    g.add_argument(f"{f}format", choices=CheckpointFormat.values(), help="force the checkpoint format")
    g.add_argument(f"{f}config", help="config YAML (or a name in configs/); default: the checkpoint's, else KITTI 3-class")
    g.add_argument(f"{f}engine-dir", type=Path, help="folder of TensorRT engines or ONNX graphs (instead of --ckpt)")
    g.add_argument(f"{f}backend", default="auto", choices=Backend.values(),
                   help="auto: the whole frame on the GPU when CUDA is usable, else ONNX Runtime when installed, else torch")
    g.add_argument(f"{f}device", help="cpu or cuda[:N] (default: as --backend picks)")
    g.add_argument(f"{f}precision", choices=Precision.values(), help="network precision (default: the backend's)")
    g.add_argument(f"{f}voxelizer", choices=Voxelizer.values(), help="CPU voxelizer of the host backends")
    g.add_argument(f"{f}max-batch", type=int, help="frames per GPU replay in batch runs")
    g.add_argument(f"{f}on-overflow", default="warn", choices=OverflowPolicy.values(),
                   help="more pillars than allowed: warn with counts and drop, or fail")
    g.add_argument(f"{f}nonfinite", default=nonfinite, choices=NonFinitePolicy.values(), help="NaN/inf points: fail, or drop them")


def unit_interval(text: str) -> float:
    """argparse ``type`` of a score threshold: a number in ``[0, 1]`` (argparse's one-line error otherwise)."""
    try:
        return check_unit_interval("value", float(text))
    except ValueError:  # ConfigError is one
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None


def detector_from_args(args: argparse.Namespace, prefix: str = "", **options: Any):
    """The detector the arguments of :func:`add_detector_arguments` describe (``options`` add to them)."""
    from .detector import build_detector

    key = prefix.replace("-", "_")
    get = lambda name: getattr(args, key + name)  # noqa: E731
    given = {name: get(name) for name in OPTION_ARGS if get(name) is not None}
    return build_detector(get("ckpt"), get("engine_dir"), config=get("config"), backend=get("backend"), device=get("device"),
                          format=get("format"), **given, **options)


__all__ = ["LOG_FORMAT", "OPTION_ARGS", "add_detector_arguments", "detector_from_args", "unit_interval"]


def tool_main(parse_args: Any, run: Any, log: Any, argv: list[str] | None = None) -> int:
    """A tool's ``main``: log lines as ``name: LEVEL: message``, ``run(parse_args(argv))``; a
    :class:`~pointpillars_trt.errors.PointPillarsError` becomes one line on ``log`` and exit 2,
    never a traceback."""
    import logging

    from .errors import PointPillarsError

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    args = parse_args(argv)
    try:
        return run(args)
    except PointPillarsError as exc:
        log.error("%s", exc)
        return 2
