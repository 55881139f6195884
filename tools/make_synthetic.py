#!/usr/bin/env python3
"""Generate a synthetic LiDAR dataset in KITTI's layout.

    .venv/bin/python tools/make_synthetic.py --out data/synthetic --frames 2000 --seed 0 \\
        [--val-fraction 0.5] [--workers 4] [--generator-version 3] [--mix 0.3]

``--generator-version 1`` rebuilds the first simulator's data byte for byte (the data of the
first demo model); 2 is the KITTI-like simulator (the data of the v2 demo model); 3 (the default)
is v2 with more far and partly seen cars and far vehicle returns as bright as KITTI's (the data of
the v3 demo model); 4 is v3 whose far cars lose their glass house and roof returns, as KITTI's do;
5 is v4 with far road returns in patches; 6 is v5 where half of the frames (a draw per frame) keep v3's roofed far cars
and more cars near the view's edge are cut by the crop;
``--mix S`` (v2 and later) gives every frame its own sensor and return settings, spread ``S`` around the version's.

Writes ``training/{velodyne,velodyne_reduced,calib,label_2,image_2}``, ``ImageSets/{train,val}.txt``
and ``dataset.json`` (generator version, seed, frames, this command line). The same ``--seed``
and ``--frames`` give byte-identical frame files whatever ``--workers`` is.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.errors import PointPillarsError  # noqa: E402
from pointpillars_trt.synthetic import GENERATOR_VERSION, GENERATOR_VERSIONS, generator_settings  # noqa: E402
from pointpillars_trt.synthetic.dataset import write_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="dataset root to create")
    parser.add_argument("--frames", required=True, type=int, help="number of frames")
    parser.add_argument("--seed", required=True, type=int, help="dataset seed")
    parser.add_argument("--val-fraction", type=float, default=0.5, help="share of frames in ImageSets/val.txt (the last ones)")
    parser.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)), help="worker processes")
    parser.add_argument("--generator-version", default=GENERATOR_VERSION, choices=GENERATOR_VERSIONS, help="simulator version")
    parser.add_argument("--mix", type=float, default=0.0, help="v2 and later: per-frame spread of the sensor/return settings (0: one sensor)")
    parser.add_argument("--val-only", type=int, default=0, metavar="N",
                        help="write only the first N frames of the val split (the same files as the whole dataset's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    progress = None
    if not args.quiet:
        from tqdm import tqdm

        def progress(it):
            return tqdm(it, total=args.val_only or args.frames, unit="frame", desc=f"synthetic v{args.generator_version}")

    command = ["tools/make_synthetic.py", *(sys.argv[1:] if argv is None else argv)]
    try:
        settings = generator_settings(args.generator_version, args.mix)
        summary = write_dataset(
            args.out, args.frames, args.seed, args.val_fraction, args.workers, settings, command=command, progress=progress,
            val_only=args.val_only,
        )
    except (PointPillarsError, OSError) as exc:
        print(f"make_synthetic: error: {exc}", file=sys.stderr)
        return 2
    t = summary["timing"]
    s = summary["stats"]
    n = s["frames_written"]
    print(
        f"{n} frames in {t['wall_s']:.1f} s ({n / max(t['wall_s'], 1e-9):.1f} frames/s with "
        f"{args.workers} workers; {t['mean_generate_s'] * 1000:.0f} ms per frame per worker), "
        f"{s['mean_points_per_frame']:.0f} points per frame, labels {s['labels']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
