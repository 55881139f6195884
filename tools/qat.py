#!/usr/bin/env python3
"""Quantization-aware fine-tuning: a float checkpoint fine-tuned with fake quantization where its INT8
export quantizes, so that the INT8 graphs keep its accuracy (issue 15; ``pointpillars_trt.train.qat``).

    tools/qat.py --data /tmp/v5 --out qat.safetensors --steps 1000 --batch-size 8 --device cuda --workers 3
    tools/qat.py --data /tmp/v5 --out qat_lsq.safetensors --steps 1000 --learn-scales --ptq-dir ptq/   # reuse a calibration
    tools/qat.py --data /tmp/v5 --out qat_kd.safetensors --steps 1000 --learn-scales --distill 1.0    # imitate the float model
    export/export_onnx.py --ckpt qat.safetensors --out-dir int8/ --fused --int8 --calib /tmp/v5 \\
        --calib-ranges qat.calibration.json                                                 # the INT8 graphs

1. The INT8 export of ``--ckpt`` (default: the shipped demo model) with the default QuantizeOptions
   (``--calib-method``, ``--activation-type``), calibrated on ``--calib-frames`` frames of ``--data``'s
   train split, into ``--ptq-dir`` (or reused from there when it already holds that export).
2. Fine-tuning with the training recipe (GT sampling, flips, rotations, scaling; AdamW one-cycle, max
   ``--lr``), BatchNorm statistics frozen, float32 (no autocast: the fake quantization is exact in float32),
   activations quantized with the export's scales, fixed or learned (``--learn-scales``, LSQ). With
   ``--distill W`` > 0 the loss adds W times the distillation loss against a frozen copy of the ``--ckpt`` float
   model (the teacher, run on the same batches; ``pointpillars_trt.train.losses.distillation_loss``).
3. ``--out``: a native float checkpoint (same keys) whose metadata records the QAT recipe and the data's
   generator version, and beside it ``OUT_STEM.calibration.json``: the ranges it was trained against, for
   ``export_onnx.py --calib-ranges`` / ``tools/int8_sweep.py --ranges``.

Exit codes: 0 success, 2 bad input (data, checkpoint, arguments; one log line).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.errors import PointPillarsError  # noqa: E402

log = logging.getLogger("qat")


def parse_args(argv=None) -> argparse.Namespace:
    from pointpillars_trt.exporter.quantize import ActivationType, CalibrationMethod, QuantizeOptions

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="KITTI-layout training data (ImageSets/train.txt, training/)")
    p.add_argument("--ckpt", type=Path, help="float checkpoint to fine-tune (default: the shipped demo model)")
    p.add_argument("--out", type=Path, required=True, help="the fine-tuned checkpoint (.safetensors)")
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4, help="one-cycle maximum learning rate (default %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="data-loader worker processes")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learn-scales", action="store_true", help="learn the activation scales (LSQ) instead of fixing them")
    p.add_argument("--activation-type", choices=ActivationType.values(), default=str(ActivationType.INT8),
                   help="int8 (default: TensorRT's form, the one PTQ leaves 2.2 Car AP short) or uint8 (ONNX Runtime's CPU)")
    p.add_argument("--calib-method", choices=CalibrationMethod.values(), default=str(QuantizeOptions.method))
    p.add_argument("--calib-frames", type=int, default=64, help="train frames of the initial calibration (default %(default)s)")
    p.add_argument("--calib-threads", type=int, help="ONNX Runtime threads of the calibration (default: all cores)")
    p.add_argument("--ptq-dir", type=Path, help="the initial INT8 export: reused if it holds one of --ckpt, else written here")
    p.add_argument("--distill", type=float, default=0.0, metavar="W",
                   help="weight of the distillation loss against the frozen float model (default %(default)s: off)")
    p.add_argument("--no-gt-sampling", action="store_true", help="turn ground-truth sampling off")
    p.add_argument("--max-seconds", type=float, help="wall-clock limit: the one-cycle schedule is fitted to it and fine-tuning ends, annealed, after this many seconds")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--fp16-out", action="store_true", help="store the weights as float16 (as the shipped demo model is)")
    return p.parse_args(argv)


def ranges_path(out: Path) -> Path:
    """``qat.safetensors`` -> ``qat.calibration.json`` (beside it)."""
    return out.with_name(out.name.removesuffix(".safetensors") + ".calibration.json")


def initial_export(args: argparse.Namespace, model, cfg, ckpt_path: Path | None) -> Path:
    """The folder of the INT8 export QAT starts from: ``--ptq-dir`` when it holds ``full.onnx`` of these
    weights and activation type, else a new export there (or in ``OUT_STEM.ptq/``)."""
    from pointpillars_trt.exporter import Int8Export, QuantizeOptions, calibration_frames, export_onnx, read_graph_metadata
    from pointpillars_trt.exporter.metadata import state_dict_sha256

    out = args.ptq_dir or args.out.with_name(args.out.name.removesuffix(".safetensors") + ".ptq")
    full = out / "full.onnx"
    if full.is_file():
        meta = read_graph_metadata(full)
        q = meta.quantization
        if meta.weights_sha256 != state_dict_sha256(model.state_dict()) or q is None or q.activation_type != args.activation_type:
            raise PointPillarsError(f"{full}: not the {args.activation_type} INT8 export of these weights; give another --ptq-dir")
        log.info("reusing the INT8 export in %s (%s, %d frames)", out, q.method, len(q.frames))
        return out
    options = QuantizeOptions(method=args.calib_method, activation_type=args.activation_type)
    frames = calibration_frames(args.data, "train", args.calib_frames)
    t0 = time.perf_counter()
    export_onnx(model, cfg, out, checkpoint_path=ckpt_path, fused=True, int8=Int8Export(frames, options, threads=args.calib_threads))
    log.info("INT8 export (%s, %d train frames) in %s: %.0f s", args.calib_method, len(frames), out, time.perf_counter() - t0)
    return out


def metadata(args: argparse.Namespace, result, info: dict, source, ptq: Path) -> dict[str, str]:
    """The fine-tuned checkpoint's metadata: the QAT recipe, the base checkpoint, the data's generator."""
    from pointpillars_trt.exporter import read_graph_metadata
    from pointpillars_trt.train import data_provenance

    q = read_graph_metadata(ptq / "full.onnx").quantization
    base = source.metadata or {}
    return {
        "command": shlex.join(["tools/qat.py", *args.argv]),
        "trained_by": "tools/qat.py (quantization-aware fine-tuning, pointpillars_trt.train.qat)",
        "qat_base": str(source.path) if source.path else "random weights",
        "qat_base_command": base.get("command", "unknown"),
        "qat_steps": str(result.steps), "qat_lr": str(args.lr), "qat_batch_size": str(args.batch_size),
        "qat_learn_scales": str(bool(args.learn_scales)).lower(), "qat_activation_type": args.activation_type,
        "qat_distill": str(args.distill),
        "qat_calibration": f"{q.method}, {len(q.frames)} frames of {q.calibration}",
        "qat_seconds": f"{result.seconds:.1f}",
        "final_loss": f"{result.history[-1]['loss']:.5f}" if result.history else "nan",
        "train_data": str(args.data), "seed": str(args.seed),
        **data_provenance(info),
    }


def frozen_copy(model, device: str):
    """A copy of ``model`` in eval mode on ``device``, every parameter without gradient (the teacher)."""
    import copy

    teacher = copy.deepcopy(model).eval().to(device)
    teacher.requires_grad_(False)
    return teacher


def run(args: argparse.Namespace) -> dict:
    import onnx
    import torch

    from pointpillars_trt.checkpoint import save_native
    from pointpillars_trt.exporter import as_model
    from pointpillars_trt.sources import resolve_weights
    from pointpillars_trt.train import AugmentConfig, KittiFrames, TrainSettings, state_dict_fp32, train
    from pointpillars_trt.train.qat import QatPointPillars, write_ranges

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PointPillarsError("--device cuda: torch sees no CUDA GPU")
    if args.steps < 1 or args.batch_size < 1 or args.lr <= 0 or args.distill < 0:
        raise PointPillarsError("--steps and --batch-size must be >= 1, --lr > 0 and --distill >= 0")
    frames = KittiFrames(args.data, "train")
    cfg, state_dict, source = resolve_weights(args.ckpt)
    model = as_model(state_dict, cfg)
    ptq = initial_export(args, model, cfg, source.path)
    teacher = frozen_copy(model, args.device) if args.distill > 0 else None  # before QAT shares and trains model's weights
    qat = QatPointPillars(model, onnx.load(str(ptq / "full.onnx")), learn_scales=args.learn_scales)
    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, workers=args.workers, device=args.device,
                             seed=args.seed, lr=args.lr, amp="none", log_every=args.log_every, channels_last=False,
                             augment=AugmentConfig(gt_sampling=not args.no_gt_sampling), max_seconds=args.max_seconds,
                             distill=args.distill)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    result = train(cfg, frames, settings, log=log.info, model=qat, teacher=teacher)
    log.info("fine-tuned %d steps in %.1f s", result.steps, result.seconds)
    qat = result.model
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_native(args.out, state_dict_fp32(model.cpu()), cfg, metadata=metadata(args, result, frames.info, source, ptq),
                dtype=torch.float16 if args.fp16_out else torch.float32)
    ranges = write_ranges(qat.rpn.points(), ptq / "calibration.json", ranges_path(args.out))
    log.info("wrote %s and %s", args.out, ranges)
    return {"steps": result.steps, "seconds": result.seconds, "history": result.history, "scales": qat.rpn.scales()}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        summary = run(args)
    except PointPillarsError as exc:
        log.error("%s", exc)
        return 2
    args.out.with_name(args.out.name.removesuffix(".safetensors") + ".json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
