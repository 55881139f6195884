#!/usr/bin/env python3
"""INT8 sensitivity: the 3D AP drop when each layer alone is quantized (everything else float), or
(``--sqnr``) each node's signal-to-quantization-noise ratio against float, without an AP run.

    tools/int8_sensitivity.py --int8-dir onnx_int8/ --data-root data/kitti --split val [--max-frames 40] [--json sens.json]
    tools/int8_sensitivity.py --sqnr --int8-dir onnx_int8/ --data-root data/kitti --max-frames 8

``--int8-dir``: a folder written by ``export/export_onnx.py --int8``; its ``calibration.json``
(the activation ranges) and the calibration record in its graphs are reused, so no layer is
calibrated again. The weights are ``--ckpt`` (default: the demo model) and must be the ones the
graphs hold. For each quantizable node (``pfn/MatMul_*``, ``rpn/Conv_*``; or ``--layers``) the tool
writes graphs where only that node is int8 and evaluates them with the ONNX Runtime backend on the
first ``--max-frames`` frames of the split, next to the float graphs and the whole INT8 folder.
Prints a table (AP R40 moderate per class, 3D, and the drop from float) sorted by the largest drop;
nodes with a large drop are the candidates for ``export_onnx.py --keep-float``. One process, one
node after the other: ``tools/int8_sweep.py --sensitivity`` does the same on every core at once.

``--sqnr`` (a minute, not hours): the folder's ``full.onnx`` (export with ``--fused``) and the float
graph of the same weights run on the first ``--max-frames`` frames (a few are enough), and for each
Conv / MatMul node the SQNR (dB) of its input and its output against float is printed, lowest
output first, with the graph outputs' (:mod:`pointpillars_trt.exporter.sqnr`). Where the output's
SQNR drops well below the input's, that node loses the precision.

Exit codes: 0 success, 2 bad input (one log line).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.cli import LOG_FORMAT  # noqa: E402
from pointpillars_trt.errors import PointPillarsError  # noqa: E402

log = logging.getLogger("int8_sensitivity")
CLASSES = ("Car", "Pedestrian", "Cyclist")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--int8-dir", type=Path, required=True, help="folder of INT8 graphs with calibration.json (export_onnx.py --int8)")
    p.add_argument("--ckpt", type=Path, help="the checkpoint the graphs were exported from (default: the demo model)")
    p.add_argument("--data-root", type=Path, required=True, help="KITTI-layout root (ImageSets/, training/)")
    p.add_argument("--split", default="val", help="ImageSets/<split>.txt (default: val)")
    p.add_argument("--max-frames", type=int, default=40, help="evaluate on the first N frames of the split (default 40)")
    p.add_argument("--layers", nargs="+", help="only these nodes (default: every quantizable node)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    p.add_argument("--sqnr", action="store_true", help="the SQNR of each node against float instead of the AP per layer")
    p.add_argument("--json", type=Path, help="write the results here")
    return p.parse_args(argv)


def moderate_3d(result: dict) -> dict[str, float]:
    """3D AP R40 moderate per class, in percent."""
    return {c: float(result["R40"][c]["3d"]["moderate"]) for c in CLASSES if c in result["R40"]}


def evaluate_dir(engine_dir: Path, kitti, gt, threads: int | None) -> dict[str, float]:
    """3D AP R40 moderate of the graphs in ``engine_dir`` (ONNX Runtime backend) on ``kitti``."""
    from pointpillars_trt.detector import Detector
    from pointpillars_trt.eval import evaluate
    from pointpillars_trt.eval.dataset import load_predictions, predict_split
    from pointpillars_trt.io.pointcloud import load_points

    det = Detector.from_engine_dir(engine_dir, backend="onnxruntime", device="cpu", threads=threads)
    with tempfile.TemporaryDirectory(prefix="int8_sens_") as tmp:
        try:
            predict_split(kitti, det.detect, tmp, load_points, progress=False)
        finally:
            det.close()
        return moderate_3d(evaluate(gt, load_predictions(tmp, kitti.frame_ids), classes=CLASSES))


def export_variant(state_dict, cfg, ckpt, meta, int8_dir: Path, out: Path, only: str | None) -> Path:
    """Graphs in ``out``: float (``only`` None) or with only node ``only`` in int8, from the ranges of ``int8_dir``."""
    from pointpillars_trt.exporter import CalibrationFrames, Int8Export, QuantizeOptions, build_graphs, as_model, export_onnx
    from pointpillars_trt.exporter.quantize import CALIBRATION_FILE, quantizable_nodes

    if only is None:
        return export_onnx(state_dict, cfg, out, checkpoint_path=ckpt)["pfn"].parent
    q = meta.quantization
    graphs = build_graphs(as_model(state_dict, cfg), cfg, "fp32", fused=True, deconv_as_conv=True)
    others = tuple(n for n in quantizable_nodes(graphs["full"]) if n != only)
    options = QuantizeOptions(method=q.method, percentile=q.percentile or QuantizeOptions.percentile, keep_float=others,
                              quantize_pfn=only.startswith("pfn/"), layer_outputs=False, activation_type=q.activation_type,
                              float_first_conv=False, float_head=False, float_first_block=False)  # no Q/DQ on the other layers' outputs
    frames = CalibrationFrames(q.calibration, q.frames, lambda i: None)
    int8 = Int8Export(frames, options, ranges=int8_dir / CALIBRATION_FILE)
    return export_onnx(state_dict, cfg, out, checkpoint_path=ckpt, int8=int8)["pfn"].parent


def run(args: argparse.Namespace) -> dict:
    from pointpillars_trt.eval.dataset import load_ground_truth, open_split
    from pointpillars_trt.exporter import as_model, build_graphs
    from pointpillars_trt.exporter.quantize import quantizable_nodes

    cfg, state_dict, source, meta = checked_weights(args, args.int8_dir / "rpn.onnx")
    kitti = open_split(args.data_root, args.split)
    kitti = dataclasses.replace(kitti, frame_ids=kitti.frame_ids[: args.max_frames])
    gt = load_ground_truth(kitti)
    full = build_graphs(as_model(state_dict, cfg), cfg, "fp32", fused=True, deconv_as_conv=True)["full"]
    layers = args.layers or quantizable_nodes(full)
    ckpt = None if source.is_random else source.path
    rows = {}
    with tempfile.TemporaryDirectory(prefix="int8_sens_graphs_") as tmp:
        fp32 = evaluate_dir(export_variant(state_dict, cfg, ckpt, meta, args.int8_dir, Path(tmp) / "fp32", None), kitti, gt, args.threads)
        log.info("float: %s", fp32)
        rows["(all int8)"] = evaluate_dir(args.int8_dir, kitti, gt, args.threads)
        log.info("all int8 (%s): %s", args.int8_dir, rows["(all int8)"])
        for layer in layers:
            out = Path(tmp) / layer.replace("/", "_")
            rows[layer] = evaluate_dir(export_variant(state_dict, cfg, ckpt, meta, args.int8_dir, out, layer), kitti, gt, args.threads)
            log.info("%s alone: %s", layer, rows[layer])
    drops = {k: {c: fp32[c] - v[c] for c in v} for k, v in rows.items()}
    return {"frames": len(kitti.frame_ids), "split": args.split, "data_root": str(args.data_root), "int8_dir": str(args.int8_dir),
            "method": meta.quantization.method, "float": fp32, "ap": rows, "drop": drops}


def checked_weights(args: argparse.Namespace, graph: Path):
    """``(cfg, state_dict, source)`` of ``--ckpt``, and the metadata of ``graph`` (an int8 graph holding those weights)."""
    from pointpillars_trt.detector import resolve_weights
    from pointpillars_trt.exporter import read_graph_metadata, state_dict_sha256

    if not graph.is_file():
        raise PointPillarsError(f"{graph}: not found" + ("; export with --int8 --fused" if graph.name == "full.onnx" else ""))
    meta = read_graph_metadata(graph)
    if meta.precision != "int8":
        raise PointPillarsError(f"{args.int8_dir}: holds {meta.precision} graphs, not int8 ones")
    cfg, state_dict, source = resolve_weights(args.ckpt, None, None)
    if state_dict_sha256(state_dict) != meta.weights_sha256:
        raise PointPillarsError(f"{args.int8_dir}: its graphs hold other weights than {source.describe()}; pass their --ckpt")
    return cfg, state_dict, source, meta


def run_sqnr(args: argparse.Namespace) -> dict:
    """The ``--sqnr`` report of ``args.int8_dir / full.onnx`` on the first ``--max-frames`` frames."""
    import onnx

    from pointpillars_trt.eval.dataset import load_frame_points, open_split
    from pointpillars_trt.exporter import as_model, build_graphs
    from pointpillars_trt.exporter.calibration import frame_feeds
    from pointpillars_trt.exporter.sqnr import activation_sqnr
    from pointpillars_trt.io.pointcloud import load_points

    cfg, state_dict, _, meta = checked_weights(args, args.int8_dir / "full.onnx")
    kitti = open_split(args.data_root, args.split)
    ids = kitti.frame_ids[: args.max_frames]
    float_full = build_graphs(as_model(state_dict, cfg), cfg, "fp32", fused=True, deconv_as_conv=True)["full"]
    feeds = (frame_feeds(cfg, load_frame_points(kitti, i, True, load_points)) for i in ids)  # the FOV points, as evaluated
    result = activation_sqnr(float_full, onnx.load(str(args.int8_dir / "full.onnx")), feeds, args.threads or 1)
    q = meta.quantization
    return {"int8_dir": str(args.int8_dir), "split": args.split, "frames": list(ids), "method": q.method,
            "activation_type": q.activation_type, "keep_float": list(q.keep_float), **result}


def format_sqnr(result: dict) -> str:
    """Graph outputs, then nodes by output SQNR, lowest first (those left float marked)."""
    keep = set(result["keep_float"])
    lines = [f"SQNR (dB) against float, {len(result['frames'])} frames of {result['split']}; "
             f"{result['method']}, {result['activation_type']} activations", f"{'output':<28}{'SQNR':>10}"]
    lines += [f"{k:<28}{v:>10.2f}" for k, v in result["outputs"].items()]
    lines += ["", f"{'node':<28}{'input':>10}{'output':>10}"]
    for name, r in sorted(result["nodes"].items(), key=lambda kv: kv[1]["output_db"]):
        lines.append(f"{name + (' (float)' if name in keep else ''):<28}{r['input_db']:>10.2f}{r['output_db']:>10.2f}")
    return "\n".join(lines)


def format_rows(result: dict) -> str:
    lines = [f"3D AP R40 moderate on {result['frames']} frames of {result['split']}; float {result['float']}",
             f"{'quantized alone':<24}" + "".join(f"{c + ' drop':>16}" for c in CLASSES)]
    order = sorted(result["drop"], key=lambda k: -max(result["drop"][k].values()))
    for k in order:
        lines.append(f"{k:<24}" + "".join(f"{result['drop'][k].get(c, float('nan')):>16.2f}" for c in CLASSES))
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        result = run_sqnr(args) if args.sqnr else run(args)
    except (PointPillarsError, ValueError, OSError) as exc:
        log.error("%s", exc)
        return 2
    print(format_sqnr(result) if args.sqnr else format_rows(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
