"""KITTI object files: calibration, labels / results, and the LiDAR <-> camera box conversions.

Frames and conventions (as OpenPCDet's ``calibration_kitti`` and ``box_utils``):

* LiDAR frame: x forward, y left, z up. Canonical boxes ``[N, 7]`` are
  ``(x, y, z_center, dx=length, dy=width, dz=height, yaw)``, yaw counter-clockwise from +x about +z.
* Rectified camera frame ("rect"): x right, y down, z forward. KITTI camera boxes ``[N, 7]`` are
  ``(x, y, z, l, h, w, ry)`` with ``(x, y, z)`` the *bottom* centre of the box and
  ``ry = -yaw - pi/2`` the rotation about the camera's y axis.
* ``lidar_to_rect(p) = R0_rect @ (Tr_velo_to_cam @ [p; 1])``; image ``uv = P2 @ [p_rect; 1]`` over its
  third row; ``depth`` is the rect z (the third row minus ``P2[2, 3]``).
* Label lines: ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry [score]``.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import CalibrationError, InputWarning, LabelError

__all__ = [
    "Calibration",
    "KittiObject",
    "box_corners_3d",
    "boxes_camera_to_lidar",
    "boxes_lidar_to_camera",
    "camera_box_corners",
    "crop_to_fov",
    "detections_to_kitti_objects",
    "fov_mask",
    "kitti_objects_to_camera_boxes",
    "project_boxes_to_image",
    "read_image_shape",
    "read_label",
    "write_label",
]

# Calibration keys as written in object-detection calib files, and the tracking-benchmark aliases.
_CALIB_ALIASES = {"R_rect": "R0_rect", "Tr_velo_cam": "Tr_velo_to_cam", "Tr_imu_velo": "Tr_imu_to_velo"}
_CALIB_SIZES = {"P2": 12, "R0_rect": 9, "Tr_velo_to_cam": 12}


def read_text_file(path: Path, error: type[CalibrationError], what: str) -> str:
    """A KITTI text file as UTF-8 text; a leading byte order mark is dropped with an :class:`InputWarning`."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what} file: {exc}") from exc
    if text.startswith("\ufeff"):
        warnings.warn(f"{path}: {what} file starts with a UTF-8 byte order mark; skipped it", InputWarning, stacklevel=3)
        text = text[1:]
    return text


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64, copy=True)
    array.flags.writeable = False
    return array


def _points3(points: np.ndarray, what: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"{what}: expected points [N, 3], got shape {points.shape}")
    return points[:, :3]


def _boxes7(boxes: np.ndarray, what: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 7)
    if boxes.ndim != 2 or boxes.shape[1] != 7:
        raise ValueError(f"{what}: expected boxes [N, 7], got shape {boxes.shape}")
    return boxes


# --------------------------------------------------------------------------------------------------
# calibration


@dataclass(frozen=True, eq=False)
class Calibration:
    """The three matrices of a KITTI ``calib/XXXXXX.txt`` that object detection uses.

    ``P2`` [3, 4] projects rect-camera points to the left colour image, ``R0_rect`` [3, 3] rectifies,
    ``Tr_velo_to_cam`` [3, 4] maps LiDAR to the (unrectified) camera frame. Arrays are float64, read-only.
    """

    P2: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray

    def __post_init__(self) -> None:
        for name, shape in (("P2", (3, 4)), ("R0_rect", (3, 3)), ("Tr_velo_to_cam", (3, 4))):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise CalibrationError(f"Calibration.{name}: expected shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise CalibrationError(f"Calibration.{name}: non-finite values")
            if not value[:, :3].any():
                raise CalibrationError(f"Calibration.{name}: all zeros (an empty or placeholder calibration)")
            object.__setattr__(self, name, _readonly(value))
        velo_to_rect = self._velo_to_rect_4x4()
        if abs(np.linalg.det(velo_to_rect)) < 1e-12:
            raise CalibrationError("Calibration: R0_rect @ Tr_velo_to_cam is singular")
        object.__setattr__(self, "_velo_to_rect", _readonly(velo_to_rect))
        object.__setattr__(self, "_rect_to_velo", _readonly(np.linalg.inv(velo_to_rect)))

    def _velo_to_rect_4x4(self) -> np.ndarray:
        r0 = np.eye(4)
        r0[:3, :3] = self.R0_rect
        v2c = np.eye(4)
        v2c[:3, :] = self.Tr_velo_to_cam
        return r0 @ v2c

    # -- files -----------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> "Calibration":
        """Read a KITTI calib file (``P0..P3``, ``R0_rect``, ``Tr_velo_to_cam``, ...).

        Raises :class:`CalibrationError` naming the file and line of a malformed line or of a key given
        twice, or the file and the missing key; a matrix whose 3x3 part is all zeros is refused.
        A leading UTF-8 byte order mark is skipped with an :class:`InputWarning`. The tracking-benchmark spellings ``R_rect`` / ``Tr_velo_cam`` are accepted.
        """
        path = Path(path)
        text = read_text_file(path, CalibrationError, "calibration")
        values: dict[str, tuple[int, list[float]]] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, rest = line.partition(":")
            key = key.strip()
            if not sep or not key or " " in key:
                raise CalibrationError(f"{path}:{lineno}: expected 'KEY: v1 v2 ...', got {line.strip()[:80]!r}")
            try:
                numbers = [float(v) for v in rest.split()]
            except ValueError:
                raise CalibrationError(
                    f"{path}:{lineno}: {key}: values are not all numbers: {rest.strip()[:80]!r}"
                ) from None
            key = _CALIB_ALIASES.get(key, key)
            expected = _CALIB_SIZES.get(key)
            if expected is not None:
                if len(numbers) != expected:
                    raise CalibrationError(f"{path}:{lineno}: {key}: expected {expected} numbers, got {len(numbers)}")
                if not all(math.isfinite(v) for v in numbers):
                    raise CalibrationError(f"{path}:{lineno}: {key}: non-finite value")
            if key in values:
                raise CalibrationError(f"{path}:{lineno}: {key} given a second time (first on line {values[key][0]})")
            values[key] = (lineno, numbers)
        missing = [k for k in _CALIB_SIZES if k not in values]
        if missing:
            raise CalibrationError(f"{path}: missing calibration key(s) {missing}")
        try:
            return cls(
                P2=np.array(values["P2"][1]).reshape(3, 4),
                R0_rect=np.array(values["R0_rect"][1]).reshape(3, 3),
                Tr_velo_to_cam=np.array(values["Tr_velo_to_cam"][1]).reshape(3, 4),
            )
        except CalibrationError as exc:
            raise CalibrationError(f"{path}: {exc}") from None

    def write(self, path: str | Path) -> Path:
        """Write a KITTI calib file. Only ``P2``, ``R0_rect`` and ``Tr_velo_to_cam`` are known, so the
        ``P0``, ``P1`` and ``P3`` lines repeat ``P2`` and ``Tr_imu_to_velo`` is the identity.
        Values are written with 17 significant digits, so :meth:`from_file` reads them back exactly."""
        path = Path(path)

        def line(key: str, matrix: np.ndarray) -> str:
            return f"{key}: " + " ".join(f"{v:.17g}" for v in np.asarray(matrix, dtype=np.float64).ravel())

        lines = [line(f"P{i}", self.P2) for i in range(4)]
        lines += [line("R0_rect", self.R0_rect), line("Tr_velo_to_cam", self.Tr_velo_to_cam)]
        lines.append(line("Tr_imu_to_velo", np.eye(4)[:3]))
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- transforms ------------------------------------------------------------------------------

    def lidar_to_rect(self, points: np.ndarray) -> np.ndarray:
        """LiDAR points [N, 3(+)] -> rect-camera points [N, 3] (float64)."""
        pts = _points3(points, "lidar_to_rect")
        m = self._velo_to_rect
        return pts @ m[:3, :3].T + m[:3, 3]

    def rect_to_lidar(self, points: np.ndarray) -> np.ndarray:
        """Rect-camera points [N, 3] -> LiDAR points [N, 3] (float64); the exact inverse of lidar_to_rect."""
        pts = _points3(points, "rect_to_lidar")
        m = self._rect_to_velo
        return pts @ m[:3, :3].T + m[:3, 3]

    def rect_to_image(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rect-camera points [N, 3] -> (pixel ``uv`` [N, 2], ``depth`` [N]) in image 2.

        ``depth`` is the rect z (OpenPCDet's ``rect_to_img``); points behind the camera get
        meaningless ``uv``, callers test ``depth``.
        """
        pts = _points3(points, "rect_to_image")
        hom = pts @ self.P2[:, :3].T + self.P2[:, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = hom[:, :2] / hom[:, 2:3]
        depth = hom[:, 2] - self.P2[2, 3]
        return uv, depth


# --------------------------------------------------------------------------------------------------
# boxes


def boxes_lidar_to_camera(boxes: np.ndarray, calib: Calibration) -> np.ndarray:
    """Canonical LiDAR boxes [N, 7] -> KITTI camera boxes [N, 7] ``(x, y, z, l, h, w, ry)``.

    The camera location is the bottom centre (LiDAR z minus half the height, then transformed) and
    ``ry = -yaw - pi/2`` (not wrapped), as OpenPCDet's ``boxes3d_lidar_to_kitti_camera``.
    """
    boxes = _boxes7(boxes, "boxes_lidar_to_camera")
    bottom = boxes[:, 0:3].copy()
    bottom[:, 2] -= boxes[:, 5] / 2.0
    xyz = calib.lidar_to_rect(bottom)
    l, w, h, yaw = boxes[:, 3], boxes[:, 4], boxes[:, 5], boxes[:, 6]
    return np.column_stack([xyz, l, h, w, -yaw - np.pi / 2.0])


def boxes_camera_to_lidar(boxes_camera: np.ndarray, calib: Calibration) -> np.ndarray:
    """KITTI camera boxes [N, 7] ``(x, y, z, l, h, w, ry)`` -> canonical LiDAR boxes [N, 7];
    the inverse of :func:`boxes_lidar_to_camera` (``yaw = -(ry + pi/2)``, not wrapped)."""
    cam = _boxes7(boxes_camera, "boxes_camera_to_lidar")
    xyz = calib.rect_to_lidar(cam[:, 0:3])
    l, h, w, ry = cam[:, 3], cam[:, 4], cam[:, 5], cam[:, 6]
    xyz[:, 2] += h / 2.0
    return np.column_stack([xyz, l, w, h, -(ry + np.pi / 2.0)])


def box_corners_3d(boxes: np.ndarray) -> np.ndarray:
    """Canonical LiDAR boxes [N, 7] -> corners [N, 8, 3] in the LiDAR frame.

    Corner order (box frame, x along the heading): the 4 bottom corners ``(+,+), (+,-), (-,-), (-,+)``
    then the 4 top corners in the same order.
    """
    boxes = _boxes7(boxes, "box_corners_3d")
    signs = np.array(
        [[1, 1, -1], [1, -1, -1], [-1, -1, -1], [-1, 1, -1], [1, 1, 1], [1, -1, 1], [-1, -1, 1], [-1, 1, 1]],
        dtype=np.float64,
    ) / 2.0
    local = signs[None, :, :] * boxes[:, None, 3:6]
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, 0:3]


def camera_box_corners(boxes_camera: np.ndarray) -> np.ndarray:
    """KITTI camera boxes [N, 7] (bottom centre) -> corners [N, 8, 3] in the rect camera frame
    (bottom 4 corners at ``y``, top 4 at ``y - h``), as OpenPCDet's ``boxes3d_to_corners3d_kitti_camera``."""
    cam = _boxes7(boxes_camera, "camera_box_corners")
    l, h, w, ry = cam[:, 3:4], cam[:, 4:5], cam[:, 5:6], cam[:, 6:7]
    sx = np.array([1, 1, -1, -1, 1, 1, -1, -1], dtype=np.float64) / 2.0
    sz = np.array([1, -1, -1, 1, 1, -1, -1, 1], dtype=np.float64) / 2.0
    top = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=np.float64)
    xl, zl, yl = l * sx, w * sz, -h * top
    c, s = np.cos(ry), np.sin(ry)
    x = xl * c + zl * s
    z = -xl * s + zl * c
    return np.stack([x, yl, z], axis=-1) + cam[:, None, 0:3]


def project_boxes_to_image(
    boxes_lidar: np.ndarray, calib: Calibration, image_shape: Sequence[int] | None = None
) -> np.ndarray:
    """Canonical LiDAR boxes [N, 7] -> 2D image boxes [N, 4] ``(x1, y1, x2, y2)``: the extent of the 8
    projected corners (computed from the camera box, as OpenPCDet's
    ``boxes3d_kitti_camera_to_imageboxes``), clipped to ``[0, W-1] x [0, H-1]`` when
    ``image_shape=(H, W)`` is given. Boxes behind the camera give meaningless values; callers filter
    by depth first if that matters."""
    cam = boxes_lidar_to_camera(boxes_lidar, calib)
    corners = camera_box_corners(cam).reshape(-1, 3)
    uv, _ = calib.rect_to_image(corners)
    uv = uv.reshape(-1, 8, 2)
    out = np.concatenate([uv.min(axis=1), uv.max(axis=1)], axis=1)
    if image_shape is not None:
        height, width = int(image_shape[0]), int(image_shape[1])
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width - 1)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height - 1)
    return out


# --------------------------------------------------------------------------------------------------
# camera field of view


def fov_mask(points: np.ndarray, calib: Calibration, image_shape: Sequence[int]) -> np.ndarray:
    """Boolean [N]: the LiDAR point projects inside the ``(H, W)`` image with depth >= 0
    (OpenPCDet's ``get_fov_flag``)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"fov_mask: expected points [N, >=3], got shape {pts.shape}")
    uv, depth = calib.rect_to_image(calib.lidar_to_rect(pts[:, :3]))
    height, width = int(image_shape[0]), int(image_shape[1])
    with np.errstate(invalid="ignore"):
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    return inside & (depth >= 0)


def crop_to_fov(points: np.ndarray, calib: Calibration, image_shape: Sequence[int]) -> np.ndarray:
    """Keep the rows of ``points`` [N, C] (LiDAR frame) that fall in the camera image (see
    :func:`fov_mask`): how OpenPCDet builds ``velodyne_reduced``. Dtype and columns are kept."""
    points = np.asarray(points)
    return points[fov_mask(points, calib, image_shape)]


def read_image_shape(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of a PNG image, read from its header (no image library needed)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read image: {exc}") from exc
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise CalibrationError(f"{path}: not a PNG file (KITTI image_2 images are PNG)")
    width, height = struct.unpack(">II", head[16:24])
    if width == 0 or height == 0:
        raise CalibrationError(f"{path}: PNG header has an empty image size {width}x{height}")
    return int(height), int(width)


# --------------------------------------------------------------------------------------------------
# labels


def _float_tuple(values, n: int, name: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())
    if len(out) != n:
        raise ValueError(f"KittiObject.{name}: expected {n} values, got {len(out)}")
    return out


@dataclass
class KittiObject:
    """One line of a KITTI label (ground truth) or result file (with ``score``).

    ``bbox`` ``(x1, y1, x2, y2)`` pixels, ``dimensions`` ``(h, w, l)`` metres, ``location`` ``(x, y, z)``
    bottom centre in the rect camera frame. Vectors are stored as tuples of Python floats so objects
    compare (``==``) exactly; ``np.asarray(obj.bbox)`` gives an array.
    """

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox: tuple[float, float, float, float]
    dimensions: tuple[float, float, float]
    location: tuple[float, float, float]
    rotation_y: float
    score: float | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type or any(c.isspace() for c in self.type):
            raise ValueError(f"KittiObject.type must be a non-empty word, got {self.type!r}")
        self.truncated = float(self.truncated)
        if float(self.occluded) != int(self.occluded):
            raise ValueError(f"KittiObject.occluded must be an integer, got {self.occluded!r}")
        self.occluded = int(self.occluded)
        self.alpha = float(self.alpha)
        self.bbox = _float_tuple(self.bbox, 4, "bbox")
        self.dimensions = _float_tuple(self.dimensions, 3, "dimensions")
        self.location = _float_tuple(self.location, 3, "location")
        self.rotation_y = float(self.rotation_y)
        if self.score is not None:
            self.score = float(self.score)

    @property
    def height_px(self) -> float:
        """2D box height in pixels (``y2 - y1``), the quantity KITTI difficulties are based on."""
        return self.bbox[3] - self.bbox[1]

    def camera_box(self) -> np.ndarray:
        """This object as a KITTI camera box [7] ``(x, y, z, l, h, w, ry)``."""
        h, w, l = self.dimensions
        return np.array([*self.location, l, h, w, self.rotation_y], dtype=np.float64)


_LABEL_FIELDS = "type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry [score]"


def _parse_label_line(line: str, where: str) -> KittiObject:
    words = line.split()
    if len(words) not in (15, 16):
        raise LabelError(f"{where}: expected 15 or 16 fields ({_LABEL_FIELDS}), got {len(words)}: {line.strip()[:100]!r}")
    names = _LABEL_FIELDS.replace("[score]", "score").split()
    numbers = []
    for name, word in zip(names[1:], words[1:]):
        try:
            value = float(word)
        except ValueError:
            raise LabelError(f"{where}: field '{name}' is not a number: {word!r}") from None
        if not math.isfinite(value):
            raise LabelError(f"{where}: field '{name}' is not finite: {word!r}")
        numbers.append(value)
    if numbers[1] != int(numbers[1]):
        raise LabelError(f"{where}: field 'occluded' must be an integer, got {words[2]!r}")
    x1, y1, x2, y2 = numbers[3:7]
    if words[0] != "DontCare" and (x2 < x1 or y2 < y1):
        raise LabelError(f"{where}: 2D box has x2 < x1 or y2 < y1: {words[4:8]}")
    return KittiObject(
        type=words[0],
        truncated=numbers[0],
        occluded=int(numbers[1]),
        alpha=numbers[2],
        bbox=numbers[3:7],
        dimensions=numbers[7:10],
        location=numbers[10:13],
        rotation_y=numbers[13],
        score=numbers[14] if len(numbers) == 15 else None,
    )


def read_label(path: str | Path) -> list[KittiObject]:
    """Read a KITTI label or result file (one object per line; blank lines ignored).

    Raises :class:`LabelError` with ``file:line`` and what is wrong (field count, a field that is not
    a number, non-integer occlusion, inverted 2D box), or when the file cannot be read as UTF-8. A
    leading UTF-8 byte order mark is skipped with an :class:`InputWarning` (it would otherwise
    turn the first object's type into ``'\ufeffCar'``, which no evaluation counts).
    """
    path = Path(path)
    text = read_text_file(path, LabelError, "label")
    return [
        _parse_label_line(line, f"{path}:{lineno}")
        for lineno, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _fmt(value: float, decimals: int | None) -> str:
    return repr(float(value)) if decimals is None else f"{value:.{decimals}f}"


def format_label_line(obj: KittiObject, decimals: int | None = None) -> str:
    """One label line. ``decimals=None`` writes each float's shortest exact representation (so
    :func:`read_label` gives back the same floats); an int writes fixed decimals (KITTI uses 2)."""
    values = [obj.truncated, obj.occluded, obj.alpha, *obj.bbox, *obj.dimensions, *obj.location, obj.rotation_y]
    words = [obj.type] + [str(obj.occluded) if i == 1 else _fmt(v, decimals) for i, v in enumerate(values)]
    if obj.score is not None:
        words.append(_fmt(obj.score, decimals))
    return " ".join(words)


def write_label(path: str | Path, objects: Iterable[KittiObject], decimals: int | None = None) -> Path:
    """Write KITTI label / result lines (the score column only for objects whose ``score`` is set),
    atomically (:func:`~pointpillars_trt.io.atomic.atomic_write_text`).
    With the default ``decimals=None`` the file reads back exactly (see :func:`format_label_line`)."""
    from .atomic import atomic_write_text

    lines = [format_label_line(obj, decimals) for obj in objects]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def lidar_box_lines(class_names: Sequence[str], boxes: np.ndarray, scores: np.ndarray) -> str:
    """Boxes in the LiDAR frame as text, one ``class x y z dx dy dz yaw score`` line each (4
    decimals): the per-frame files written when no calibration maps them to KITTI's camera frame."""
    lines = [f"{n} " + " ".join(f"{v:.4f}" for v in box) + f" {s:.4f}"
             for n, box, s in zip(class_names, np.asarray(boxes, dtype=np.float64).reshape(-1, 7), scores)]
    return "".join(line + "\n" for line in lines)


def kitti_objects_to_camera_boxes(objects: Sequence[KittiObject]) -> np.ndarray:
    """KITTI objects -> camera boxes [N, 7] ``(x, y, z, l, h, w, ry)``."""
    if not objects:
        return np.zeros((0, 7), dtype=np.float64)
    return np.stack([obj.camera_box() for obj in objects])


def _wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap to ``[-pi, pi)``."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def detections_to_kitti_objects(
    boxes_lidar: np.ndarray,
    class_names: Sequence[str],
    scores: np.ndarray,
    calib: Calibration,
    image_shape: Sequence[int] | None = None,
) -> list[KittiObject]:
    """Detections -> KITTI result objects, as OpenPCDet's ``generate_prediction_dicts``.

    ``boxes_lidar`` [N, 7] canonical, ``class_names`` one name per box, ``scores`` [N]. Camera box by
    :func:`boxes_lidar_to_camera`; ``alpha = -arctan2(-y, x) + ry`` (LiDAR x, y); 2D box by
    :func:`project_boxes_to_image` (clipped when ``image_shape=(H, W)`` is given); truncation and
    occlusion 0. ``ry`` and ``alpha`` are wrapped to ``[-pi, pi)`` (KITTI's range; IoU and AOS are
    unchanged by the wrap).
    """
    boxes = _boxes7(boxes_lidar, "detections_to_kitti_objects")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(class_names) != len(boxes) or len(scores) != len(boxes):
        raise ValueError(
            f"detections_to_kitti_objects: {len(boxes)} boxes, {len(class_names)} class names, {len(scores)} scores"
        )
    if len(boxes) == 0:
        return []
    cam = boxes_lidar_to_camera(boxes, calib)
    ry = _wrap_angle(cam[:, 6])
    alpha = _wrap_angle(-np.arctan2(-boxes[:, 1], boxes[:, 0]) + cam[:, 6])
    bbox = project_boxes_to_image(boxes, calib, image_shape)
    return [
        KittiObject(
            type=str(class_names[i]),
            truncated=0.0,
            occluded=0,
            alpha=alpha[i],
            bbox=bbox[i],
            dimensions=(cam[i, 4], cam[i, 5], cam[i, 3]),
            location=cam[i, 0:3],
            rotation_y=ry[i],
            score=scores[i],
        )
        for i in range(len(boxes))
    ]
