"""Generate a whole synthetic dataset in KITTI's layout.

``<out>/training/{velodyne,velodyne_reduced,calib,label_2,image_2}/XXXXXX.*``,
``<out>/ImageSets/{train,val}.txt`` (the first ``frames - n_val`` ids train, the rest val) and
``<out>/dataset.json`` recording the generator version, seed, frame count, split, sensor and scene
settings, the command line and label statistics. Frame ``i`` depends only on ``(seed, i)``, so
the files are byte-identical whatever the number of workers.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import DatasetError
from . import GENERATOR_VERSION
from .kitti_writer import IMAGE_SHAPE, OCCLUSION_THRESHOLDS, make_layout, write_frame
from .versions import GeneratorSettings, generator_settings


def frame_id(index: int) -> str:
    """KITTI's six-digit frame id."""
    return f"{index:06d}"


def split_ids(frames: int, val_fraction: float) -> tuple[list[str], list[str]]:
    """``(train_ids, val_ids)``: the last ``round(frames * val_fraction)`` frames are val."""
    if frames < 1:
        raise DatasetError(f"frames must be >= 1, got {frames}")
    if not 0.0 <= val_fraction <= 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1], got {val_fraction}")
    n_val = int(round(frames * val_fraction))
    ids = [frame_id(i) for i in range(frames)]
    return ids[: frames - n_val], ids[frames - n_val :]


_WORKER_ARGS: dict = {}


def _init_worker(out: str, seed: int, settings: GeneratorSettings) -> None:
    _WORKER_ARGS.update(out=out, seed=seed, settings=settings, calib=settings.calibration())


def _make_one(index: int) -> dict:
    a = _WORKER_ARGS
    g: GeneratorSettings = a["settings"]
    t0 = time.perf_counter()
    frame = g.frame(a["seed"], index)
    t1 = time.perf_counter()
    objects = write_frame(a["out"], frame_id(index), frame, a["calib"])
    return {
        "index": index,
        "points": int(frame.points.shape[0]),
        "objects": len(frame.names),
        "labels": dict(Counter(o.type for o in objects)),
        "generate_s": t1 - t0,
    }


def _make_frames(init: tuple, indices: Sequence[int], workers: int, progress) -> list[dict]:
    """The per-frame stats of writing frames ``indices`` with ``workers`` processes (``init``: :func:`_init_worker`'s
    arguments; ``progress`` wraps the iterator of finished frames, or None)."""
    if workers == 1:
        _init_worker(*init)
        results: Iterable[dict] = map(_make_one, indices)
        pool = None
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = multiprocessing.get_context(method).Pool(workers, initializer=_init_worker, initargs=init)
        results = pool.imap(_make_one, indices, chunksize=4)
    if progress is not None:
        results = progress(results)
    try:
        return list(results)
    finally:
        if pool is not None:
            pool.close()
            pool.join()


def write_dataset(
    out: str | Path,
    frames: int,
    seed: int,
    val_fraction: float = 0.5,
    workers: int = 1,
    settings: GeneratorSettings | None = None,
    command: Sequence[str] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    val_only: int = 0,
) -> dict:
    """Generate ``frames`` frames of dataset ``seed`` into ``out`` (see the module docstring).

    ``settings``: the generator version's (default: the latest, ``GENERATOR_VERSION``).
    ``val_only > 0`` writes only the first ``val_only`` frames of the val split (``train.txt`` empty), the same
    files as the whole dataset's (a frame depends only on ``(seed, index)``). ``workers`` processes share the frames; ``progress`` wraps the iterator of finished frames
    (e.g. ``lambda it: tqdm(it, total=frames)``). Returns the summary also written to
    ``dataset.json``.
    """
    out = Path(out)
    settings = settings or generator_settings(GENERATOR_VERSION)
    train, val = split_ids(frames, val_fraction)
    if workers < 1:
        raise DatasetError(f"workers must be >= 1, got {workers}")
    if val_only < 0:
        raise DatasetError(f"val_only must be >= 0, got {val_only}")
    indices: Sequence[int] = range(frames)
    if val_only:
        train, val = [], val[:val_only]
        indices = [int(i) for i in val]
    make_layout(out)
    t0 = time.perf_counter()
    stats = _make_frames((str(out), int(seed), settings), indices, workers, progress)
    wall = time.perf_counter() - t0
    (out / "ImageSets" / "train.txt").write_text("".join(i + "\n" for i in train))
    (out / "ImageSets" / "val.txt").write_text("".join(i + "\n" for i in val))
    labels: Counter = Counter()
    for r in stats:
        labels.update(r["labels"])
    summary = {
        "generator": "pointpillars_trt.synthetic",
        "generator_version": settings.version,
        "generator_mix": settings.returns.mix_spread,
        "seed": int(seed),
        "frames": int(frames),
        "val_fraction": float(val_fraction),
        "train_frames": len(train),
        "val_frames": len(val),
        "val_only": int(val_only),
        "command": list(command) if command is not None else None,
        "image_shape": list(IMAGE_SHAPE),
        "occlusion_thresholds": list(OCCLUSION_THRESHOLDS),
        "label_policy": "objects in the camera view; those with no LiDAR point in their box are DontCare",
        "image_2": "flat grey placeholders (no camera is simulated)",
        "calibration": settings.calibration.__name__,
        "sensor": dataclasses.asdict(settings.sensor),
        "scene": dataclasses.asdict(settings.scene),
        "returns": dataclasses.asdict(settings.returns),
        "stats": {
            "frames_written": len(stats),
            "mean_points_per_frame": float(np.mean([r["points"] for r in stats])),
            "mean_objects_per_frame": float(np.mean([r["objects"] for r in stats])),
            "labels": dict(sorted(labels.items())),
        },
    }
    (out / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["timing"] = {
        "wall_s": wall,
        "mean_generate_s": float(np.mean([r["generate_s"] for r in stats])),
    }
    return summary
