"""The KITTI object dataset on disk: split files, ground truth, result directories, and running a
detector over a split.

Layout (as the KITTI download and OpenPCDet's ``data/kitti``)::

    ROOT/ImageSets/{train,val,test,...}.txt       one frame id per line ("000134")
    ROOT/training/label_2/<id>.txt                ground truth
    ROOT/training/calib/<id>.txt
    ROOT/training/image_2/<id>.png                (its size is needed to clip 2D boxes / crop the FOV)
    ROOT/training/velodyne/<id>.bin               and/or velodyne_reduced/<id>.bin (FOV-cropped)

A result directory holds one KITTI result file ``<id>.txt`` (label lines with a score) per frame; a
missing file means no detections for that frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import DatasetError, LabelError
from ..io.kitti import (
    Calibration,
    KittiObject,
    crop_to_fov,
    detections_to_kitti_objects,
    fov_mask,
    read_image_shape,
    read_label,
    write_label,
)

__all__ = [
    "KittiSplit",
    "check_run_meta",
    "load_frame_points",
    "load_ground_truth",
    "load_predictions",
    "open_split",
    "predict_split",
    "read_split_file",
]

_MAX_LISTED = 5


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


def read_split_file(path: str | Path) -> tuple[str, ...]:
    """Frame ids of a KITTI ``ImageSets/<split>.txt`` (blank lines ignored, order kept).

    Raises :class:`DatasetError` if the file is missing, empty, or lists an id twice.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read split file: {exc}") from exc
    ids = []
    for lineno, line in enumerate(lines, start=1):
        word = line.strip()
        if not word:
            continue
        if len(word.split()) != 1:
            raise DatasetError(f"{path}:{lineno}: expected one frame id per line, got {line.strip()!r}")
        ids.append(word)
    if not ids:
        raise DatasetError(f"{path}: split file lists no frame ids")
    seen: set[str] = set()
    dupes = sorted({i for i in ids if i in seen or seen.add(i)})
    if dupes:
        raise DatasetError(f"{path}: frame id(s) listed twice: {_listing(dupes)}")
    return tuple(ids)


@dataclass(frozen=True)
class KittiSplit:
    """One split of a KITTI object dataset: its frame ids and where their files are."""

    root: Path
    split: str
    frame_ids: tuple[str, ...]

    @property
    def training_dir(self) -> Path:
        return self.root / "training"

    def label_path(self, frame_id: str) -> Path:
        return self.training_dir / "label_2" / f"{frame_id}.txt"

    def calib_path(self, frame_id: str) -> Path:
        return self.training_dir / "calib" / f"{frame_id}.txt"

    def image_path(self, frame_id: str) -> Path:
        return self.training_dir / "image_2" / f"{frame_id}.png"

    def velodyne_path(self, frame_id: str, reduced: bool) -> Path:
        folder = "velodyne_reduced" if reduced else "velodyne"
        return self.training_dir / folder / f"{frame_id}.bin"

    def calibration(self, frame_id: str) -> Calibration:
        return Calibration.from_file(self.calib_path(frame_id))

    def image_shape(self, frame_id: str) -> tuple[int, int]:
        """``(H, W)`` of the frame's ``image_2`` PNG."""
        path = self.image_path(frame_id)
        if not path.is_file():
            raise DatasetError(f"{path}: image missing (its size is needed to crop and clip to the camera view)")
        return read_image_shape(path)


def open_split(data_root: str | Path, split: str = "val", require: Iterable[str] = ("label_2", "calib")) -> KittiSplit:
    """Read ``ROOT/ImageSets/<split>.txt`` and check that every frame has the ``require``d files
    (folders under ``ROOT/training``). Raises :class:`DatasetError` naming what is missing."""
    root = Path(data_root)
    if not root.is_dir():
        raise DatasetError(f"{root}: KITTI data root not found")
    split_file = root / "ImageSets" / f"{split}.txt"
    if not split_file.is_file():
        available = sorted(p.stem for p in (root / "ImageSets").glob("*.txt"))
        raise DatasetError(f"{split_file}: split file not found (available splits: {available or 'none'})")
    kitti = KittiSplit(root=root, split=split, frame_ids=read_split_file(split_file))
    suffix = {"image_2": ".png"}
    for folder in require:
        directory = kitti.training_dir / folder
        missing = [i for i in kitti.frame_ids if not (directory / f"{i}{suffix.get(folder, '.txt')}").is_file()]
        if missing:
            raise DatasetError(f"{directory}: {len(missing)} frame(s) of split '{split}' have no file: {_listing(missing)}")
    return kitti


def load_ground_truth(kitti: KittiSplit) -> list[list[KittiObject]]:
    """Ground-truth objects of every frame of the split, in split order (:class:`LabelError` on a
    malformed line, naming file and line)."""
    return [read_label(kitti.label_path(i)) for i in kitti.frame_ids]


def load_predictions(pred_dir: str | Path, frame_ids: Sequence[str]) -> list[list[KittiObject]]:
    """Result files ``pred_dir/<id>.txt`` for ``frame_ids`` (a missing file = no detections).

    Raises :class:`DatasetError` if ``pred_dir`` is missing or holds ``.txt`` files for frames that
    are not in ``frame_ids``, :class:`LabelError` for malformed lines or lines without a score.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DatasetError(f"{pred_dir}: prediction directory not found")
    wanted = set(frame_ids)
    unknown = sorted(p.name for p in pred_dir.glob("*.txt") if p.stem not in wanted)
    if unknown:
        raise DatasetError(
            f"{pred_dir}: {len(unknown)} result file(s) for frames not in the split: {_listing(unknown)} "
            "(wrong --split, or results of another dataset?)"
        )
    out = []
    for frame_id in frame_ids:
        path = pred_dir / f"{frame_id}.txt"
        objects = read_label(path) if path.is_file() else []
        if any(o.score is None for o in objects):
            lineno = next(
                n for n, line in enumerate(path.read_text().splitlines(), start=1) if len(line.split()) == 15
            )
            raise LabelError(f"{path}:{lineno}: result lines need a score (16th column)")
        out.append(objects)
    return out


# --------------------------------------------------------------------------------------------------
# running a detector


def load_frame_points(
    kitti: KittiSplit, frame_id: str, fov_only: bool, load_points: Callable[[Path], np.ndarray]
) -> np.ndarray:
    """The frame's LiDAR points: with ``fov_only``, ``velodyne_reduced`` if present, else ``velodyne``
    cropped to the camera view (OpenPCDet's ``FOV_POINTS_ONLY``); without it, the full ``velodyne``
    scan if present, else ``velodyne_reduced``."""
    reduced = kitti.velodyne_path(frame_id, reduced=True)
    full = kitti.velodyne_path(frame_id, reduced=False)
    first, second = (reduced, full) if fov_only else (full, reduced)
    path = first if first.is_file() else second
    if not path.is_file():
        raise DatasetError(f"frame {frame_id}: no point cloud ({reduced} nor {full})")
    points = load_points(path)
    if fov_only and path == full:
        points = crop_to_fov(points, kitti.calibration(frame_id), kitti.image_shape(frame_id))
    return points


RESULT_DECIMALS = 4  # OpenPCDet writes KITTI result files with 4 decimals


def check_run_meta(out_dir: Path, meta: dict) -> None:
    """Record what produced the result files in ``out_dir/eval_meta.json``; refuse to resume into a
    directory whose result files another model / backend / setting wrote (:class:`DatasetError`)."""
    path = out_dir / "eval_meta.json"
    if path.is_file() and any(out_dir.glob("*.txt")):
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable run record ({exc}); delete it or use another --out-dir") from exc
        if old != meta:
            raise DatasetError(
                f"{out_dir} holds results of another run ({old}, this run: {meta}); "
                "use another --out-dir or delete that directory"
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def predict_split(
    kitti: KittiSplit,
    detect: Callable[[np.ndarray], object],
    out_dir: str | Path,
    load_points: Callable[[Path], np.ndarray],
    *,
    fov_only: bool = True,
    progress: bool = True,
) -> int:
    """Run ``detect(points)`` on every frame without a result file in ``out_dir`` and write KITTI
    result files (camera boxes, alpha, 2D boxes projected and clipped to the image). Returns the
    number of frames processed; frames already done are skipped (resume).

    ``detect`` returns an object with ``.boxes`` [N, 7] canonical LiDAR boxes, ``.scores`` [N],
    ``.labels`` [N] int and ``.class_names``. Without ``fov_only`` the points are the full scan and
    detections whose centre does not project into the image are dropped (KITTI labels only cover it).
    Files (4 decimals, as OpenPCDet) are written atomically (``<id>.txt.part`` then renamed), so an
    interrupted run resumes cleanly.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [i for i in kitti.frame_ids if not (out_dir / f"{i}.txt").is_file()]
    frames: Iterable[str] = todo
    if progress:
        from tqdm import tqdm

        frames = tqdm(todo, desc=f"detect {kitti.split}", unit="frame", dynamic_ncols=True)
    for frame_id in frames:
        calib = kitti.calibration(frame_id)
        image_shape = kitti.image_shape(frame_id)
        points = load_frame_points(kitti, frame_id, fov_only, load_points)
        det = detect(points)
        boxes = np.asarray(det.boxes, dtype=np.float64).reshape(-1, 7)
        scores = np.asarray(det.scores, dtype=np.float64).reshape(-1)
        labels = np.asarray(det.labels).reshape(-1).astype(np.int64)
        if not fov_only and len(boxes):
            keep = fov_mask(boxes[:, :3], calib, image_shape)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if len(labels) and (labels.min() < 0 or labels.max() >= len(det.class_names)):
            raise ValueError(f"frame {frame_id}: detector labels {labels.min()}..{labels.max()} outside its "
                             f"{len(det.class_names)} class names")
        names = [det.class_names[k] for k in labels]
        write_label(out_dir / f"{frame_id}.txt", detections_to_kitti_objects(boxes, names, scores, calib, image_shape),
                    decimals=RESULT_DECIMALS)  # atomic (io.atomic)
    return len(todo)
