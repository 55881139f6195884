#!/usr/bin/env python3
"""Export a PointPillars checkpoint to ONNX: pfn.onnx, mfn.onnx, rpn.onnx (and full.onnx).

    python export/export_onnx.py --ckpt pointpillar_7728.pth --out-dir onnx/
    python export/export_onnx.py --ckpt model.pth --format mmdet3d --out-dir onnx_fp16/ --fp16
    python export/export_onnx.py --out-dir onnx_demo/ --fused      # the demo / random model
    python export/export_onnx.py --ckpt model.pth --out-dir onnx_int8/ --fused --int8 --calib data/kitti   # KITTI train split; ONNX Runtime CPU
    python export/export_onnx.py --out-dir onnx_int8/ --int8 --calib my_clouds/ --calib-method entropy --keep-float rpn/Conv_5
    python export/export_onnx.py --out-dir onnx_trt_int8/ --int8 --calib my_clouds/ --activation-type int8   # for TensorRT

The dynamic axis of the PFN and MFN graphs is ``num_pillars``; the RPN graph is static. Every
graph carries the config, the checkpoint's SHA-256, its part and precision in its metadata
(``pointpillars_trt.*``), which the ONNX Runtime and TensorRT backends check at load time.
FP16 graphs (``--fp16``) are meant for strongly typed TensorRT builds; write them to their own
folder (the file names are the same). See docs/ACCURACY.md for their measured accuracy.
INT8 graphs (``--int8``) carry explicit QuantizeLinear/DequantizeLinear nodes calibrated on your
frames (``--calib DIR``: a folder of point files or a KITTI root, or ``--calib-synthetic N``): the
ONNX Runtime backend runs them on the CPU. Their activations are uint8 by default: asymmetric over
``[0, max]`` after the ReLUs, twice int8's resolution, for ONNX Runtime's CPU only (within 0.2 AP of FP32
on the demo model's val split, docs/ACCURACY.md). For TensorRT export with ``--activation-type int8``
(symmetric, zero points 0: TensorRT's only form; 2.2 Car AP below FP32 on the same split):
``export/build_engines.py`` builds INT8 engines from those and refuses uint8 graphs with the reason. The calibration frames, method and activation type are in each graph's metadata, the ranges in
``calibration.json`` beside them. ``tools/int8_sweep.py`` measures the calibration choices and which
layers to leave float (``--keep-float``, ``--float-first-conv``, ``--float-head``, ``--float-first-block``); see docs/ACCURACY.md.

Exit codes: 0 success, 2 bad input (checkpoint, config, failed graph check), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pointpillars_trt.cli import LOG_FORMAT
from pointpillars_trt.errors import PointPillarsError
from pointpillars_trt.exporter.calibration import DEFAULT_MAX_FRAMES
from pointpillars_trt.exporter.quantize import ActivationType, CalibrationMethod, QuantizeOptions
from pointpillars_trt.options import CheckpointFormat

log = logging.getLogger("export_onnx")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, help="checkpoint (native .safetensors, OpenPCDet, mmdet3d, zhulf0804); default: the demo model, else random weights")
    p.add_argument("--config", help="config YAML (or a name in configs/); default: the checkpoint's, else KITTI 3-class")
    p.add_argument("--format", choices=CheckpointFormat.values(), help="force the checkpoint format")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for the .onnx files (created)")
    p.add_argument("--fp16", action="store_true", help="float16 graphs for strongly typed TensorRT builds")
    p.add_argument("--fused", action="store_true", help="also write full.onnx: PFN, scatter and RPN in one graph")
    q = p.add_argument_group("INT8 (explicit Q/DQ graphs)")
    q.add_argument("--int8", action="store_true", help="int8 graphs, calibrated on --calib or --calib-synthetic frames")
    src = q.add_mutually_exclusive_group()
    src.add_argument("--calib", type=Path, metavar="DIR", help="calibration frames: a folder of point files, or a KITTI root (see --calib-split)")
    src.add_argument("--calib-synthetic", type=int, metavar="N", help="calibrate on N frames of our synthetic generator (seed 0: the demo model's training frames)")
    q.add_argument("--calib-split", default="train", help="the KITTI split of --calib (default: train)")
    q.add_argument("--calib-frames", type=int, default=DEFAULT_MAX_FRAMES, metavar="N",
                   help=f"use at most N frames of --calib, spread evenly (default {DEFAULT_MAX_FRAMES})")
    q.add_argument("--calib-method", choices=CalibrationMethod.values(), default=str(QuantizeOptions.method),
                   help=f"activation ranges (default {QuantizeOptions.method})")
    q.add_argument("--calib-percentile", type=float, default=QuantizeOptions.percentile, help="for --calib-method percentile (default %(default)s)")
    q.add_argument("--activation-type", choices=ActivationType.values(), default=str(QuantizeOptions.activation_type),
                   help="uint8: asymmetric [0, max] after the ReLUs, ONNX Runtime's CPU only (build_engines.py refuses it); "
                        "int8: symmetric, for TensorRT (and ONNX Runtime) (default %(default)s)")
    q.add_argument("--calib-bins", type=int, default=QuantizeOptions.histogram_bins, metavar="N",
                   help="histogram bins of entropy / percentile calibration (default %(default)s)")
    q.add_argument("--keep-float", nargs="+", default=(), metavar="NAME", help="nodes to leave in float (names as in the graphs, e.g. rpn/Conv_5)")
    q.add_argument("--float-first-conv", action=argparse.BooleanOptionalAction, default=QuantizeOptions.float_first_conv,
                   help="leave the RPN's first convolution in float (default %(default)s)")
    q.add_argument("--float-head", action=argparse.BooleanOptionalAction, default=QuantizeOptions.float_head,
                   help="leave the RPN's output convolutions (class, box, direction) in float (default %(default)s)")
    q.add_argument("--float-first-block", action=argparse.BooleanOptionalAction, default=QuantizeOptions.float_first_block,
                   help="leave the RPN's first block and the two convolutions reading its output (its upsampling, the next block's first) in float (default %(default)s)")
    q.add_argument("--calib-ranges", type=Path, metavar="FILE",
                   help="reuse the calibration.json of an earlier --int8 export from the same frames and method (no calibration run)")
    q.add_argument("--calib-threads", type=int, metavar="N", help="ONNX Runtime threads of the calibration run (default: all cores)")
    q.add_argument("--int8-pfn", action="store_true", help="quantize the PFN's linear layer too (default: float; see docs/ACCURACY.md)")
    q.add_argument("--trt-placement", action="store_true",
                   help="Q/DQ on the inputs and weights of each Conv/MatMul only (no Q/DQ after them): TensorRT-only graphs, slow in ONNX Runtime")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    calib_given = args.calib is not None or args.calib_synthetic is not None
    if args.int8 != calib_given:
        p.error("--int8 needs --calib DIR or --calib-synthetic N" if args.int8 else "--calib/--calib-synthetic need --int8")
    if args.int8 and args.fp16:
        p.error("choose --fp16 or --int8")
    return args


def int8_export(args: argparse.Namespace):
    """The :class:`Int8Export` of ``--int8`` (None without it)."""
    from pointpillars_trt.exporter import Int8Export, calibration_frames, synthetic_frames

    if not args.int8:
        return None
    if args.calib is not None:
        frames = calibration_frames(args.calib, args.calib_split, args.calib_frames)
    else:
        frames = synthetic_frames(args.calib_synthetic)
    options = QuantizeOptions(method=args.calib_method, percentile=args.calib_percentile, keep_float=tuple(args.keep_float),
                              quantize_pfn=args.int8_pfn, layer_outputs=not args.trt_placement,
                              float_first_conv=args.float_first_conv, float_head=args.float_head,
                              float_first_block=args.float_first_block,
                              activation_type=args.activation_type, histogram_bins=args.calib_bins)
    what = f"reusing the ranges of {args.calib_ranges}, made" if args.calib_ranges else "calibrating"
    log.info("%s (%s) on %d frames of %s: %s", what, options.method, len(frames), frames.source, ", ".join(frames.names))
    return Int8Export(frames, options, ranges=args.calib_ranges, threads=args.calib_threads)


def load_weights(args: argparse.Namespace):
    """``(cfg, state_dict, checkpoint_path or None, description)`` like ``Detector.from_checkpoint``."""
    from pointpillars_trt.detector import resolve_weights

    cfg, state_dict, source = resolve_weights(args.ckpt, args.config, args.format)
    if source.is_random:
        return cfg, state_dict, None, "RANDOM weights (no checkpoint given and no demo model shipped)"
    return cfg, state_dict, source.path, source.describe()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    try:
        from pointpillars_trt.exporter import export_onnx, graph_op_types, read_graph_metadata

        cfg, state_dict, ckpt_path, what = load_weights(args)
        log.info("exporting %s with config %s (%s)", what, cfg.name, cfg.hash())
        int8 = int8_export(args)
        paths = export_onnx(state_dict, cfg, args.out_dir, fp16=args.fp16, checkpoint_path=ckpt_path, fused=args.fused, int8=int8)
    except PointPillarsError as exc:
        log.error("%s", exc)
        return 2
    except ImportError as exc:
        log.error("export needs the onnx package (pip install onnx): %s", exc)
        return 2
    for part, path in paths.items():
        meta = read_graph_metadata(path)
        log.info("wrote %s: %s, %s, %.1f MB, ops %s", path, meta.part, meta.precision, path.stat().st_size / 1e6,
                 ", ".join(sorted(graph_op_types(path))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
