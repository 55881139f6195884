#!/usr/bin/env python3
"""Export a PointPillars checkpoint to ONNX: pfn.onnx, mfn.onnx, rpn.onnx (and full.onnx).

    python export/export_onnx.py --ckpt pointpillar_7728.pth --out-dir onnx/
    python export/export_onnx.py --ckpt model.pth --format mmdet3d --out-dir onnx_fp16/ --fp16
    python export/export_onnx.py --out-dir onnx_demo/ --fused      # the demo / random model

The dynamic axis of the PFN and MFN graphs is ``num_pillars``; the RPN graph is static. Every
graph carries the config, the checkpoint's SHA-256, its part and precision in its metadata
(``pointpillars_trt.*``), which the ONNX Runtime and TensorRT backends check at load time.
FP16 graphs (``--fp16``) are meant for strongly typed TensorRT builds; write them to their own
folder (the file names are the same). See docs/ACCURACY.md for their measured accuracy.

Exit codes: 0 success, 2 bad input (checkpoint, config, failed graph check), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pointpillars_trt.options import CheckpointFormat
from pointpillars_trt.errors import PointPillarsError

log = logging.getLogger("export_onnx")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, help="checkpoint (native .safetensors, OpenPCDet, mmdet3d, zhulf0804); default: the demo model, else random weights")
    p.add_argument("--config", help="config YAML (or a name in configs/); default: the checkpoint's, else KITTI 3-class")
    p.add_argument("--format", choices=CheckpointFormat.values(), help="force the checkpoint format")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for the .onnx files (created)")
    p.add_argument("--fp16", action="store_true", help="float16 graphs for strongly typed TensorRT builds")
    p.add_argument("--fused", action="store_true", help="also write full.onnx: PFN, scatter and RPN in one graph")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def load_weights(args: argparse.Namespace):
    """``(cfg, state_dict, checkpoint_path or None, description)`` like ``Detector.from_checkpoint``."""
    from pointpillars_trt.detector import resolve_weights

    cfg, state_dict, source = resolve_weights(args.ckpt, args.config, args.format)
    if source.is_random:
        return cfg, state_dict, None, "RANDOM weights (no checkpoint given and no demo model shipped)"
    return cfg, state_dict, source.path, source.describe()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from pointpillars_trt.exporter import export_onnx, graph_op_types, read_graph_metadata

        cfg, state_dict, ckpt_path, what = load_weights(args)
        log.info("exporting %s with config %s (%s)", what, cfg.name, cfg.hash())
        paths = export_onnx(state_dict, cfg, args.out_dir, fp16=args.fp16, checkpoint_path=ckpt_path, fused=args.fused)
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
