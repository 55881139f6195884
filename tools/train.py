#!/usr/bin/env python3
"""Train PointPillars on a KITTI-layout directory (synthetic or real) with OpenPCDet's recipe.

    tools/train.py --data data/synthetic --out runs/model.safetensors --epochs 20 --batch-size 16 \\
        --workers 14 --device cuda --eval
    tools/train.py --data data/synthetic --config configs/kitti_pointpillars_3class.yaml \\
        --out model.safetensors --steps 200 --device cpu

Reads ``DATA/ImageSets/{train,val}.txt`` and ``DATA/training/{velodyne_reduced|velodyne,label_2,calib}``.
Recipe: GT sampling, flip along x, global rotation [-pi/4, pi/4], global scaling [0.95, 1.05]; anchors
matched by BEV IoU; focal / smooth-L1 (sin-difference yaw) / direction losses weighted 1 / 2 / 0.2;
AdamW with one-cycle LR (max 0.003); gradient clipping 10; bf16 autocast on CUDA. Domain robustness for
synthetic-to-real training (off by default): --object-sparsify P (thin or half-cut a box's points with
probability P), --object-ends P (keep only one end of a box's points, 15-50 % of its length, with probability P), --object-runs P (keep only a 0.8-2 m run of its length, anywhere, with probability P), --beam-dropout P (drop ~one-beam elevation bands), --point-dropout F (drop up to a share F
of the points), --intensity-jitter S (per-frame and per-point intensity noise, random zeros), --tilt DEG
(a sensor pitch and roll, each N(0, DEG) clipped to 2.5 DEG: graded roads, vehicle pitch). Far objects
(off by default): --db-any-difficulty (the GT database keeps far / cut-off objects of no KITTI difficulty),
--sample-far P --sample-far-range LO,HI (a GT sample is moved, with probability P, to a BEV range in LO..HI m
no nearer than its own, turned about the sensor and thinned by (r0/r1)^2; --sample-edge Q: a share Q of those is put
across an end of the frame's azimuth span, a camera crop's edge, and its points beyond it dropped); --far-weight W --far-weight-range
LO,HI (the classification loss of positive anchors weighted 1 up to LO m, rising linearly to W at HI m).
Objects cut by the image's edge: --cut-box-weight W (box and direction losses of positives weighted
1 + (W - 1) * the matched label's truncation; 1: off). The wrong rotation on an object:
--twin-negative-weight W (a background anchor whose twin at the same place, of the other rotation, is
positive gets W times its classification weight; 1: off). Fine-tuning: --init CKPT starts from a checkpoint of
any supported format (its config is the training config; the recipe, schedule and optimiser start afresh) and
--freeze PARTS keeps named parts fixed (e.g. pfn,rpn.blocks: gradients off, BatchNorm statistics kept):

    tools/train.py --data mine/ --init pointpillar_7728.pth --freeze pfn,rpn.blocks --lr 0.0003 --steps 2000 \
        --out tuned.safetensors --device cuda

The checkpoint is the package's native safetensors format; its metadata records the command line,
seed, the data generator version / seed / frames (from ``DATA/dataset.json`` when present), steps,
training time, git commit and, with ``--eval``, the KITTI AP table on the val split.

Exit codes: 0 success, 2 bad input (data directory, config, arguments).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.errors import PointPillarsError  # noqa: E402

log = logging.getLogger("train")
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="KITTI-layout root (ImageSets/, training/)")
    p.add_argument("--config", help="config YAML or a name in configs/ (default: KITTI 3-class)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (.safetensors)")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--epochs", type=float, help="epochs over the train split")
    length.add_argument("--steps", type=int, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=4, help="data-loader worker processes")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.003, help="one-cycle maximum learning rate")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "none"), help="autocast (auto: bf16 on CUDA)")
    p.add_argument("--iou", default="nearest_bev", choices=("nearest_bev", "rotated"), help="anchor matching IoU")
    p.add_argument("--no-gt-sampling", action="store_true", help="turn ground-truth sampling off")
    p.add_argument("--sample-groups", help="GT sampling targets, e.g. Car:15,Pedestrian:15,Cyclist:15")
    p.add_argument("--object-noise", action="store_true", help="per-object translation/rotation noise")
    p.add_argument("--object-sparsify", type=float, default=0.0, help="probability per box of thinning/half-cutting its points")
    p.add_argument("--object-ends", type=float, default=0.0,
                   help="probability per box of keeping only the points of one end of its length (15-50 %%): occluded or cut objects")
    p.add_argument("--object-runs", type=float, default=0.0,
                   help="probability per box of keeping only a 0.8-2 m run of its length, anywhere: a crossing car's side between occluders")
    p.add_argument("--beam-dropout", type=float, default=0.0, help="probability per elevation band (~one beam) of dropping it")
    p.add_argument("--point-dropout", type=float, default=0.0, help="largest share of points dropped at random per frame")
    p.add_argument("--intensity-jitter", type=float, default=0.0, help="sigma of the per-frame/per-point intensity jitter")
    p.add_argument("--tilt", type=float, default=0.0,
                   help="sigma in degrees of a random sensor pitch and roll per sample (clipped to 2.5 sigma): graded roads, vehicle pitch")
    p.add_argument("--db-any-difficulty", action="store_true",
                   help="GT database keeps objects of no KITTI difficulty too (far, small in the image, cut off)")
    p.add_argument("--sample-far", type=float, default=0.0,
                   help="probability per GT sample of moving it away from the sensor (thinned by (r0/r1)^2)")
    p.add_argument("--sample-far-range", default="20,70", help="LO,HI: BEV range (m) the far GT samples are moved to")
    p.add_argument("--sample-edge", type=float, default=0.0,
                   help="share of the far GT samples put across the edge of the frame's view (a camera crop) and cut there")
    p.add_argument("--far-weight", type=float, default=1.0,
                   help="classification weight of positive anchors far away (1 up to LO m, rising to this at HI m; 1: off)")
    p.add_argument("--far-weight-range", default="20,60", help="LO,HI: BEV range (m) over which --far-weight ramps up")
    p.add_argument("--twin-negative-weight", type=float, default=1.0,
                   help="classification weight of a background anchor whose twin (the other rotation, same place) is positive (1: off)")
    p.add_argument("--cut-box-weight", type=float, default=1.0,
                   help="box/direction weight of positives matched to a cut object: 1 + (W - 1) * truncation (1: off)")
    p.add_argument("--init", type=Path, help="fine-tune: start from this checkpoint (native, OpenPCDet, mmdet3d or zhulf0804; "
                   "its config is the training config, and --config must agree with it)")
    p.add_argument("--freeze", help="fine-tune: comma-separated parts to keep fixed, e.g. pfn,rpn.blocks (needs --init)")
    p.add_argument("--max-seconds", type=float, help="wall-clock limit: the one-cycle schedule is fitted to it (a slow run moves through the cycle by the clock) and training ends, annealed, after this many seconds")
    p.add_argument("--log-every", type=int, default=50, help="log the loss every N steps")
    p.add_argument("--fp16-out", action="store_true", help="store the weights as float16")
    p.add_argument("--eval", action="store_true", help="evaluate on the val split at the end (KITTI AP)")
    p.add_argument("--eval-split", default="val")
    p.add_argument("--eval-limit", type=int, help="evaluate only the first N frames of the split")
    p.add_argument("--json", type=Path, help="write the training summary (history, AP) to this JSON file")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_groups(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    groups = {}
    for item in text.split(","):
        name, sep, count = item.partition(":")
        if not sep or not count.strip().isdigit():
            raise PointPillarsError(f"--sample-groups: expected NAME:COUNT items, got {item!r}")
        groups[name.strip()] = int(count)
    return groups


def parse_range(text: str, option: str = "--sample-far-range") -> tuple[float, float]:
    """``"LO,HI"`` -> ``(LO, HI)`` with ``0 <= LO < HI`` (metres); errors name ``option``."""
    lo, sep, hi = text.partition(",")
    try:
        r = (float(lo), float(hi))
    except ValueError:
        r = None
    if not sep or r is None or not 0.0 <= r[0] < r[1]:
        raise PointPillarsError(f"{option}: expected LO,HI metres with 0 <= LO < HI, got {text!r}")
    return r


def run(args: argparse.Namespace) -> dict:
    import torch

    from pointpillars_trt.checkpoint import load_checkpoint, save_native
    from pointpillars_trt.config import load_config
    from pointpillars_trt.train import (
        AugmentConfig, KittiFrames, TrainSettings, data_provenance, evaluate_model, state_dict_fp32, train,
    )

    freeze = tuple(p.strip() for p in args.freeze.split(",")) if args.freeze else ()
    if freeze and args.init is None:
        raise PointPillarsError("--freeze needs --init: frozen parts of a fresh model would stay random")
    if args.init is not None:
        init = load_checkpoint(args.init, config=load_config(args.config) if args.config else None)
        cfg = init.config
    else:
        init, cfg = None, load_config(args.config)
    frames = KittiFrames(args.data, "train")
    for name in ("object_sparsify", "object_ends", "object_runs", "beam_dropout", "point_dropout", "intensity_jitter", "sample_far"):
        if not 0.0 <= getattr(args, name) < 1.0:
            raise PointPillarsError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(args, name)}")
    if not 0.0 <= args.tilt <= 10.0:
        raise PointPillarsError(f"--tilt must be in [0, 10] degrees, got {args.tilt}")
    if not 0.0 <= args.sample_edge <= 1.0 or (args.sample_edge > 0 and args.sample_far == 0):
        raise PointPillarsError(f"--sample-edge must be in [0, 1] and needs --sample-far > 0, got {args.sample_edge}")
    augment = AugmentConfig(
        gt_sampling=not args.no_gt_sampling, sample_groups=parse_groups(args.sample_groups), object_noise=args.object_noise,
        object_sparsify=args.object_sparsify, object_ends=args.object_ends, object_runs=args.object_runs, beam_dropout=args.beam_dropout, point_dropout=args.point_dropout,
        intensity_jitter=args.intensity_jitter, tilt=math.radians(args.tilt), db_any_difficulty=args.db_any_difficulty, sample_far=args.sample_far,
        sample_far_range=parse_range(args.sample_far_range), sample_edge=args.sample_edge,
    )
    settings = TrainSettings(
        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, workers=args.workers, device=args.device,
        seed=args.seed, lr=args.lr, amp=args.amp, log_every=args.log_every, iou=args.iou, augment=augment,
        max_seconds=args.max_seconds, far_weight=args.far_weight,
        far_weight_range=parse_range(args.far_weight_range, "--far-weight-range"), cut_box_weight=args.cut_box_weight,
        twin_negative_weight=args.twin_negative_weight, freeze=freeze,
    )
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PointPillarsError("--device cuda: torch sees no CUDA GPU")
    t0 = time.time()
    result = train(cfg, frames, settings, log=log.info, init=init.state_dict if init is not None else None)
    log.info("trained %d steps (%d frames) in %.1f s", result.steps, result.samples, result.seconds)
    meta = {
        "command": shlex.join(["tools/train.py", *args.argv]),
        "seed": str(args.seed),
        "trained_by": "tools/train.py (pointpillars_trt.train, OpenPCDet PointPillars recipe)",
        "train_data": str(args.data),
        "train_frames": str(len(frames)),
        **data_provenance(frames.info),
        "steps": str(result.steps),
        "epochs": f"{result.samples / len(frames):.3f}",
        "batch_size": str(args.batch_size),
        "train_seconds": f"{result.seconds:.1f}",
        "final_loss": f"{result.history[-1]['loss']:.5f}" if result.history else "nan",
        "settings": json.dumps({k: v for k, v in vars(args).items() if k not in ("out", "json", "argv")}, default=str),
        "gt_database": json.dumps(result.database),
        "git_commit": git_commit(),
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu",
    }
    if init is not None:
        meta.update(init_checkpoint=str(args.init), init_format=init.format, init_sha256=file_sha256(args.init),
                    frozen=",".join(freeze))
    summary = {"history": result.history, "seconds": result.seconds, "steps": result.steps}
    state = state_dict_fp32(result.model)
    if args.eval:
        val = KittiFrames(args.data, args.eval_split)
        ev = evaluate_model(cfg, state, val, device=args.device, limit=args.eval_limit, log=log.info)
        print(ev["table"])
        tables = {"R11": ev["R11"], "R40": ev["R40"]}
        meta["eval_split"] = args.eval_split
        meta["eval_frames"] = str(ev["frames"])
        meta["eval_ap"] = json.dumps(tables)
        meta["eval_table"] = ev["table"]
        summary["eval"] = tables
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if args.fp16_out else torch.float32
    save_native(args.out, state, cfg, metadata=meta, dtype=dtype)
    log.info("wrote %s (%s, %.1f MB) after %.1f s in all", args.out, "float16" if args.fp16_out else "float32",
             args.out.stat().st_size / 1e6, time.time() - t0)
    if args.json:
        args.json.write_text(json.dumps({**summary, "metadata": meta}, indent=2, default=str) + "\n")
    return summary


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        run(args)
    except PointPillarsError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
