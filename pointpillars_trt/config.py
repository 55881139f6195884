"""The typed, immutable PointPillars configuration.

One YAML file in ``configs/`` is the single source of geometry, anchors and thresholds. It is
loaded into frozen dataclasses; every size that follows from it (BEV grid, head feature map,
number of anchors per location) is a derived property, never a stored value.

Conventions used across the package:

* Points are ``(x, y, z, intensity)`` in the LiDAR frame (x forward, y left, z up), float32.
* Boxes are ``(x, y, z, dx, dy, dz, yaw)``: centre, length along the heading, width, height,
  and yaw counter-clockwise from +x about +z (OpenPCDet's convention).
* Grid indices are ``(ix, iy)`` with ``ix`` along x; the BEV canvas is ``[C, ny, nx]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG_NAME = "kitti_pointpillars_3class"

BOX_LAYOUTS = ("lwh_ccw", "wlh_cw")


def _tuple(values: Any, name: str, length: int | None = None, kind: type = float) -> tuple:
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{name}: expected a list, got {values!r}")
    try:
        out = tuple(kind(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected numbers of type {kind.__name__}, got {values!r}") from exc
    if length is not None and len(out) != length:
        raise ConfigError(f"{name}: expected {length} values, got {len(out)}")
    return out


def _check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    aliases = getattr(cls, "_yaml_aliases", {})
    unknown = sorted(set(data) - known - set(aliases))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")


@dataclass(frozen=True)
class VoxelConfig:
    """Pillar geometry. ``grid_size`` is derived: ``round((max - min) / voxel_size)``."""

    point_cloud_range: tuple[float, float, float, float, float, float]
    voxel_size: tuple[float, float, float]
    max_points_per_pillar: int = 32
    max_pillars: int = 40000
    max_pillars_train: int = 16000
    num_point_features: int = 4

    def __post_init__(self) -> None:
        r, v = self.point_cloud_range, self.voxel_size
        for axis in range(3):
            if not r[axis + 3] > r[axis]:
                raise ConfigError(f"voxel.point_cloud_range: max must exceed min on axis {axis}: {r}")
            if not v[axis] > 0:
                raise ConfigError(f"voxel.voxel_size must be positive: {v}")
            cells = (r[axis + 3] - r[axis]) / v[axis]
            if abs(cells - round(cells)) > 1e-4:
                raise ConfigError(
                    f"voxel: range {r[axis]}..{r[axis + 3]} on axis {axis} is not a whole number of "
                    f"{v[axis]} m voxels ({cells:.5f})"
                )
        if round((r[5] - r[2]) / v[2]) != 1:
            raise ConfigError("voxel: pillars need exactly one voxel along z (voxel_size[2] == z range)")
        if self.max_points_per_pillar < 1 or self.max_pillars < 1 or self.max_pillars_train < 1:
            raise ConfigError("voxel: max_points_per_pillar, max_pillars and max_pillars_train must be >= 1")
        if self.num_point_features != 4:
            raise ConfigError("voxel.num_point_features: only x, y, z, intensity (4) is supported")

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """``(nx, ny, nz)`` cells of the BEV grid."""
        r, v = self.point_cloud_range, self.voxel_size
        return tuple(int(round((r[a + 3] - r[a]) / v[a])) for a in range(3))  # type: ignore[return-value]

    @property
    def num_decorated_features(self) -> int:
        """Per-point PFN input: x, y, z, r, 3 offsets from the pillar mean, 3 from the pillar centre."""
        return self.num_point_features + 6


@dataclass(frozen=True)
class BackboneConfig:
    layer_nums: tuple[int, ...] = (3, 5, 5)
    layer_strides: tuple[int, ...] = (2, 2, 2)
    num_filters: tuple[int, ...] = (64, 128, 256)
    upsample_strides: tuple[int, ...] = (1, 2, 4)
    num_upsample_filters: tuple[int, ...] = (128, 128, 128)

    def __post_init__(self) -> None:
        n = len(self.layer_nums)
        for name in ("layer_strides", "num_filters", "upsample_strides", "num_upsample_filters"):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"network.backbone.{name}: expected {n} entries like layer_nums")
        strides = set()
        cum = 1
        for s, u in zip(self.layer_strides, self.upsample_strides):
            cum *= s
            if cum % u:
                raise ConfigError("network.backbone: each block's stride must be divisible by its upsample stride")
            strides.add(cum // u)
        if len(strides) != 1:
            raise ConfigError(f"network.backbone: upsampled blocks have different strides {sorted(strides)}")

    @property
    def output_stride(self) -> int:
        """Stride of the head's feature map relative to the BEV grid."""
        return self.layer_strides[0] // self.upsample_strides[0]

    @property
    def out_channels(self) -> int:
        return sum(self.num_upsample_filters)


@dataclass(frozen=True)
class NetworkConfig:
    pfn_channels: int = 64
    backbone: BackboneConfig = field(default_factory=BackboneConfig)


@dataclass(frozen=True)
class AnchorConfig:
    """Anchors of one class. Sizes are ``(l, w, h)``; centre z is ``bottom_height + h / 2``."""

    class_name: str
    sizes: tuple[tuple[float, float, float], ...]
    rotations: tuple[float, ...]
    bottom_height: float
    matched_threshold: float = 0.6
    unmatched_threshold: float = 0.45

    _yaml_aliases = {"class": "class_name"}

    @property
    def num_anchors(self) -> int:
        return len(self.sizes) * len(self.rotations)


@dataclass(frozen=True)
class HeadConfig:
    """How head outputs are decoded; set by checkpoint converters to the source's conventions.

    ``dir_offset``/``dir_limit_offset``/``num_dir_bins`` follow OpenPCDet and mmdet3d:
    ``yaw = limit_period(yaw - offset, limit_offset, 2 pi / bins) + offset + 2 pi / bins * bin``.
    """

    anchor_align_center: bool = False
    box_layout: str = "lwh_ccw"
    dir_offset: float = 0.78539
    dir_limit_offset: float = 0.0
    num_dir_bins: int = 2

    def __post_init__(self) -> None:
        if self.box_layout not in BOX_LAYOUTS:
            raise ConfigError(f"head.box_layout: {self.box_layout!r} is not one of {BOX_LAYOUTS}")
        if self.num_dir_bins < 1:
            raise ConfigError("head.num_dir_bins must be >= 1")


@dataclass(frozen=True)
class PostProcessConfig:
    score_threshold: float = 0.1
    nms_iou_threshold: float = 0.01
    nms_pre_max: int = 4096
    nms_post_max: int = 500
    class_agnostic_nms: bool = True


@dataclass(frozen=True)
class PointPillarsConfig:
    """The whole model configuration. Build it with :func:`load_config` or :meth:`from_dict`."""

    name: str
    classes: tuple[str, ...]
    voxel: VoxelConfig
    network: NetworkConfig
    anchors: tuple[AnchorConfig, ...]
    head: HeadConfig = field(default_factory=HeadConfig)
    postprocess: PostProcessConfig = field(default_factory=PostProcessConfig)

    def __post_init__(self) -> None:
        if not self.classes:
            raise ConfigError("classes: at least one class is needed")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"classes: duplicate names in {self.classes}")
        names = tuple(a.class_name for a in self.anchors)
        if names != self.classes:
            raise ConfigError(f"anchors: one entry per class in the order of `classes` {self.classes}, got {names}")
        counts = {len(a.rotations) for a in self.anchors}
        if len(counts) != 1:
            raise ConfigError("anchors: every class needs the same number of rotations (the head is shared)")

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        return self.voxel.grid_size

    @property
    def feature_map_size(self) -> tuple[int, int]:
        """``(nx, ny)`` of the head's output map."""
        nx, ny, _ = self.voxel.grid_size
        s = self.network.backbone.output_stride
        if nx % s or ny % s:
            raise ConfigError(f"grid {nx}x{ny} is not divisible by the head stride {s}")
        return nx // s, ny // s

    @property
    def num_anchors_per_location(self) -> int:
        return sum(a.num_anchors for a in self.anchors)

    @property
    def box_code_size(self) -> int:
        return 7

    @property
    def head_channels(self) -> dict[str, int]:
        """Output channels of the three 1x1 head convolutions."""
        a = self.num_anchors_per_location
        return {"cls": a * self.num_classes, "box": a * self.box_code_size, "dir": a * self.head.num_dir_bins}

    # ---- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for a in d["anchors"]:
            a["class"] = a.pop("class_name")
        return _listify(d)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): what engines, ONNX files and checkpoints carry."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        """Short SHA-256 of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def replace(self, **sections: Any) -> "PointPillarsConfig":
        """A copy with whole sections replaced, or sub-fields given as dicts (``head={"dir_offset": 0}``)."""
        changes = {}
        for key, value in sections.items():
            current = getattr(self, key)
            if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
                value = dataclasses.replace(current, **value)
            changes[key] = value
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PointPillarsConfig":
        _check_keys(data, cls, "config")
        for key in ("name", "classes", "voxel", "anchors"):
            if key not in data:
                raise ConfigError(f"config: missing required key {key!r}")
        v = data["voxel"]
        _check_keys(v, VoxelConfig, "voxel")
        voxel = VoxelConfig(
            point_cloud_range=_tuple(v["point_cloud_range"], "voxel.point_cloud_range", 6),
            voxel_size=_tuple(v["voxel_size"], "voxel.voxel_size", 3),
            **{k: int(v[k]) for k in ("max_points_per_pillar", "max_pillars", "max_pillars_train", "num_point_features") if k in v},
        )
        n = data.get("network", {})
        _check_keys(n, NetworkConfig, "network")
        b = n.get("backbone", {})
        _check_keys(b, BackboneConfig, "network.backbone")
        backbone = BackboneConfig(**{k: _tuple(val, f"network.backbone.{k}", kind=int) for k, val in b.items()})
        network = NetworkConfig(pfn_channels=int(n.get("pfn_channels", 64)), backbone=backbone)
        anchors = []
        for i, a in enumerate(data["anchors"]):
            _check_keys(a, AnchorConfig, f"anchors[{i}]")
            try:
                anchors.append(
                    AnchorConfig(
                        class_name=str(a["class"]),
                        sizes=tuple(_tuple(s, f"anchors[{i}].sizes", 3) for s in a["sizes"]),
                        rotations=_tuple(a["rotations"], f"anchors[{i}].rotations"),
                        bottom_height=float(a["bottom_height"]),
                        **{k: float(a[k]) for k in ("matched_threshold", "unmatched_threshold") if k in a},
                    )
                )
            except KeyError as exc:
                raise ConfigError(f"anchors[{i}]: missing key {exc.args[0]!r}") from exc
        h = data.get("head", {})
        _check_keys(h, HeadConfig, "head")
        head = HeadConfig(
            **{k: (bool(val) if k == "anchor_align_center" else int(val) if k == "num_dir_bins" else str(val) if k == "box_layout" else float(val)) for k, val in h.items()}
        )
        p = data.get("postprocess", {})
        _check_keys(p, PostProcessConfig, "postprocess")
        post = PostProcessConfig(
            **{k: (bool(val) if k == "class_agnostic_nms" else int(val) if k.startswith("nms_p") else float(val)) for k, val in p.items()}
        )
        return cls(
            name=str(data["name"]),
            classes=tuple(str(c) for c in data["classes"]),
            voxel=voxel,
            network=network,
            anchors=tuple(anchors),
            head=head,
            postprocess=post,
        )

    @classmethod
    def from_json(cls, text: str) -> "PointPillarsConfig":
        return cls.from_dict(json.loads(text))


def _listify(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _listify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_listify(v) for v in obj]
    return obj


def load_config(path: str | Path | None = None) -> PointPillarsConfig:
    """Load a YAML config. ``None`` loads the default KITTI 3-class config; a bare name
    (no suffix) is looked up in ``configs/``."""
    if path is None:
        path = DEFAULT_CONFIG_NAME
    p = Path(path)
    if not p.suffix and not p.exists():
        p = CONFIG_DIR / f"{p.name}.yaml"
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    try:
        return PointPillarsConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc


def check_same_config(expected: PointPillarsConfig, found_json: str, what: str) -> None:
    """Raise :class:`ConfigError` naming the differing fields if ``found_json`` is another config."""
    found = json.loads(found_json)
    want = expected.to_dict()
    if found == want:
        return
    diffs = sorted(_diff(want, found))
    raise ConfigError(f"{what} was built from another config; differing fields: {', '.join(diffs[:12])}")


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in set(a) | set(b):
            out += _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [prefix]
    return [] if a == b else [prefix]
