#!/usr/bin/env python3
"""INT8 calibration sweep: export every candidate, evaluate all of them on the whole synthetic val split.

    python tools/int8_sweep.py --out sweep/ [--workers 16]                      # the default candidates
    python tools/int8_sweep.py --out sens/ --candidates entropy-64 --sensitivity entropy-64
    python tools/int8_sweep.py --out tiny/ --frames 40 --val-fraction 0.2 --candidates entropy-8 minmax-8
    python tools/int8_sweep.py --out qat/ --ckpt qat.safetensors --ranges qat.calibration.json \
        --reference-ckpt pointpillars_trt/data/demo_model.safetensors --candidates entropy-64+first+head   # a QAT model

One command, no network, no GPU: the demo model's synthetic data is generated first (the model
card's ``tools/make_synthetic.py --frames 2400 --seed 0 --val-fraction 0.15 --generator-version V``, V being the
model's own (its ``data_generator_version`` metadata: 3 for the shipped demo model)
with ``--workers`` processes) into ``--work-dir`` (default: a temporary folder, removed at the end),
unless ``--data-root`` names one already made. Calibration frames come from its **train** split
(spread evenly), never from val and never from the real KITTI hold-outs. Then ``--workers``
processes (ONNX Runtime with one thread each) export and evaluate the FP32 graphs and every
candidate on the whole val split (3D AP R40 moderate, KITTI protocol).

A candidate is ``METHOD-FRAMES[+first][+head][+block1][+uint8][+binsN][+NODE...]``: METHOD ``minmax``,
``entropy`` or ``percentile<P>`` (e.g. ``percentile99.999``), FRAMES calibration frames, ``+first`` /
``+head`` / ``+block1`` the RPN's first / output convolutions / first block and the two convolutions reading its output left float
(``export_onnx.py --float-first-conv / --float-head / --float-first-block``; a candidate has only the ones
it names), ``+uint8`` uint8 activations (``--activation-type uint8``, ONNX Runtime only),
``+bins4096`` the calibration histogram's bins (``--calib-bins``), ``+rpn/Conv_4`` a node left float
by name. Candidates that differ only in what stays float share one calibration. ``--sensitivity CANDIDATE`` adds, with CANDIDATE's ranges, one
row per RPN node quantized alone (everything else float).

A QAT checkpoint (``tools/qat.py``): ``--ranges`` gives every candidate the activation ranges it was
fine-tuned against (no calibration) and ``--reference-ckpt`` makes the FP32 row, which the drops are
measured from, the float model it was fine-tuned from.

Writes ``sweep.json`` and ``sweep.md`` (the tables docs/ACCURACY.md takes) into ``--out``.
Exit codes: 0 success, 2 bad input or a failed step (one log line).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pointpillars_trt.cli import LOG_FORMAT  # noqa: E402
from pointpillars_trt.errors import ConfigError, PointPillarsError  # noqa: E402

log = logging.getLogger("int8_sweep")
CLASSES = ("Car", "Pedestrian", "Cyclist")
TARGET_DROP = 1.0  # issue 15: at most 1.0 AP point lost per class
# the export's default (QuantizeOptions(): entropy, 64 frames, first block and head float, uint8), the other methods and
# frame counts with the same structure, the TensorRT form (int8), and everything int8 (the recipe before 2026-12-01)
DEFAULT_CANDIDATES = ("entropy-64+first+head+block1+uint8", "entropy-16+first+head+block1+uint8",
                      "entropy-128+first+head+block1+uint8", "minmax-64+first+head+block1+uint8",
                      "percentile99.99-64+first+head+block1+uint8", "entropy-64+first+head+block1", "entropy-64")
_SPEC = re.compile(r"^(minmax|entropy|percentile(\d+(?:\.\d+)?))-(\d+)((?:\+[^+]+)*)$")
_BINS = re.compile(r"^bins(\d+)$")


@dataclass(frozen=True)
class Candidate:
    """One INT8 export to measure: calibration ``method`` (``percentile`` for ``percentile``),
    ``frames`` train frames, and what stays float."""

    spec: str
    method: str
    percentile: float | None
    frames: int
    float_first_conv: bool = False
    float_head: bool = False
    keep_float: tuple[str, ...] = ()
    activation_type: str = "int8"
    histogram_bins: int | None = None  # None: QuantizeOptions' default
    float_first_block: bool = False

    @property
    def calibration(self) -> str:
        """What decides the ranges (candidates sharing it share one calibration): the method and
        frames, the activation type and the histogram's bins."""
        bins = f"+bins{self.histogram_bins}" if self.histogram_bins else ""
        return f"{self.spec.split('+', 1)[0]}+{self.activation_type}{bins}"


def parse_candidate(spec: str) -> Candidate:
    """``METHOD-FRAMES[+first][+head][+block1][+NODE...]`` (module docstring) -> :class:`Candidate`; ConfigError if malformed."""
    m = _SPEC.match(spec)
    if m is None or int(m.group(3)) < 1:
        raise ConfigError(f"--candidates: {spec!r} is not METHOD-FRAMES[+first][+head][+block1][+uint8][+binsN][+NODE...] "
                          "(METHOD minmax, entropy or percentile<P>, e.g. entropy-64+head)")
    extras = [e for e in m.group(4).split("+") if e]
    method = "percentile" if m.group(2) else m.group(1)
    bins = [int(b.group(1)) for b in map(_BINS.match, extras) if b]
    nodes = tuple(e for e in extras if e not in ("first", "head", "block1", "uint8") and not _BINS.match(e))
    return Candidate(spec, method, float(m.group(2)) if m.group(2) else None, int(m.group(3)),
                     "first" in extras, "head" in extras, nodes, "uint8" if "uint8" in extras else "int8",
                     bins[-1] if bins else None, "block1" in extras)


def quantize_options(c: Candidate, keep_float: tuple[str, ...] | None = None):
    """The :class:`QuantizeOptions` of ``c``. With ``keep_float`` (a sensitivity row: every other
    node), those stay float and so do the ReLU/Concat outputs (``layer_outputs=False``: only the
    one node's input and weights are int8, else every activation would be quantized in every row)."""
    from pointpillars_trt.exporter import QuantizeOptions

    alone = keep_float is not None
    return QuantizeOptions(method=c.method, percentile=c.percentile or QuantizeOptions.percentile,
                           keep_float=keep_float if alone else c.keep_float, layer_outputs=not alone,
                           float_first_conv=c.float_first_conv and not alone, float_head=c.float_head and not alone,
                           float_first_block=c.float_first_block and not alone,
                           activation_type=c.activation_type, histogram_bins=c.histogram_bins or QuantizeOptions.histogram_bins)


# -- work done in the worker processes (top-level functions: they are pickled by name) ------------

def _weights(ckpt: Path | None):
    from pointpillars_trt.detector import resolve_weights

    cfg, state_dict, source = resolve_weights(ckpt, None, None)
    return cfg, state_dict, None if source.is_random else source.path


def build_graphs_task(ckpt: Path | None, out: Path, data_root: Path | None, c: Candidate | None,
                      ranges: Path | None, only: str | None) -> float:
    """Export into ``out``: FP32 (``c`` None), or ``c`` (calibrated on ``data_root``'s train split, or
    from ``ranges``), or with ``c``'s ``ranges`` only node ``only`` int8. Returns the seconds taken."""
    from pointpillars_trt.exporter import (
        CalibrationFrames, Int8Export, as_model, build_graphs, calibration_frames, export_onnx, read_graph_metadata,
    )
    from pointpillars_trt.exporter.quantize import quantizable_nodes

    t0 = time.perf_counter()
    _quiet_worker()
    cfg, state_dict, path = _weights(ckpt)
    int8 = None
    if c is not None and only is not None:
        full = build_graphs(as_model(state_dict, cfg), cfg, "fp32", fused=True, deconv_as_conv=True)["full"]
        options = quantize_options(c, tuple(n for n in quantizable_nodes(full) if n != only))
        q = read_graph_metadata(ranges.parent / "rpn.onnx").quantization  # the frames the ranges came from
        int8 = Int8Export(CalibrationFrames(q.calibration, q.frames, lambda i: None), options, ranges=ranges)
    elif c is not None:
        frames = calibration_frames(data_root, "train", c.frames)
        int8 = Int8Export(frames, quantize_options(c), ranges=ranges, threads=1)
    export_onnx(state_dict, cfg, out, checkpoint_path=path, fused=True, int8=int8)  # full.onnx too: tools/int8_sqnr.py reads it
    return time.perf_counter() - t0


def _quiet_worker() -> None:
    """No per-graph advice from ONNX Runtime's quantizer and session loader in a worker's output."""
    import onnxruntime

    logging.getLogger().setLevel(logging.ERROR)
    onnxruntime.set_default_logger_severity(3)


_DETECTOR: dict = {}


def predict_task(engine_dir: Path, data_root: Path, frame_ids: tuple[str, ...], pred_dir: Path) -> float:
    """KITTI result files in ``pred_dir`` for ``frame_ids`` of the val split, by the ONNX Runtime
    backend (one thread) on the graphs of ``engine_dir``. Returns the seconds taken."""
    import dataclasses

    from pointpillars_trt.detector import Detector
    from pointpillars_trt.eval.dataset import open_split, predict_split
    from pointpillars_trt.io.pointcloud import load_points

    t0 = time.perf_counter()
    _quiet_worker()
    if _DETECTOR.get("dir") != engine_dir:  # a worker mostly gets consecutive shards of one variant
        if "det" in _DETECTOR:
            _DETECTOR.pop("det").close()
        _DETECTOR.update(dir=engine_dir, det=Detector.from_engine_dir(engine_dir, backend="onnxruntime", device="cpu", threads=1))
    kitti = dataclasses.replace(open_split(data_root, "val"), frame_ids=list(frame_ids))
    predict_split(kitti, _DETECTOR["det"].detect, pred_dir, load_points, progress=False)
    return time.perf_counter() - t0


# -- the plan and its scheduling (main process) -----------------------------------------------------

@dataclass
class Variant:
    """Graphs to build and evaluate: ``name`` (``fp32``, a candidate's spec, or ``only:NODE``),
    the build arguments, the variant whose calibration it waits for (``after``), and why it failed
    (``error``: its row says so; the other variants go on)."""

    name: str
    candidate: Candidate | None = None
    only: str | None = None
    after: str | None = None
    shards_left: int = 0
    seconds: dict = field(default_factory=lambda: {"build": 0.0, "predict": 0.0})
    error: str | None = None


def plan(candidates: list[Candidate], sensitivity: Candidate | None, rpn_nodes: list[str]) -> dict[str, Variant]:
    """Every variant, calibrations first (the largest first: they are the long poles), then FP32,
    then those reusing ranges (``after``: the first candidate with the same calibration)."""
    owner: dict[str, str] = {}
    for c in sorted(candidates, key=lambda c: -c.frames):
        owner.setdefault(c.calibration, c.spec)
    variants = {s: Variant(s, next(c for c in candidates if c.spec == s)) for s in owner.values()}
    variants["fp32"] = Variant("fp32")
    for c in candidates:
        variants.setdefault(c.spec, Variant(c.spec, c, after=owner[c.calibration]))
    if sensitivity is not None:
        base = owner[sensitivity.calibration]
        for node in rpn_nodes:
            variants[f"only:{node}"] = Variant(f"only:{node}", sensitivity, only=node, after=base)
    return variants


class Sweep:
    """Runs :func:`plan`'s variants on a process pool: builds, then val-split shards as soon as a
    variant's graphs exist; predictions land in ``work/pred/<variant>``."""

    def __init__(self, pool: ProcessPoolExecutor, work: Path, data_root: Path, ckpt: Path | None,
                 val_ids: list[str], shard: int, reference: Path | None = None, ranges: Path | None = None) -> None:
        self.pool, self.work, self.data_root, self.ckpt = pool, work, data_root, ckpt
        self.reference, self.ranges = reference or ckpt, ranges  # the FP32 graphs' weights; fixed activation ranges
        self.shards = [tuple(val_ids[i:i + shard]) for i in range(0, len(val_ids), shard)]
        self.futures: dict[Future, tuple[str, str]] = {}

    def graphs_dir(self, name: str) -> Path:
        return self.work / "graphs" / name.replace("/", "_").replace(":", "_")

    def pred_dir(self, name: str) -> Path:
        return self.work / "pred" / name.replace("/", "_").replace(":", "_")

    def _build(self, v: Variant) -> None:
        ranges = self.graphs_dir(v.after) / "calibration.json" if v.after else self.ranges if v.candidate else None
        ckpt = self.reference if v.candidate is None else self.ckpt
        fut = self.pool.submit(build_graphs_task, ckpt, self.graphs_dir(v.name), self.data_root, v.candidate, ranges, v.only)
        self.futures[fut] = ("build", v.name)

    def _predict(self, v: Variant) -> None:
        v.shards_left = len(self.shards)
        for ids in self.shards:
            fut = self.pool.submit(predict_task, self.graphs_dir(v.name), self.data_root, ids, self.pred_dir(v.name))
            self.futures[fut] = ("predict", v.name)

    def run(self, variants: dict[str, Variant]) -> None:
        """Until every variant's val predictions are written or it failed (its ``error``; those
        waiting for its calibration fail with it); raises :class:`PointPillarsError` if FP32 fails."""
        for v in variants.values():
            if v.after is None:
                self._build(v)
        while self.futures:
            done, _ = wait(self.futures, return_when=FIRST_COMPLETED)
            for fut in done:
                kind, name = self.futures.pop(fut)
                v = variants[name]
                try:
                    v.seconds[kind] += fut.result()
                except Exception as exc:  # noqa: BLE001 - one variant's failure is its row, not the sweep's end
                    fail(variants, name, f"{kind} failed: {type(exc).__name__}: {exc}")
                    continue
                if kind == "predict":
                    v.shards_left -= 1
                    if not v.shards_left:
                        log.info("%s: predicted (build %.0f s, predict %.0f s)", name, v.seconds["build"], v.seconds["predict"])
                    continue
                self._predict(v)
                for w in variants.values():
                    if w.after == name:
                        self._build(w)


def fail(variants: dict[str, Variant], name: str, reason: str) -> None:
    """Record ``reason`` as variant ``name``'s error (its first) and, for a calibration, of the
    variants reusing its ranges; FP32 failing ends the sweep (nothing to compare with)."""
    log.error("%s: %s", name, reason)
    if name == "fp32":
        raise PointPillarsError(f"the fp32 graphs: {reason}")
    variants[name].error = variants[name].error or reason
    for w in variants.values():
        if w.after == name and w.error is None:
            w.error = f"its calibration ({name}) failed"


# -- results ---------------------------------------------------------------------------------------

def moderate_3d(result: dict) -> dict[str, float]:
    """3D AP R40 moderate per class, in percent."""
    return {c: float(result["R40"][c]["3d"]["moderate"]) for c in CLASSES if c in result["R40"]}


def evaluate_all(sweep: Sweep, variants: dict[str, Variant], data_root: Path, val_ids: list[str]) -> dict[str, dict]:
    """``{variant: {"ap": {class: AP}, "seconds": ...}}`` from the predictions of ``sweep``."""
    import dataclasses

    from pointpillars_trt.eval import evaluate
    from pointpillars_trt.eval.dataset import load_ground_truth, load_predictions, open_split

    kitti = dataclasses.replace(open_split(data_root, "val"), frame_ids=val_ids)
    gt = load_ground_truth(kitti)
    out = {}
    for name, v in variants.items():
        if v.error is not None:
            out[name] = {"error": v.error, "seconds": {k: round(s, 1) for k, s in v.seconds.items()}}
            continue
        ap = moderate_3d(evaluate(gt, load_predictions(sweep.pred_dir(name), val_ids), classes=CLASSES))
        out[name] = {"ap": ap, "seconds": {k: round(s, 1) for k, s in v.seconds.items()}}
    return out


def summarize(results: dict[str, dict], candidates: list[Candidate]) -> dict:
    """Drops from FP32 (AP int8 - AP fp32: negative = a loss), whether each candidate meets the
    target, and the best one (meets it with the smallest worst-class loss)."""
    fp32 = results["fp32"]["ap"]
    for r in (r for r in results.values() if "error" not in r):
        r["drop"] = {c: round(r["ap"][c] - fp32[c], 2) for c in r["ap"]}
        r["worst"] = min(r["drop"].values())
    for c in candidates:
        results[c.spec]["meets_target"] = "error" not in results[c.spec] and results[c.spec]["worst"] >= -TARGET_DROP
    ran = [c for c in candidates if "error" not in results[c.spec]]
    best = max(ran, key=lambda c: results[c.spec]["worst"]) if ran else None
    return {"fp32": fp32, "best": best.spec if best else None,
            "best_meets_target": best is not None and results[best.spec]["meets_target"]}


def markdown(report: dict) -> str:
    """The candidate table and, when measured, the sensitivity table (docs/ACCURACY.md's INT8 section)."""
    res = report["results"]

    def row(name: str, mark: str = "") -> str:
        if "error" in res[name]:
            return f"| {name} | failed: {res[name]['error'].replace('|', '/')} | | |"
        cells = "".join(f" {res[name]['ap'][c]:.2f} ({res[name]['drop'][c]:+.2f}) |" for c in CLASSES)
        return f"| {name}{mark} |{cells}"

    head = "| graphs | " + " | ".join(f"{c} (drop)" for c in CLASSES) + " |\n|---|---|---|---|"
    lines = [f"3D AP R40 moderate, {report['val_frames']} val frames of {report['data']}; "
             f"calibration on train frames; target: every drop >= -{TARGET_DROP}.", "", head,
             "| fp32 |" + "".join(f" {report['fp32'][c]:.2f} |" for c in CLASSES)]
    lines += [row(c, " (meets target)" if res[c]["meets_target"] else "") for c in report["candidates"]]
    lines += ["", f"Best: **{report['best']}** ({'meets' if report['best_meets_target'] else 'does not meet'} the target). "
              f"Wall time {report['wall_s']:.0f} s on {report['workers']} workers ({report['cpu']})."]
    if report.get("sensitivity"):
        lines += ["", f"Sensitivity (ranges of {report['sensitivity']}): AP drop with only that RPN node int8, worst first.",
                  "", head.replace("graphs", "int8 node")]
        nodes = sorted((n for n in res if n.startswith("only:")), key=lambda n: res[n].get("worst", math.inf))
        lines += [row(n).replace("| only:", "| ", 1) for n in nodes]
    return "\n".join(lines) + "\n"


# -- the command -------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for sweep.json and sweep.md (created)")
    p.add_argument("--candidates", nargs="+", default=DEFAULT_CANDIDATES, metavar="SPEC",
                   help=f"METHOD-FRAMES[+first][+head][+block1][+uint8][+binsN][+NODE...] (default: {' '.join(DEFAULT_CANDIDATES)})")
    p.add_argument("--sensitivity", metavar="SPEC", help="also one row per RPN node int8 alone, with this candidate's ranges")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: every core)")
    p.add_argument("--ckpt", type=Path, help="checkpoint (default: the shipped demo model)")
    p.add_argument("--reference-ckpt", type=Path, help="the FP32 graphs' checkpoint, the drops' reference (default: --ckpt), "
                   "e.g. the float model a QAT checkpoint (tools/qat.py) was fine-tuned from")
    p.add_argument("--ranges", type=Path, metavar="FILE", help="every candidate's activation ranges from this calibration.json "
                   "(e.g. tools/qat.py's OUT.calibration.json) instead of calibrating; the frames only name the record")
    p.add_argument("--data-root", type=Path, help="an existing synthetic dataset (default: generate one into --work-dir)")
    p.add_argument("--frames", type=int, default=2400, help="frames to generate (default 2400, the demo model's data)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="val share of the generated frames (default 0.15)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0, the demo model's)")
    p.add_argument("--max-val-frames", type=int, help="evaluate on the first N val frames only (default: all)")
    p.add_argument("--work-dir", type=Path, help="keep data, graphs and predictions here (default: a temporary folder)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    if args.ranges is not None and not args.ranges.is_file():
        p.error(f"--ranges {args.ranges}: file not found")
    return args


def generator_version(ckpt: Path | None) -> str:
    """The synthetic generator version the model was trained on (its ``data_generator_version``
    metadata; ``ckpt`` None: the shipped demo model)."""
    from pointpillars_trt.checkpoint import safetensors_metadata
    from pointpillars_trt.sources import DEMO_MODEL

    path = Path(ckpt) if ckpt is not None else DEMO_MODEL
    try:
        version = safetensors_metadata(path).get("data_generator_version")
    except PointPillarsError as exc:
        raise PointPillarsError(f"{path}: cannot read its metadata ({exc}); give --data-root") from exc
    if not version:
        raise PointPillarsError(f"{path}: no data_generator_version in its metadata; give --data-root")
    return str(version)


def generate_data(args: argparse.Namespace, work: Path, version: str) -> Path:
    """``make_synthetic.py`` with generator ``version`` (the model's) run into ``work/data``."""
    root = work / "data"
    cmd = [sys.executable, str(REPO / "tools" / "make_synthetic.py"), "--out", str(root), "--frames", str(args.frames),
           "--seed", str(args.seed), "--val-fraction", str(args.val_fraction), "--generator-version", version,
           "--workers", str(args.workers), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PointPillarsError(f"make_synthetic.py failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    log.info("%s", proc.stdout.strip())
    return root


def rpn_nodes(ckpt: Path | None) -> list[str]:
    """The quantizable RPN nodes of the exported graphs (as ``--keep-float`` names them)."""
    from pointpillars_trt.exporter import as_model, build_graphs
    from pointpillars_trt.exporter.quantize import quantizable_nodes

    cfg, state_dict, _ = _weights(ckpt)
    return quantizable_nodes(build_graphs(as_model(state_dict, cfg), cfg, "fp32", deconv_as_conv=True)["rpn"])


def sweep(args: argparse.Namespace, work: Path) -> dict:
    """Generate, build, predict, evaluate; the report written to ``sweep.json``."""
    import multiprocessing

    from pointpillars_trt.eval.dataset import open_split

    t0 = time.perf_counter()
    candidates = [parse_candidate(s) for s in dict.fromkeys(args.candidates)]
    sens = parse_candidate(args.sensitivity) if args.sensitivity else None
    if sens is not None and sens.spec not in {c.spec for c in candidates}:
        candidates.append(sens)
    version = None if args.data_root is not None else generator_version(args.ckpt)
    data_root = args.data_root if version is None else generate_data(args, work, version)
    val_ids = open_split(data_root, "val").frame_ids[: args.max_val_frames]
    variants = plan(candidates, sens, rpn_nodes(args.ckpt) if sens else [])
    log.info("%d variants (%d candidates) on %d val frames of %s, %d workers", len(variants), len(candidates),
             len(val_ids), data_root, args.workers)
    shard = max(1, math.ceil(len(val_ids) / args.workers))
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        runner = Sweep(pool, work, data_root, args.ckpt, val_ids, shard, args.reference_ckpt, args.ranges)
        runner.run(variants)
    results = evaluate_all(runner, variants, data_root, val_ids)
    report = {"command": " ".join(["tools/int8_sweep.py", *args.argv]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": _cpu(), "workers": args.workers,
              "data": str(data_root) if args.data_root else f"make_synthetic.py --frames {args.frames} --seed {args.seed} "
              f"--val-fraction {args.val_fraction} --generator-version {version}", "val_frames": len(val_ids),
              "candidates": [c.spec for c in candidates], "sensitivity": sens.spec if sens else None,
              "ckpt": str(args.ckpt or "demo model"), "reference_ckpt": str(args.reference_ckpt or args.ckpt or "demo model"),
              "ranges": str(args.ranges) if args.ranges else None}
    report.update(summarize(results, candidates))
    report["results"] = results
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    return report


def _cpu() -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):  # one thread per worker process
        os.environ[var] = "1"
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="int8_sweep_"))
    try:
        report = sweep(args, work)
    except (PointPillarsError, ValueError, ImportError, OSError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "sweep.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
