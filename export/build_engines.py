#!/usr/bin/env python3
"""Build TensorRT engines from the ONNX graphs written by export/export_onnx.py.

    python export/build_engines.py --onnx-dir out/onnx --out-dir out/engines
    python export/build_engines.py --onnx-dir out/onnx_fp16 --precision fp16 --timing-cache out/trt.cache
    python export/build_engines.py --onnx-dir out/onnx --native-scatter   # also mfn.plan (ONNX ScatterND)
    python export/build_engines.py --onnx-dir out/onnx_int8 --precision int8   # of export_onnx.py --int8 --activation-type int8

Writes ``pfn.plan`` and ``rpn.plan`` (and ``mfn.plan`` with ``--native-scatter``): raw TensorRT
plans (``trtexec --loadEngine``, Polygraphy and Triton load them as they are), each with a
``<name>.plan.json`` sidecar (config, checkpoint, ONNX and plan SHA-256, TensorRT version, GPU,
precision, pillar profile) that the TensorRT backend checks when it loads them.

Networks are strongly typed: the precision is the ONNX graphs' own (export FP16 graphs with
``export/export_onnx.py --fp16``, INT8 graphs with explicit Q/DQ with ``--int8 --activation-type int8 --calib DIR``: their
QuantizeLinear/DequantizeLinear nodes make the int8 layers, no builder flag does); ``--precision``
only checks that the graphs are what you expect.
The ``num_pillars`` profile defaults to min 1, opt = max = the config's ``voxel.max_pillars``
(the config is read from the graphs' metadata; the GPU pipeline runs the PFN on max_pillars rows).
``--hardware-compat`` builds engines for every GPU from Ampere on, ``--version-compatible`` for
later TensorRT runtimes of the same major version (both a little slower; see docs/TENSORRT.md).

Exit codes: 0 built; 2 bad input, a refused build or TensorRT (or cuda-python) not installed (one log line,
no traceback); 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pointpillars_trt.cli import tool_main
from pointpillars_trt.contract import PRECISIONS

log = logging.getLogger("build_engines")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx-dir", type=Path, required=True, help="folder with pfn.onnx, rpn.onnx (and mfn.onnx)")
    p.add_argument("--out-dir", type=Path, help="where to write the engines (default: the ONNX folder)")
    p.add_argument("--precision", choices=PRECISIONS, help="expected precision of the graphs (default: theirs)")
    p.add_argument("--min-pillars", type=int, help="profile minimum (default 1)")
    p.add_argument("--opt-pillars", type=int, help="profile optimum (default: the maximum, what the GPU pipeline feeds)")
    p.add_argument("--max-pillars", type=int, help="profile maximum (default: the config's voxel.max_pillars)")
    p.add_argument("--workspace", type=int, default=2048, metavar="MiB", help="builder workspace limit (default 2048 MiB)")
    p.add_argument("--timing-cache", type=Path, help="persistent timing cache file (read if present, updated after the build)")
    p.add_argument("--native-scatter", action="store_true", help="also build mfn.plan (ONNX ScatterND) for comparison")
    p.add_argument("--no-tf32", action="store_true", help="forbid TF32 in FP32 layers (closer to PyTorch FP32, slower)")
    p.add_argument("--hardware-compat", action="store_true", help="engines that run on every GPU from Ampere (sm_80) on (AMPERE_PLUS)")
    p.add_argument("--version-compatible", action="store_true", help="engines that later TensorRT runtimes of the same major version load")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    p.add_argument("--verbose", action="store_true", help="TensorRT info-level log")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from pointpillars_trt.tensorrt.build import BuildOptions, build_engines

    options = BuildOptions(
        precision=args.precision, min_pillars=args.min_pillars, opt_pillars=args.opt_pillars, max_pillars=args.max_pillars,
        workspace_mib=args.workspace, timing_cache=args.timing_cache, tf32=not args.no_tf32,
        hardware_compat=args.hardware_compat, version_compatible=args.version_compatible, log_severity="info" if args.verbose else "warning",
    )
    t0 = time.perf_counter()
    paths = build_engines(args.onnx_dir, args.out_dir or args.onnx_dir, options, native_scatter=args.native_scatter, device=args.device)
    for part, path in paths.items():
        log.info("wrote %s (%s)", path, part)
    log.info("built %d engine(s) in %.1f s", len(paths), time.perf_counter() - t0)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit 0, or 2 with one line (TensorRT missing, a bad graph or option: any PointPillarsError)."""
    return tool_main(parse_args, run, log, argv)


if __name__ == "__main__":
    sys.exit(main())
