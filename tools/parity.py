#!/usr/bin/env python3
"""Measure the exported ONNX graphs (run in ONNX Runtime) against the PyTorch model and write
docs/ACCURACY.md.

    python tools/parity.py                              # random parity weights, writes docs/ACCURACY.md
    python tools/parity.py --ckpt pointpillar_7728.pth --out /tmp/acc.md
    python tools/parity.py --fp16-variants              # also the FP16 policies (which parts stay FP32)

Measured: every real frame under ../shared/data/kitti_frames/*/velodyne_reduced/ and synthetic
pillar sets of 1, a few, the TensorRT profile's opt (12000) and the config's max pillars:
each graph on the reference's own inputs (PFN, MFN, RPN isolated), the chained graphs' head
outputs, and the final boxes through Detector (FP32: exact agreement; FP16: boxes matched by BEV
IoU). Also the non-KITTI config configs/example_360_2class.yaml end to end.

Exit codes: 0 done, 2 bad input (checkpoint, config, missing frames).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pointpillars_trt import __version__
from pointpillars_trt.network.onnxruntime import OnnxRuntimeBackend
from pointpillars_trt.network.torch_backend import TorchBackend
from pointpillars_trt.config import load_config
from pointpillars_trt.detector import Detector
from pointpillars_trt.errors import PointPillarsError
from pointpillars_trt.exporter import Fp16Policy, export_onnx
from pointpillars_trt.exporter.graphs import DEFAULT_FP16_POLICY
from pointpillars_trt.compare.arrays import REL_FLOOR, merge_stats
from pointpillars_trt.compare.detections import uncapped_threshold
from pointpillars_trt.compare.parts import head_errors, part_errors, torch_parts
from pointpillars_trt.compare.runs import RunComparison, compare_frame
from pointpillars_trt.exporter.parity import parity_state_dict, synthetic_pillars
from pointpillars_trt.model import build_model

log = logging.getLogger("parity")
REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "data" / "kitti_frames"
OPT_PILLARS = 12000  # the TensorRT profile's default opt (export/build_engines.py)
BASE_VARIANTS = {"fp32 split": (False, None, False), "fp32 fused": (False, None, True), "fp16 split": (True, DEFAULT_FP16_POLICY, False)}


METHOD = [  # the report's fixed text: how it is measured and what the numbers decide
    "## How it is measured",
    "",
    "* **Per part** (`pfn`, `mfn`, `rpn.*`): each graph fed the PyTorch reference's own input for that part "
    "(cast to float16 for the FP16 graphs), so errors do not accumulate. **Chained** (`chain.*`): the head outputs "
    "of PFN -> MFN -> RPN run in ONNX Runtime from the pillars.",
    f"* max rel error = max |ort - torch| / max(|torch|, {REL_FLOOR:g} * max|torch|) over the tensor "
    "(`pointpillars_trt.compare.arrays`).",
    "* **FP32 boxes**: `Detector.detect` with the ONNX Runtime backend against `Detector.detect` with the torch "
    "backend (synthetic pillar sets: the same post-processing on the head outputs, at a score threshold that keeps "
    "fewer boxes than `nms_post_max` where the config's would reach that cap; see `uncapped_threshold`). Each torch "
    "box is paired with the mutually nearest ORT box of the same class (`compare_detections`); identical means every "
    "box paired (same count, same labels), boxes within 1e-4 (yaw modulo 2 pi) and scores within 1e-5.",
    "* **FP16 boxes**: matched one to one to the FP32 PyTorch boxes by rotated BEV IoU >= 0.5 and the same class, "
    "greedily by descending PyTorch score (`match_detections`). A yaw difference of pi is the direction classifier flipping on a near-tie of its two "
    "logits; it does not change the BEV IoU.",
    "* The relative errors of the FP16 parts are large only at elements near zero (measured against 1/1000 of the "
    "tensor's largest value); the absolute errors, against the largest value, are ~1e-3 relative.",
    "* s per input: ONNX Runtime seconds per input on this CPU, including the per-part runs for the split graphs "
    "(so the fused rows, which have none, are not a speed comparison).",
    "* ONNX Runtime's CPU provider has no float16 kernels for most of these ops: it inserts Casts and computes them "
    "in float32 while every tensor between ops is stored in float16. That models float16 storage (the dominant "
    "error); TensorRT's FP16 kernels also round inside the accumulation, so on a GPU expect errors of the same order, "
    "somewhat larger (`tools/check_tensorrt.py` measures them there).",
    "",
    "## Decisions these numbers support",
    "",
    "* **FP32 graphs** reproduce the PyTorch model: head outputs within ~1e-5 absolute (float32 summation order "
    "in the convolutions), and the final boxes of every frame identical within 1e-4 / scores within 1e-5.",
    "* **FP16 graph types** (for strongly typed TensorRT builds): `features` input float16; `pillar_features` and "
    "`canvas` float16; `cls`, `box`, `dir` outputs float32 (a Cast after the head convolutions), so the "
    "post-processing and anchors stay float32. `num_points` and `coords` stay int32.",
    "* **FP16 policy**: with `--fp16-variants` the table below also has the PFN computed in float32 (its float16 "
    "input cast up) and the head convolutions in float32. Neither changes the box agreement measurably: the error "
    "is set by float16 storage of the PFN input (absolute x, y, z) and of the canvas/backbone activations. "
    "So the exported FP16 graphs are float16 throughout (`Fp16Policy()`), which TensorRT runs fastest; "
    "`Fp16Policy(pfn_fp32=True, head_fp32=True)` stays available in `export_onnx(..., fp16_policy=...)`.",
    "* **P = 0**: ONNX Runtime runs every graph with zero pillars (PFN output `[0, C]`, an all-zero canvas, the "
    "RPN on it); `tests/backends/test_onnxruntime.py::test_zero_pillars` checks it against PyTorch. "
    "`Detector.detect` itself refuses a frame with no pillar in range before the backend runs.",
    "",
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, help="checkpoint to measure (default: random parity weights, seed --seed)")
    p.add_argument("--format", help="force the checkpoint format")
    p.add_argument("--config", help="config (default: the checkpoint's, else KITTI 3-class)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random parity weights")
    p.add_argument("--frames", type=Path, default=FRAMES, help="folder searched for */velodyne_reduced/*.bin")
    p.add_argument("--fp16-variants", action="store_true", help="also measure every FP16 policy")
    p.add_argument("--skip-example", action="store_true", help="skip configs/example_360_2class.yaml")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "ACCURACY.md", help="markdown report ('-': stdout)")
    return p.parse_args(argv)


def fmt(x: float) -> str:
    return f"{x:.2e}" if x else "0"


class Run:
    """One precision / graph layout under test: its detector, its per-part and chained error
    stats, and one :class:`FrameComparison` per input against the PyTorch reference."""

    def __init__(self, label: str, backend: OnnxRuntimeBackend, cfg) -> None:
        self.label, self.backend = label, backend
        self.detector = Detector.from_backend(cfg, backend)
        self.parts: dict = {}
        self.chain: dict = {}
        self.inputs: list = []
        self.seconds = 0.0

    @property
    def comparison(self) -> RunComparison:
        return RunComparison("torch", self.label, 0.5, None, tuple(self.inputs))


def measure(cfg, state_dict, frames: list[Path], sizes: list[int], variants: dict, workdir: Path, ckpt: Path | None) -> dict:
    model = build_model(cfg)
    model.load_state_dict(state_dict)
    ref_det = Detector.from_backend(cfg, TorchBackend(cfg, state_dict))
    runs: list[Run] = []
    for label, (fp16, policy, fused) in variants.items():
        out = workdir / label
        export_onnx(model, cfg, out, fp16=fp16, checkpoint_path=ckpt, fused=fused, fp16_policy=policy)
        runs.append(Run(label, OnnxRuntimeBackend(cfg, engine_dir=out, fused=fused, device="cpu"), cfg))
    pillar_counts, box_counts, input_pillars = [], [], []
    inputs = [("frame", f"{f.parent.parent.name}/{f.stem}", np.fromfile(f, dtype=np.float32).reshape(-1, 4)) for f in frames]
    inputs += [("synthetic", str(n), n) for n in sizes]
    for kind, name, data in inputs:
        if kind == "frame":
            pillars = ref_det.executor.voxelizer(data)
            feeds = {"features": pillars.features, "num_points": pillars.num_points, "coords": pillars.coords}
            ref_boxes = ref_det.detect(data, source=name)
        else:
            feeds = synthetic_pillars(cfg, data, seed=data)
            out = ref_det.executor.backend.infer(feeds)
            thr = uncapped_threshold(ref_det.executor.postprocess, out)
            ref_boxes = ref_det.executor.postprocess(out["cls"], out["box"], out["dir"], thr)
        n_pillars = feeds["num_points"].shape[0]
        ref = torch_parts(model, feeds)
        if kind == "frame":
            pillar_counts.append(n_pillars)
            box_counts.append(len(ref_boxes.scores))
        for run in runs:
            t0 = time.perf_counter()
            if not run.backend.fused:
                merge_stats(part_errors(ref, run.backend, feeds), run.parts)
            heads = run.backend.infer(feeds)
            merge_stats(head_errors(ref, heads), run.chain)
            got = run.detector.detect(data, source=name) if kind == "frame" else run.detector.executor.postprocess(heads["cls"], heads["box"], heads["dir"], thr)
            run.seconds += time.perf_counter() - t0
            run.inputs.append(compare_frame(name, ref_boxes, got))
        input_pillars.append(n_pillars)
        log.info("%s %s: %d pillars, %d reference boxes", kind, name, n_pillars, len(ref_boxes.scores))
    return {"runs": runs, "pillars": pillar_counts, "boxes": box_counts, "input_pillars": input_pillars}


def table_parts(runs) -> list[str]:
    lines = ["| graphs | output | max abs error | max rel error | max abs of reference |", "|---|---|---|---|---|"]
    for run in runs:
        for key, s in {**run.parts, **run.chain}.items():
            lines.append(f"| {run.label} | {key} | {fmt(s.max_abs)} | {fmt(s.max_rel)} | {s.ref_max:.3g} |")
    return lines


def table_fp32(runs) -> list[str]:
    lines = ["| graphs | inputs | identical (every box paired, boxes <= 1e-4, scores <= 1e-5) | reference boxes | other boxes | paired | max box diff | max score diff | s per input |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        if run.backend.precision != "fp32":
            continue
        c = run.comparison
        e, n = c.exact_total, len(c.frames)
        lines.append(f"| {run.label} | {n} | {c.n_identical}/{n} | {e.n_ref} | {e.n_got} | {e.n_matched} | "
                     f"{fmt(e.max_box_diff)} | {fmt(e.max_score_diff)} | {run.seconds / n:.2f} |")
    return lines


def table_fp16(runs) -> list[str]:
    lines = ["| graphs | reference boxes | fp16 boxes | matched (IoU >= 0.5, same class) | recall | precision | mean IoU | min IoU | max centre diff (m) | max size diff (m) | max yaw diff (rad) | max score diff | s per input |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        if run.backend.precision != "fp16":
            continue
        c = run.comparison
        t = c.total
        lines.append(
            f"| {run.label} | {t.n_ref} | {t.n_got} | {t.n_matched} | {t.n_matched / max(t.n_ref, 1):.4f} | {t.n_matched / max(t.n_got, 1):.4f} | "
            f"{t.mean_iou:.4f} | {t.min_iou:.4f} | {t.max_center_diff:.2e} | {t.max_size_diff:.2e} | {t.max_yaw_diff:.2e} | "
            f"{t.max_score_diff:.2e} | {run.seconds / len(c.frames):.2f} |"
        )
    return lines


def table_per_input(res) -> list[str]:
    fp32 = next(run for run in res["runs"] if run.label == "fp32 split")
    fp16 = next(run for run in res["runs"] if run.label == "fp16 split")
    lines = ["| input | pillars | torch boxes | fp32 split: ORT boxes | paired | identical | max box diff | max score diff | fp16 split: boxes | matched |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n, a, b in zip(res["input_pillars"], fp32.inputs, fp16.inputs):
        d, m = a.exact, b.match
        lines.append(f"| {a.name} | {n} | {d.n_ref} | {d.n_got} | {d.n_matched} | {'yes' if d.agrees() else 'NO'} | {fmt(d.max_box_diff)} | "
                     f"{fmt(d.max_score_diff)} | {m.n_got} | {m.n_matched} |")
    return lines


def load_weights(args, frames: list[Path]):
    """``(cfg, state_dict, description)``: the checkpoint's, else random parity weights calibrated on ``frames[0]``."""
    if args.ckpt:
        from pointpillars_trt.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.ckpt, config=load_config(args.config) if args.config else None, format=args.format)
        cfg, sd = ckpt.config, ckpt.state_dict
        weights = f"checkpoint `{args.ckpt.name}` ({ckpt.format})"
    else:
        cfg = load_config(args.config)
        calib = Detector.from_backend(cfg, TorchBackend(cfg)).executor.voxelizer(np.fromfile(frames[0], dtype=np.float32).reshape(-1, 4))
        sd = parity_state_dict(cfg, args.seed, {"features": calib.features, "num_points": calib.num_points, "coords": calib.coords})
        weights = (f"random parity weights (`parity_state_dict(cfg, seed={args.seed})`: random_native_state_dict with the "
                   f"class-logit bias shifted so that ~200 anchors pass the score threshold on {frames[0].name})")
    return cfg, sd, weights


def variants_under_test(fp16_variants: bool) -> dict:
    """label -> (fp16, FP16 policy, fused) of each exported graph set measured."""
    variants = dict(BASE_VARIANTS)
    if fp16_variants:
        for pfn32 in (False, True):
            for head32 in (False, True):
                if Fp16Policy(pfn32, head32) == DEFAULT_FP16_POLICY:
                    continue  # that is "fp16 split"
                variants[f"fp16 pfn={'fp32' if pfn32 else 'fp16'} head={'fp32' if head32 else 'fp16'}"] = (True, Fp16Policy(pfn32, head32), False)
    return variants


def render(args, argv, cfg, weights: str, frames: list[Path], sizes: list[int], res: dict, example, elapsed: float) -> str:
    """The markdown report."""
    import onnxruntime
    import torch

    cmd = "python tools/parity.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    lines = [
        "# Accuracy of the exported graphs",
        "",
        "ONNX Runtime (CPU execution provider) running the exported ONNX graphs, against the PyTorch model",
        "(`pointpillars_trt.model`, float32, CPU). Written by `tools/parity.py`; re-make it with the command below.",
        "",
        f"* date: {datetime.date.today().isoformat()}; command: `{cmd.strip()}`; {elapsed:.0f} s",
        f"* package {__version__}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, numpy {np.__version__}, "
        f"{platform.machine()} {platform.system()}",
        f"* config `{cfg.name}` (hash {cfg.hash()}); weights: {weights}",
        f"* frames: {len(frames)} real KITTI frames ({', '.join(f.parent.parent.name + '/' + f.name for f in frames)}), "
        f"{min(res['pillars'])}..{max(res['pillars'])} pillars, {min(res['boxes'])}..{max(res['boxes'])} reference boxes per frame",
        f"* synthetic pillar sets: {', '.join(map(str, sizes))} pillars (`synthetic_pillars`: distinct random cells, 1..M points each)",
        f"* FP16 policy of `export_onnx(..., fp16=True)`: {DEFAULT_FP16_POLICY}",
        "",
        *METHOD,
        "## Per-part and chained errors",
        "",
        *table_parts(res["runs"]),
        "",
        "## FP32 graphs: final boxes",
        "",
        *table_fp32(res["runs"]),
        "",
        "## FP16 graphs: final boxes matched by IoU",
        "",
        *table_fp16(res["runs"]),
        "",
    ]
    if example is not None:
        ecfg, eres = example
        lines += [
            f"## Non-KITTI config `{ecfg.name}`",
            "",
            f"Exported and run end to end with its own random parity weights on {len(eres['pillars'])} real frames "
            f"({min(eres['pillars'])}..{max(eres['pillars'])} pillars) and synthetic sets of 1 and {ecfg.voxel.max_pillars} pillars.",
            "",
            *table_parts(eres["runs"]),
            "",
            *table_fp32(eres["runs"]),
            "",
            *table_fp16(eres["runs"]),
            "",
        ]
    lines += ["## Per input", "", *table_per_input(res)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    try:
        frames = sorted(args.frames.glob("*/velodyne_reduced/*.bin"))
        if not frames:
            raise PointPillarsError(f"{args.frames}: no */velodyne_reduced/*.bin frames")
        cfg, sd, weights = load_weights(args, frames)
        sizes = sorted({1, 5, min(OPT_PILLARS, cfg.voxel.max_pillars), cfg.voxel.max_pillars})
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            res = measure(cfg, sd, frames, sizes, variants_under_test(args.fp16_variants), Path(tmp), args.ckpt)
            example = None
            if not args.skip_example and not args.ckpt:
                ecfg = load_config(REPO / "configs" / "example_360_2class.yaml")
                esd = parity_state_dict(ecfg, args.seed)
                example = (ecfg, measure(ecfg, esd, frames[:4], sorted({1, ecfg.voxel.max_pillars}), BASE_VARIANTS, Path(tmp) / "example", None))
        elapsed = time.perf_counter() - t0
    except PointPillarsError as exc:
        log.error("%s", exc)
        return 2
    text = render(args, argv, cfg, weights, frames, sizes, res, example, elapsed)
    if str(args.out) == "-":
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
