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
from typing import Any, Callable, Mapping

import yaml

from .errors import ConfigError
from .options import Choice

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG_NAME = "kitti_pointpillars_3class"

BOX_LAYOUTS = ("lwh_ccw", "wlh_cw")


# ---- strict value parsing: YAML/JSON values -> Python values, or a ConfigError naming the field ------
def _bool(value: Any, name: str) -> bool:
    """Only a real boolean: ``'false'`` or ``'no'`` (strings) would be truthy."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    return value


def _int(value: Any, name: str) -> int:
    """An integer (an integral float such as ``32.0`` is accepted; ``32.7``, strings and booleans are not)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    return value


def _float(value: Any, name: str) -> float:
    """A finite number. Numeric strings are accepted because YAML 1.1 (PyYAML) reads ``1e-3``
    without a decimal point as a string; NaN, inf, booleans and other strings are not."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def _tuple(values: Any, name: str, length: int | None = None, kind: type = float) -> tuple:
    """A list of ``kind`` (float, int or str) values, of ``length`` entries when given."""
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{name}: expected a list, got {values!r}")
    parse = {float: _float, int: _int, str: _str}[kind]
    out = tuple(parse(v, f"{name}[{i}]") for i, v in enumerate(values))
    if length is not None and len(out) != length:
        raise ConfigError(f"{name}: expected {length} values, got {len(out)}")
    return out


def _floats(length: int | None = None) -> Callable[[Any, str], tuple]:
    return lambda values, name: _tuple(values, name, length)


def _ints(values: Any, name: str) -> tuple[int, ...]:
    return _tuple(values, name, kind=int)


def _check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    aliases = getattr(cls, "_yaml_aliases", {})
    unknown = sorted(set(map(str, data)) - known - set(aliases))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")


def _parse_section(data: Any, cls: type, where: str, parsers: Mapping[str, Callable[[Any, str], Any]]) -> Any:
    """``cls(**fields)`` from a YAML mapping: unknown keys refused, each value through its parser,
    keys without a default required (``_yaml_aliases`` maps YAML names to field names)."""
    _check_keys(data, cls, where)
    aliases = getattr(cls, "_yaml_aliases", {})
    values = {aliases.get(k, k): v for k, v in data.items()}
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # fmt: skip
    yaml_name = {v: k for k, v in aliases.items()}
    for name in required:
        if name not in values:
            raise ConfigError(f"{where}: missing key {yaml_name.get(name, name)!r}")
    return cls(**{k: parsers[k](v, f"{where}.{yaml_name.get(k, k)}") for k, v in values.items()})


def _at_least(low: float, name: str, *values: float) -> None:
    if any(v < low for v in values):
        raise ConfigError(f"{name}: must be >= {low}, got {values[0] if len(values) == 1 else list(values)}")


def _choice(kind: type[Choice]) -> Callable[[Any, str], Choice]:
    """A parser for one :class:`~pointpillars_trt.options.Choice` (unknown values: ConfigError naming the field)."""
    return lambda value, name: kind.parse(value, name)


class RangeFilter(Choice):
    """Which points enter the voxelizer, besides its grid rule (``floor((p - min) / voxel)`` in
    ``[0, n)`` on every axis, float32). Comparisons are float32 against the float32 range.

    ``xy_closed`` (OpenPCDet's ``mask_points_by_range``): ``min <= p <= max`` on x and y; z is
    left to the grid rule. ``open`` (mmdet3d's ``PointsRangeFilter``, zhulf0804's
    ``point_range_filter``): ``min < p < max`` on x, y and z.
    """

    XY_CLOSED = "xy_closed"
    OPEN = "open"


class PreNmsOrder(Choice):
    """How candidates are chosen before NMS.

    ``threshold_then_topk`` (OpenPCDet): best-class score passes the score rule, then the top
    ``nms_pre_max`` by that score. ``topk_then_threshold`` (mmdet3d, zhulf0804): the top
    ``nms_pre_max`` anchors by best-class score before decoding, then each class's score
    passes the score rule (class-agnostic NMS then uses the best class of those that pass).

    Both give the same detections for the same numbers and rules: the score rule is monotone in
    the top-k key, so filtering and the top-k commute (tests/postprocess/test_modes.py). The
    field records the source's order; the first does less work on the GPU.
    """

    THRESHOLD_THEN_TOPK = "threshold_then_topk"
    TOPK_THEN_THRESHOLD = "topk_then_threshold"


class Comparison(Choice):
    """``value >= threshold`` (``at_least``) or ``value > threshold`` (``above``)."""

    AT_LEAST = "at_least"
    ABOVE = "above"


class YawRange(Choice):
    """Output yaw: ``source``: as the checkpoint's source decodes it (OpenPCDet
    ``[pi/4, pi/4 + 2 pi)``, mmdet3d ``[-pi/2, 3 pi/2)``, zhulf0804 ``(-3 pi/2, pi/2]`` in the
    canonical CCW frame); ``canonical``: wrapped into ``[-pi, pi)`` (float32 pi)."""

    SOURCE = "source"
    CANONICAL = "canonical"


def check_unit_interval(name: str, value: float) -> float:
    """``value`` if it lies in ``[0, 1]`` (a score or IoU threshold), else :class:`ConfigError` naming ``name``."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}: must be in [0, 1], got {value}")
    return value


@dataclass(frozen=True)
class VoxelConfig:
    """Pillar geometry and point features. ``grid_size`` is derived: ``round((max - min) / voxel_size)``.

    ``intensity_range`` ``(low, high)``: the intensities the model was trained on (KITTI's
    reflectance: ``(0, 1)``); frames outside it are warned about, naming the scale that fits.
    """

    point_cloud_range: tuple[float, float, float, float, float, float]
    voxel_size: tuple[float, float, float]
    max_points_per_pillar: int = 32
    max_pillars: int = 40000
    max_pillars_train: int = 16000
    num_point_features: int = 4
    intensity_range: tuple[float, float] = (0.0, 1.0)
    range_filter: RangeFilter = RangeFilter.XY_CLOSED

    def __post_init__(self) -> None:
        object.__setattr__(self, "range_filter", RangeFilter.parse(self.range_filter, "voxel.range_filter"))
        r, v = self.point_cloud_range, self.voxel_size
        if not all(math.isfinite(x) for x in (*r, *v)):
            raise ConfigError(f"voxel: point_cloud_range {r} and voxel_size {v} must be finite")
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
        _at_least(1, "voxel.max_points_per_pillar, max_pillars, max_pillars_train",
                  self.max_points_per_pillar, self.max_pillars, self.max_pillars_train)  # fmt: skip
        if self.num_point_features != 4:
            raise ConfigError("voxel.num_point_features: only x, y, z, intensity (4) is supported")
        low, high = self.intensity_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError(f"voxel.intensity_range: expected finite [low, high] with low < high, got {list(self.intensity_range)}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "voxel") -> "VoxelConfig":
        counts = dict.fromkeys(("max_points_per_pillar", "max_pillars", "max_pillars_train", "num_point_features"), _int)
        parsers = {"point_cloud_range": _floats(6), "voxel_size": _floats(3), "intensity_range": _floats(2),
                   "range_filter": _choice(RangeFilter), **counts}  # fmt: skip
        return _parse_section(data, cls, where, parsers)

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
        if not n:
            raise ConfigError("network.backbone.layer_nums: at least one block is needed")
        for name in ("layer_strides", "num_filters", "upsample_strides", "num_upsample_filters"):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"network.backbone.{name}: expected {n} entries like layer_nums")
            _at_least(1, f"network.backbone.{name}", *getattr(self, name))
        _at_least(0, "network.backbone.layer_nums", *self.layer_nums)
        strides = set()
        cum = 1
        for s, u in zip(self.layer_strides, self.upsample_strides):
            cum *= s
            if cum % u:
                raise ConfigError("network.backbone: each block's stride must be divisible by its upsample stride")
            strides.add(cum // u)
        if len(strides) != 1:
            raise ConfigError(f"network.backbone: upsampled blocks have different strides {sorted(strides)}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "network.backbone") -> "BackboneConfig":
        return _parse_section(data, cls, where, dict.fromkeys((f.name for f in dataclasses.fields(cls)), _ints))

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

    def __post_init__(self) -> None:
        _at_least(1, "network.pfn_channels", self.pfn_channels)

    @classmethod
    def from_dict(cls, data: Any, where: str = "network") -> "NetworkConfig":
        return _parse_section(data, cls, where, {"pfn_channels": _int, "backbone": BackboneConfig.from_dict})


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

    def __post_init__(self) -> None:
        where = f"anchors[{self.class_name}]"
        if not self.sizes or not self.rotations:
            raise ConfigError(f"{where}: sizes and rotations need at least one entry each")
        for size in self.sizes:
            if not all(v > 0 for v in size):
                raise ConfigError(f"{where}.sizes: each (l, w, h) must be positive, got {list(size)}")
        check_unit_interval(f"{where}.matched_threshold", self.matched_threshold)
        check_unit_interval(f"{where}.unmatched_threshold", self.unmatched_threshold)
        if self.unmatched_threshold > self.matched_threshold:
            raise ConfigError(f"{where}: unmatched_threshold must not exceed matched_threshold")

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "AnchorConfig":
        def sizes(values: Any, name: str) -> tuple:
            return tuple(_tuple(s, f"{name}[{i}]", 3) for i, s in enumerate(_tuple_of_lists(values, name)))

        parsers = {"class_name": _str, "sizes": sizes, "rotations": _floats(), "bottom_height": _float,
                   "matched_threshold": _float, "unmatched_threshold": _float}  # fmt: skip
        return _parse_section(data, cls, where, parsers)

    @property
    def num_anchors(self) -> int:
        return len(self.sizes) * len(self.rotations)


def _tuple_of_lists(values: Any, name: str) -> tuple:
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{name}: expected a list, got {values!r}")
    return tuple(values)


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
        if not (math.isfinite(self.dir_offset) and math.isfinite(self.dir_limit_offset)):
            raise ConfigError("head.dir_offset and head.dir_limit_offset must be finite")

    @classmethod
    def from_dict(cls, data: Any, where: str = "head") -> "HeadConfig":
        parsers = {"anchor_align_center": _bool, "box_layout": _str, "dir_offset": _float,
                   "dir_limit_offset": _float, "num_dir_bins": _int}  # fmt: skip
        return _parse_section(data, cls, where, parsers)


@dataclass(frozen=True)
class PostProcessConfig:
    """Test-time post-processing; the checkpoint converters set it to the source's pipeline.

    ``score_threshold`` and ``nms_iou_threshold`` in ``[0, 1]``; ``nms_pre_max``, ``nms_post_max``
    (the maximum number of output boxes) >= 1. ``class_agnostic_nms``: one NMS across classes
    (OpenPCDet) or one per class, merged by score (mmdet3d, zhulf0804). ``pre_nms_order``,
    ``score_rule`` (keep a score ``>=`` or ``>`` the threshold), ``nms_suppress_rule`` (suppress
    a box whose IoU with a kept one is ``>=`` or ``>`` the threshold; every source's CUDA kernel
    uses ``>``) and ``yaw_range``: see :class:`PreNmsOrder`, :class:`Comparison`, :class:`YawRange`.
    """

    score_threshold: float = 0.1
    nms_iou_threshold: float = 0.01
    nms_pre_max: int = 4096
    nms_post_max: int = 500
    class_agnostic_nms: bool = True
    pre_nms_order: PreNmsOrder = PreNmsOrder.THRESHOLD_THEN_TOPK
    score_rule: Comparison = Comparison.AT_LEAST
    nms_suppress_rule: Comparison = Comparison.ABOVE
    yaw_range: YawRange = YawRange.SOURCE

    def __post_init__(self) -> None:
        check_unit_interval("postprocess.score_threshold", self.score_threshold)
        check_unit_interval("postprocess.nms_iou_threshold", self.nms_iou_threshold)
        _at_least(1, "postprocess.nms_pre_max", self.nms_pre_max)
        _at_least(1, "postprocess.nms_post_max", self.nms_post_max)
        for name, kind in self._choices().items():
            object.__setattr__(self, name, kind.parse(getattr(self, name), f"postprocess.{name}"))

    @staticmethod
    def _choices() -> dict[str, type[Choice]]:
        return {"pre_nms_order": PreNmsOrder, "score_rule": Comparison, "nms_suppress_rule": Comparison, "yaw_range": YawRange}

    @classmethod
    def from_dict(cls, data: Any, where: str = "postprocess") -> "PostProcessConfig":
        parsers = {"score_threshold": _float, "nms_iou_threshold": _float, "nms_pre_max": _int,
                   "nms_post_max": _int, "class_agnostic_nms": _bool,
                   **{name: _choice(kind) for name, kind in cls._choices().items()}}  # fmt: skip
        return _parse_section(data, cls, where, parsers)

    def describe(self) -> str:
        """One line: the pipeline in force (for logs and tool headers)."""
        cmp = {Comparison.AT_LEAST: ">=", Comparison.ABOVE: ">"}
        nms = "class-agnostic" if self.class_agnostic_nms else "per-class"
        order = (f"score {cmp[self.score_rule]} {self.score_threshold:g}, then top {self.nms_pre_max}"
                 if self.pre_nms_order == PreNmsOrder.THRESHOLD_THEN_TOPK else
                 f"top {self.nms_pre_max} anchors, then score {cmp[self.score_rule]} {self.score_threshold:g}")
        return (f"{order}; {nms} NMS suppressing IoU {cmp[self.nms_suppress_rule]} {self.nms_iou_threshold:g}; "
                f"keep {self.nms_post_max}; yaw {self.yaw_range}")


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
        """Build from a parsed YAML/JSON mapping; every value is type-checked (see the module's parsers)."""
        def anchors(values: Any, name: str) -> tuple[AnchorConfig, ...]:
            entries = _tuple_of_lists(values, f"{name} (one mapping per class)")
            return tuple(AnchorConfig.from_dict(a, f"{name}[{i}]") for i, a in enumerate(entries))

        parsers = {"name": _str, "classes": lambda v, n: _tuple(v, n, kind=str), "voxel": VoxelConfig.from_dict,
                   "network": NetworkConfig.from_dict, "anchors": anchors, "head": HeadConfig.from_dict,
                   "postprocess": PostProcessConfig.from_dict}  # fmt: skip
        return _parse_section(data, cls, "config", parsers)

    @classmethod
    def from_json(cls, text: str) -> "PointPillarsConfig":
        """Build from JSON text (what artifacts carry); invalid JSON is a :class:`ConfigError` too."""
        return cls.from_dict(parse_json(text))


def parse_json(text: str, what: str = "config") -> Any:
    """JSON text -> Python values, refusing duplicate keys, NaN/Infinity and nesting past 100 levels.

    Raises:
        ConfigError: anything that is not such JSON (including non-string input).
    """
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ConfigError(f"{what}: duplicate JSON key(s) {duplicates}")
        return dict(items)

    def constant(name: str) -> None:
        raise ConfigError(f"{what}: {name} is not a valid JSON value here")

    if not isinstance(text, (str, bytes, bytearray)):
        raise ConfigError(f"{what}: expected JSON text, got {type(text).__name__}")
    _check_depth(text, what)
    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{what}: not valid JSON ({exc})") from None


MAX_NESTING = 100


def _check_depth(text: str | bytes, what: str) -> None:
    """Refuse more than :data:`MAX_NESTING` open brackets/braces in a row (a RecursionError otherwise)."""
    depth = peak = 0
    for ch in text.decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else text:
        if ch in "[{":
            depth += 1
            peak = max(peak, depth)
            if peak > MAX_NESTING:
                raise ConfigError(f"{what}: nested more than {MAX_NESTING} levels deep")
        elif ch in "]}":
            depth -= 1


def _listify(obj: Any) -> Any:
    if isinstance(obj, Choice):
        return obj.value
    if isinstance(obj, dict):
        return {k: _listify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_listify(v) for v in obj]
    return obj


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (a "billion laughs" expands a few KB into GBs), without
    duplicate keys (the last would silently win) and without nesting past :data:`MAX_NESTING`."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed in configs")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_NESTING:
                raise ConfigError(f"line {self.peek_event().start_mark.line + 1}: nested more than {MAX_NESTING} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: mapping key {key!r} is not a plain value")
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, what: str = "config") -> Any:
    """YAML text -> Python values through :class:`_StrictLoader`; every failure is a :class:`ConfigError`."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"{what}: not valid YAML: {_yaml_problem(exc)}") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: not valid YAML: {' '.join(str(exc).split())}") from None


def _yaml_problem(exc: Any) -> str:
    """A PyYAML parse error on one line: ``line L, column C: problem (context from line L0)``
    (PyYAML's own text spans several lines and repeats the source with a caret)."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = exc.problem or exc.context or "parse error"
    context = ""
    if exc.context and exc.problem:
        context = f" ({exc.context}" + (f" from line {exc.context_mark.line + 1}" if exc.context_mark is not None else "") + ")"
    return where + problem + context


def load_config(path: str | Path | None = None) -> PointPillarsConfig:
    """Load a YAML config. ``None`` loads the default KITTI 3-class config; a bare name
    (no suffix) is looked up in ``configs/``.

    Raises:
        ConfigError: naming the file: missing or unreadable, not UTF-8, not valid YAML, YAML
            aliases or duplicate keys, an unknown key, a value of the wrong type or out of range.
    """
    if path is None:
        path = DEFAULT_CONFIG_NAME
    p = Path(path)
    if not p.suffix and not p.exists():
        p = CONFIG_DIR / f"{p.name}.yaml"
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the config as UTF-8 text: {exc}") from None
    data = parse_yaml(text, str(p))
    try:
        return PointPillarsConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc


def check_same_config(expected: PointPillarsConfig, found_json: str, what: str) -> None:
    """Raise :class:`ConfigError` naming the differing fields if ``found_json`` is another config.

    ``found_json`` is read as a config first, so a field it lacks counts as its default (an
    artifact written before the field existed matches a config that has the default value).
    """
    try:
        found = PointPillarsConfig.from_json(found_json).to_dict()
    except ConfigError as exc:
        raise ConfigError(f"{what} carries an invalid config: {exc}") from None
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
