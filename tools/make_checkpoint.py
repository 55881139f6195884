#!/usr/bin/env python3
"""Write a RANDOM-weight PointPillars checkpoint in a chosen format, to try the tools without a trained model.

    python tools/make_checkpoint.py --format native --out random.safetensors
    python tools/make_checkpoint.py --format openpcdet --out pointpillar_random.pth --seed 3
    python tools/make_checkpoint.py --format zhulf0804 --out epoch_random.pth --config configs/kitti_pointpillars_3class.yaml

native: safetensors with the config in its metadata. openpcdet / mmdet3d / zhulf0804: torch.save of
that implementation's container and key names ({'model_state': ...}, {'state_dict': ..., 'meta': ...},
bare state dict). The weights are random (activations O(1)), so detections are meaningless.

Exit codes: 0 success, 2 bad input (config, output path), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pointpillars_trt.checkpoint import FORMATS, write_checkpoint
from pointpillars_trt.config import load_config
from pointpillars_trt.errors import PointPillarsError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", required=True, choices=FORMATS, help="layout and container of the file")
    p.add_argument("--out", required=True, type=Path, help="output file")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--config", help="config YAML (or a name in configs/); default: KITTI 3-class")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config)
        command = " ".join(["tools/make_checkpoint.py", *(sys.argv[1:] if argv is None else argv)])
        path = write_checkpoint(args.out, args.format, cfg, seed=args.seed, metadata={"command": command})
    except PointPillarsError as exc:
        print(f"make_checkpoint: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.format} checkpoint with random weights (seed {args.seed}) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
