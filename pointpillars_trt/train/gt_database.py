"""Ground-truth sampling (OpenPCDet's ``DataBaseSampler``): paste objects from other frames.

The database holds, for every object of the sampled classes in the training split with at least
``min_points`` points and a KITTI difficulty (easy/moderate/hard; optionally any, so far objects
too), its box and its points relative to the box centre. A frame is topped up to a target count per class; a sampled box that overlaps
(BEV IoU > 0) an existing box or another sampled box is rejected; the frame's points inside the
accepted boxes are removed and the objects' points added.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import DatasetError
from ..postprocess import iou_bev
from .far_sampling import Edges, FarPlacement, place_far, view_edges
from .geometry import points_in_any_box, points_in_boxes
from .kitti_data import KittiFrames


@dataclass(frozen=True)
class GTDatabase:
    """``names [O]``, ``boxes [O, 7]`` float32, ``offsets [O + 1]`` into ``points [T, 4]`` float32
    whose xyz are relative to their box centre."""

    names: np.ndarray
    boxes: np.ndarray
    offsets: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return int(self.names.shape[0])

    def object_points(self, i: int) -> np.ndarray:
        return self.points[self.offsets[i] : self.offsets[i + 1]]

    def count(self, name: str) -> int:
        return int((self.names == name).sum())

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        np.savez(path, names=self.names, boxes=self.boxes, offsets=self.offsets, points=self.points)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "GTDatabase":
        try:
            with np.load(path) as z:
                return cls(z["names"], z["boxes"], z["offsets"], z["points"])
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: not a ground-truth database ({exc})") from exc

    @classmethod
    def from_objects(cls, names: Sequence[str], boxes: np.ndarray, object_points: Sequence[np.ndarray]) -> "GTDatabase":
        """From per-object points in the LiDAR frame (they are stored relative to their box centre)."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 7)
        counts = [len(p) for p in object_points]
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(counts)
        pts = [np.asarray(p, dtype=np.float32).reshape(-1, 4).copy() for p in object_points]
        for p, b in zip(pts, boxes):
            p[:, :3] -= b[:3]
        points = np.concatenate(pts) if pts else np.zeros((0, 4), np.float32)
        return cls(np.asarray(names, dtype="<U16").reshape(-1), boxes, offsets, points.astype(np.float32))


def frame_objects(
    frames: KittiFrames, i: int, classes: Sequence[str], min_points: int, any_difficulty: bool = False
) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """Database entries of one frame: names, boxes and LiDAR-frame points of its usable objects
    (with ``any_difficulty`` also those of no KITTI difficulty: far, small in the image, cut off)."""
    ann = frames.annotations(i)
    keep = np.isin(ann.names, list(classes)) & (ann.difficulty >= (-1 if any_difficulty else 0))
    if not keep.any():
        return [], np.zeros((0, 7), np.float32), []
    boxes, names = ann.boxes[keep], ann.names[keep]
    pts = frames.points(i)
    inside = points_in_boxes(pts, boxes)
    out_n, out_b, out_p = [], [], []
    for k in range(len(boxes)):
        p = pts[inside[:, k]]
        if len(p) >= min_points:
            out_n.append(str(names[k])), out_b.append(boxes[k]), out_p.append(p)
    return out_n, (np.stack(out_b) if out_b else np.zeros((0, 7), np.float32)), out_p


class _FrameObjects:
    """Picklable per-frame job for building the database in DataLoader workers."""

    def __init__(self, frames: KittiFrames, classes: Sequence[str], min_points: int, any_difficulty: bool) -> None:
        self.frames, self.classes, self.min_points = frames, tuple(classes), int(min_points)
        self.any_difficulty = bool(any_difficulty)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int):
        return frame_objects(self.frames, i, self.classes, self.min_points, self.any_difficulty)


def build_database(
    frames: KittiFrames, classes: Sequence[str], min_points: int = 5, workers: int = 0, any_difficulty: bool = False
) -> GTDatabase:
    """Collect the database from every frame of ``frames`` (in frame order, so deterministic);
    ``any_difficulty``: see :func:`frame_objects`."""
    import torch.utils.data as tud

    job = _FrameObjects(frames, classes, min_points, any_difficulty)
    job[0]  # compile the numba kernels before forking workers
    loader = tud.DataLoader(job, batch_size=None, shuffle=False, num_workers=workers)
    names, boxes, pts = [], [], []
    for n, b, p in loader:
        names += n
        boxes.append(np.asarray(b))
        pts += [np.asarray(x) for x in p]
    return GTDatabase.from_objects(names, np.concatenate(boxes) if boxes else np.zeros((0, 7)), pts)


EDGE_RETRIES = 8  # draws of another place across the view's edge for a sample whose first one collided


class GTSampler:
    """Tops a frame up to ``targets[class]`` objects of each class from ``database``; with ``far``,
    a share of the samples is moved away from the sensor first (:mod:`.far_sampling`)."""

    def __init__(self, database: GTDatabase, targets: Mapping[str, int], far: FarPlacement | None = None) -> None:
        self.db = database
        self.targets = {k: int(v) for k, v in targets.items() if int(v) > 0}
        self.far = far if far is not None and far.share > 0 else None
        self._by_class = {k: np.flatnonzero(database.names == k) for k in self.targets}

    def _candidates(self, idx: np.ndarray, points: np.ndarray, rng: np.random.Generator,
                    edges: Edges | None) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Boxes ``[n, 7]`` and centre-relative points of database objects ``idx``, some moved far (with
        ``edges``, a share of those across the view's edge), and ``[n]`` bool: moved to the edge."""
        cand = self.db.boxes[idx].copy()
        rel = [self.db.object_points(i) for i in idx]
        at_edge = np.zeros(len(idx), dtype=bool)
        if self.far is None:
            return cand, rel, at_edge
        for j in np.flatnonzero(rng.random(len(idx)) < self.far.share):
            edge = edges is not None and rng.random() < self.far.edge_share
            moved = place_far(cand[j], rel[j], points, rng, self.far, edges if edge else None)
            if moved is not None:
                cand[j], rel[j] = moved
                at_edge[j] = edge
        return cand, rel, at_edge

    def _retry_at_edge(self, db_index: int, taken: np.ndarray, points: np.ndarray, rng: np.random.Generator,
                       edges: Edges) -> tuple[np.ndarray, np.ndarray] | None:
        """Another place across the edge for database object ``db_index`` that overlaps no box of ``taken``
        (up to :data:`EDGE_RETRIES` draws; the edge is thin, so the first place often collides), or None."""
        for _ in range(EDGE_RETRIES):
            moved = place_far(self.db.boxes[db_index], self.db.object_points(db_index), points, rng, self.far, edges)
            if moved is not None and (not len(taken) or iou_bev(moved[0][None], taken).max() == 0):
                return moved
        return None

    def __call__(
        self, points: np.ndarray, boxes: np.ndarray, names: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``points [N, 4]``, ``boxes [G, 7]``, ``names [G]`` -> the same with sampled objects added."""
        existing = np.asarray(boxes, dtype=np.float32).reshape(-1, 7)
        edges = view_edges(points) if self.far is not None and self.far.edge_share > 0 else None
        chosen: list[int] = []
        accepted, obj_pts = [], []
        for name, target in self.targets.items():
            pool = self._by_class[name]
            n = min(target - int((names == name).sum()), len(pool))
            if n <= 0:
                continue
            idx = rng.choice(pool, size=n, replace=False)
            cand, rel, at_edge = self._candidates(idx, points, rng, edges)
            iou_e = iou_bev(cand, existing).max(axis=1) if len(existing) else np.zeros(n)
            iou_s = iou_bev(cand, cand)
            np.fill_diagonal(iou_s, 0.0)
            ok = (iou_e + iou_s.max(axis=1)) == 0
            for j in np.flatnonzero(at_edge & ~ok):
                moved = self._retry_at_edge(int(idx[j]), np.concatenate([existing, cand[ok]]), points, rng, edges)
                if moved is not None:
                    (cand[j], rel[j]), ok[j] = moved, True
            if ok.any():
                chosen += idx[ok].tolist()
                accepted.append(cand[ok])
                obj_pts += [rel[j] for j in np.flatnonzero(ok)]
                existing = np.concatenate([existing, cand[ok]])
        if not chosen:
            return points, boxes, names
        new_boxes = np.concatenate(accepted).astype(np.float32)
        obj_pts = [p.copy() for p in obj_pts]
        for p, b in zip(obj_pts, new_boxes):
            p[:, :3] += b[:3]
        kept = points[~points_in_any_box(points, new_boxes)]
        out_points = np.concatenate(obj_pts + [kept]).astype(np.float32)
        out_boxes = np.concatenate([np.asarray(boxes, dtype=np.float32).reshape(-1, 7), new_boxes])
        out_names = np.concatenate([np.asarray(names), self.db.names[chosen]])
        return out_points, out_boxes, out_names
