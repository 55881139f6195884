"""The training pipeline of one frame (load -> GT sampling -> augment -> crop -> shuffle -> pillars ->
targets) as a torch ``Dataset``, its deterministic sampler and the batch collation.

Randomness: sample ``k`` of the run (``k = epoch * len(frames) + frame``) uses
``numpy.random.default_rng([seed, k])``, so a run is reproducible whatever the number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..config import PointPillarsConfig
from . import augment as aug
from .batched import RawPillarizer
from .geometry import boxes_in_range, count_points_in_boxes, points_in_range
from .far_sampling import FarPlacement
from .gt_database import GTDatabase, GTSampler
from .kitti_data import KittiFrames
from .targets import TargetAssigner


@dataclass(frozen=True)
class AugmentConfig:
    """OpenPCDet's PointPillars ``DATA_AUGMENTOR`` (and the extras SECOND used, off by default).

    ``sample_groups``: target count per class for GT sampling (``None``: ``default_sample_count``
    for every config class; OpenPCDet's ``SAMPLE_GROUPS`` is Car 15, Pedestrian 15, Cyclist 15).
    ``db_min_points``: database objects need this many points (``filter_by_min_points``).
    ``frame_min_points``: the frame's own boxes of config classes with fewer points are dropped, and after
    the augmentations and the range crop every target with fewer (at least one) points.
    Domain robustness (off by default; see :mod:`.augment`): ``object_sparsify`` (probability per
    box of thinning / half-cutting its points), ``object_ends`` (probability per box of keeping only the
    points of one end of its length, 15-50 % of it), ``object_runs`` (probability per box of keeping only
    a 0.8-2 m run of its length, anywhere along it), ``beam_dropout`` (probability per elevation band),
    ``point_dropout`` (largest share of points dropped), ``intensity_jitter`` (sigma), ``tilt`` (sigma in
    radians of a sensor pitch and roll, each clipped to 2.5 sigma; applied last, as a pose of the sensor).
    Far objects (off by default): ``db_any_difficulty`` (the database keeps objects of no KITTI
    difficulty, i.e. far or cut-off ones), ``sample_far`` (probability per sampled object of being
    moved to a BEV range in ``sample_far_range``, thinned for it; :mod:`.far_sampling`), ``sample_edge`` (share of
    those put across the edge of the frame's view and cut there).
    """

    gt_sampling: bool = True
    sample_groups: Mapping[str, int] | None = None
    default_sample_count: int = 15
    db_min_points: int = 5
    frame_min_points: int = 1
    flip_x: bool = True
    rotation: tuple[float, float] = (-math.pi / 4, math.pi / 4)
    scaling: tuple[float, float] = (0.95, 1.05)
    object_noise: bool = False
    shuffle_points: bool = True
    object_sparsify: float = 0.0
    object_ends: float = 0.0
    object_runs: float = 0.0
    beam_dropout: float = 0.0
    point_dropout: float = 0.0
    intensity_jitter: float = 0.0
    tilt: float = 0.0
    db_any_difficulty: bool = False
    sample_far: float = 0.0
    sample_far_range: tuple[float, float] = (20.0, 70.0)
    sample_edge: float = 0.0

    def targets(self, classes) -> dict[str, int]:
        if self.sample_groups is not None:
            return {k: int(v) for k, v in self.sample_groups.items() if k in classes}
        return {c: self.default_sample_count for c in classes}

    @classmethod
    def none(cls) -> "AugmentConfig":
        """No augmentation at all (evaluation-like frames, overfitting tests)."""
        return cls(gt_sampling=False, flip_x=False, rotation=(0.0, 0.0), scaling=(1.0, 1.0), shuffle_points=False)


def far_placement(augment: AugmentConfig, cfg: PointPillarsConfig) -> FarPlacement | None:
    """The far GT sampling of ``augment`` inside ``cfg``'s point-cloud range (None when off)."""
    if augment.sample_far <= 0:
        return None
    r = cfg.voxel.point_cloud_range
    bounds = (float(r[0]), float(r[1]), float(r[3]), float(r[4]))
    return FarPlacement(augment.sample_far, tuple(augment.sample_far_range), bounds, augment.db_min_points,
                        edge_share=augment.sample_edge)


@dataclass
class Sample:
    """One training frame, ready to collate."""

    raw: np.ndarray  # [P, M, 4]
    num_points: np.ndarray  # [P]
    coords: np.ndarray  # [P, 2] (ix, iy)
    labels: np.ndarray  # [N] int8
    pos_index: np.ndarray  # [Q]
    box_targets: np.ndarray  # [Q, 7]
    dir_targets: np.ndarray  # [Q]
    pos_truncation: np.ndarray  # [Q] float32: the truncation of each positive's matched box
    gt_boxes: np.ndarray  # [G, 7]
    gt_labels: np.ndarray  # [G]
    info: dict = field(default_factory=dict)


class TrainDataset(Dataset):
    """``dataset[k]`` -> :class:`Sample` of frame ``k % len(frames)`` with the randomness of run sample ``k``."""

    def __init__(
        self,
        frames: KittiFrames,
        cfg: PointPillarsConfig,
        augment: AugmentConfig = AugmentConfig(),
        database: GTDatabase | None = None,
        seed: int = 0,
        iou: str = "nearest_bev",
    ) -> None:
        self.frames = frames
        self.cfg = cfg
        self.augment = augment
        self.seed = int(seed)
        self.sampler = None
        if augment.gt_sampling and database is not None:
            self.sampler = GTSampler(database, augment.targets(cfg.classes), far_placement(augment, cfg))
        self.assigner = TargetAssigner(cfg, iou=iou)
        self._pillarizer: RawPillarizer | None = None  # per process (buffers)

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, i: int):
        """Points, boxes, names and truncations of frame ``i`` after the ``frame_min_points`` filter."""
        pts = self.frames.points(i)
        ann = self.frames.annotations(i)
        boxes, names, trunc = ann.boxes, ann.names, ann.truncation
        if self.augment.frame_min_points > 0 and len(boxes):
            counts = count_points_in_boxes(pts, boxes)
            keep = ~np.isin(names, self.cfg.classes) | (counts >= self.augment.frame_min_points)
            boxes, names, trunc = boxes[keep], names[keep], trunc[keep]
        return pts, boxes, names, trunc

    def transform(self, pts: np.ndarray, boxes: np.ndarray, names: np.ndarray, truncation: np.ndarray,
                  rng: np.random.Generator):
        """GT sampling and the global augmentations, then the range crop and the class filter.
        ``truncation [G]``: the frame's boxes' (sampled objects are whole: 0). Returns ``(points,
        boxes of config classes, class indices, their truncations)``."""
        a = self.augment
        if self.sampler is not None:
            pts, boxes, names = self.sampler(pts, boxes, names, rng)
            truncation = np.concatenate([truncation, np.zeros(len(boxes) - len(truncation), np.float32)])
        pts = aug.sparsify_objects(pts, boxes, rng, a.object_sparsify)
        pts = aug.keep_object_ends(pts, boxes, rng, a.object_ends)
        pts = aug.keep_object_runs(pts, boxes, rng, a.object_runs)
        if a.object_noise:
            pts, boxes = aug.object_noise(pts, boxes, rng)
        if a.flip_x:
            pts, boxes = aug.random_flip_x(pts, boxes, rng)
        if a.rotation[1] > a.rotation[0]:
            pts, boxes = aug.random_rotation(pts, boxes, rng, a.rotation)
        pts, boxes = aug.random_scaling(pts, boxes, rng, a.scaling)
        pts = aug.random_beam_dropout(pts, rng, a.beam_dropout)
        pts = aug.random_point_dropout(pts, rng, a.point_dropout)
        pts = aug.jitter_intensity(pts, rng, a.intensity_jitter)
        pts, boxes = aug.random_tilt(pts, boxes, rng, a.tilt)
        r = self.cfg.voxel.point_cloud_range
        pts = pts[points_in_range(pts, r)]
        cls_idx = np.array([self.cfg.classes.index(n) if n in self.cfg.classes else -1 for n in names], dtype=np.int64)
        keep = (cls_idx >= 0) & boxes_in_range(boxes, r)
        if keep.any():  # a target needs its points in the cropped cloud too (a tilt can lift a far one out of the z range)
            keep[keep] = count_points_in_boxes(pts, boxes[keep]) >= max(1, a.frame_min_points)
        if a.shuffle_points:
            pts = pts[rng.permutation(len(pts))]
        return pts, boxes[keep].astype(np.float32), cls_idx[keep], np.asarray(truncation, np.float32)[keep]

    def __getitem__(self, k: int) -> Sample:
        i = int(k) % len(self.frames)
        rng = np.random.default_rng([self.seed, int(k)])
        pts, boxes, labels, trunc = self.transform(*self.load(i), rng)
        if self._pillarizer is None:
            self._pillarizer = RawPillarizer(self.cfg)
        raw, num_points, coords = self._pillarizer(pts)
        t = self.assigner(boxes, labels)
        return Sample(raw, num_points, coords, t.labels, t.pos_index, t.box_targets, t.dir_targets, trunc[t.matched_gt],
                      boxes, labels, {"frame": self.frames.ids[i]})


class RunSampler(Sampler):
    """Yields run sample indices ``epoch * n + frame`` with a fresh seeded permutation per epoch,
    for ``num_samples`` samples in total (possibly spanning a partial last epoch)."""

    def __init__(self, n: int, num_samples: int, seed: int = 0, shuffle: bool = True) -> None:
        self.n, self.num_samples, self.seed, self.shuffle = int(n), int(num_samples), int(seed), shuffle

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        done = 0
        epoch = 0
        while done < self.num_samples:
            order = np.random.default_rng([self.seed, 7919, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
            for f in order[: self.num_samples - done]:
                yield int(epoch * self.n + f)
            done += min(self.n, self.num_samples - done)
            epoch += 1


def collate(samples: list[Sample]) -> dict[str, torch.Tensor]:
    """Concatenate pillars with a batch index and stack the targets.

    Keys: ``raw [P, M, 4]``, ``num_points [P]``, ``coords [P, 3]`` int32 ``(b, ix, iy)``,
    ``labels [B, N]`` int8, ``pos_index [Q]`` int64 flat ``b * N + n``, ``box_targets [Q, 7]``,
    ``dir_targets [Q]``, ``pos_truncation [Q]``, ``num_gt [B]``; ``batch_size`` is ``labels.shape[0]``.
    """
    n = samples[0].labels.shape[0]
    coords = [np.concatenate([np.full((len(s.coords), 1), b, np.int32), s.coords], axis=1) for b, s in enumerate(samples)]
    return {
        "raw": torch.from_numpy(np.concatenate([s.raw for s in samples])),
        "num_points": torch.from_numpy(np.concatenate([s.num_points for s in samples])),
        "coords": torch.from_numpy(np.concatenate(coords)),
        "labels": torch.from_numpy(np.stack([s.labels for s in samples])),
        "pos_index": torch.from_numpy(np.concatenate([s.pos_index + b * n for b, s in enumerate(samples)])),
        "box_targets": torch.from_numpy(np.concatenate([s.box_targets for s in samples])),
        "dir_targets": torch.from_numpy(np.concatenate([s.dir_targets for s in samples])),
        "pos_truncation": torch.from_numpy(np.concatenate([s.pos_truncation for s in samples])),
        "num_gt": torch.tensor([len(s.gt_boxes) for s in samples]),
    }
