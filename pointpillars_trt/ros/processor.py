"""What a detector node does with one cloud, without ROS: decode, move into the detector frame,
detect, and turn the detections into plain marker / box data.

:class:`NodeParams` are the node's parameters (the same for ROS 1 and ROS 2, and for the bag
replay tool); :class:`FrameProcessor` runs one :class:`~pointpillars_trt.ros.cloud.CloudData` and
returns a :class:`FrameResult` (one with no boxes for a cloud without a usable point), or raises a :class:`~pointpillars_trt.errors.PointPillarsError`
that names the cloud (stamp, frame) and what is wrong with it; :class:`RepeatFilter` keeps a
node that receives the same bad input at 10 Hz from flooding its log.
"""

from __future__ import annotations

import array
import dataclasses
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError, PointCloudError
from ..thread_warnings import caught_warnings
from .cloud import CloudData, Header, cloud_to_points, describe_cloud, parse_intensity_scale
from .markers import BoxData, MarkerData, detections_to_boxes, detections_to_markers
from .transform import apply_transform, parse_transform

BOX_MSG_CHOICES = ("auto", "vision_msgs", "pointpillars", "none")


@dataclass(frozen=True)
class NodeParams:
    """Parameters of the detector node (``tools/ros_node.py`` flags; ROS parameters of the same
    names override them).

    ``frame_id``: the detector's frame, stamped on every output; empty: the outputs keep the
    cloud's frame and clouds of any frame are accepted as they are. ``transform``: 6 numbers
    ``x y z roll pitch yaw`` or 16 (row-major 4x4) mapping the cloud's frame into ``frame_id``
    (a string of numbers or a list); ``transform_from``: the cloud frame it maps from (empty: any
    frame other than ``frame_id``). A cloud in another frame than ``frame_id`` without a
    matching transform is rejected. ``score_threshold < 0``: the config's. ``intensity_scale``:
    a number (``1/255`` accepted) or ``auto``. ``nonfinite``: ``drop`` (NaN/inf points are
    removed, as organized clouds mark missing returns) or ``error`` (the frame is rejected).
    ``box_msg``: ``auto`` (vision_msgs when installed, else ``pointpillars`` on ROS 1 / nothing on
    ROS 2), ``vision_msgs``, ``pointpillars`` (ROS 1 only) or ``none``.
    ``intensity_auto_float_scale``: what ``intensity_scale=auto`` multiplies float (and other
    non-uint8/uint16) intensities by when a frame's maximum exceeds 1. Values of ROS parameters
    are coerced by :func:`_coerce` (the same for ROS 1 and ROS 2).
    """

    input: str = "/points"
    markers: str = "/detections/markers"
    boxes: str = "/detections"
    latency: str = "~latency_ms"
    frame_id: str = ""
    transform: str = ""
    transform_from: str = ""
    ckpt: str = ""
    engine_dir: str = ""
    config: str = ""
    format: str = ""
    backend: str = "auto"
    device: str = ""
    score_threshold: float = -1.0
    intensity_scale: str = "1.0"
    intensity_field: str = ""
    intensity_auto_float_scale: str = "1/255"
    nonfinite: str = "drop"
    warmup: int = 2
    box_msg: str = "auto"
    marker_ns: str = "pointpillars"
    marker_lifetime: float = 0.0

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def with_overrides(self, get: Callable[[str, Any], Any]) -> "NodeParams":
        """A copy where each field is ``get(name, current_value)`` coerced to the field's type
        (``get`` is e.g. ``lambda n, d: rospy.get_param("~" + n, d)``)."""
        values = {}
        for f in dataclasses.fields(self):
            current = getattr(self, f.name)
            value = get(f.name, current)
            values[f.name] = _coerce(f.name, value, type(current))
        return NodeParams(**values)

    def check(self) -> "NodeParams":
        """Raise :class:`ConfigError` for inconsistent values; returns self."""
        if self.box_msg not in BOX_MSG_CHOICES:
            raise ConfigError(f"box_msg must be one of {BOX_MSG_CHOICES}, got {self.box_msg!r}")
        if not self.score_threshold <= 1:  # also NaN
            raise ConfigError(f"parameter 'score_threshold': must be in [0, 1] (negative: the config's), got {self.score_threshold}")
        if self.warmup < 0:
            raise ConfigError(f"parameter 'warmup': must be >= 0, got {self.warmup}")
        if self.nonfinite not in ("drop", "error"):
            raise ConfigError(f"nonfinite must be 'drop' or 'error', got {self.nonfinite!r}")
        matrix = self.transform_matrix()
        if matrix is not None and not self.frame_id:
            raise ConfigError("a transform needs frame_id (the detector frame it maps the cloud into)")
        for name in ("intensity_scale", "intensity_auto_float_scale"):
            try:
                scale = parse_intensity_scale(getattr(self, name))
            except ValueError as exc:
                raise ConfigError(f"parameter {name!r}: {exc}") from exc
            if name != "intensity_scale" and scale == "auto":
                raise ConfigError(f"parameter {name!r} must be a number, not 'auto'")
        return self

    def transform_matrix(self) -> np.ndarray | None:
        text = self.transform.replace(",", " ").replace("[", " ").replace("]", " ").split()
        try:
            values = [float(v) for v in text]
        except ValueError as exc:
            raise ConfigError(f"transform must be numbers, got {self.transform!r}") from exc
        return parse_transform(values)


EXPECTED = {str: "a string (or a list of numbers, joined with spaces)", int: "an integer", float: "a finite number"}


def _coerce(name: str, value: Any, kind: type) -> Any:
    """A parameter value as ROS 1 (``rospy.get_param``) or ROS 2 (dynamically typed parameters:
    whatever type ``-p name:=value`` parses to) gives it -> the field's type ``kind``.

    ``str`` fields take strings, numbers (``0.0039`` -> ``"0.0039"``) and flat lists of numbers or
    strings (``[1.2, 0.0, 1.8, 0, 0, 0]`` -> ``"1.2 0.0 1.8 0 0 0"``); ``int`` fields take
    integers, integral floats and integer strings; ``float`` fields take finite numbers and
    numeric strings. Booleans are refused everywhere (no parameter is a flag).

    Raises:
        ConfigError: naming the parameter, the expected type and the value given.
    """
    def fail() -> ConfigError:
        return ConfigError(f"parameter {name!r}: expected {EXPECTED[kind]}, got {value!r} ({type(value).__name__})")

    if isinstance(value, bool):
        raise fail()
    if kind is str:
        if value is None or isinstance(value, (str, int, float)):
            return "" if value is None else str(value)
        items = list(value) if isinstance(value, (list, tuple, array.array)) else None
        if items is None or any(isinstance(v, bool) or not isinstance(v, (str, int, float)) for v in items):
            raise fail()
        return " ".join(str(v) for v in items)
    number: float | int
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip()) if kind is float else int(value.strip())
        except ValueError:
            raise fail() from None
    else:
        raise fail()
    if kind is int:
        if isinstance(number, float) and not number.is_integer():
            raise fail()
        return int(number)
    if not math.isfinite(number):
        raise fail()
    return float(number)


@dataclass(frozen=True)
class FrameResult:
    """The outputs of one cloud: header (input stamp, output frame), detections, markers, boxes,
    and, from a :class:`FrameProcessor` with ``keep_points``, the points the detector saw
    (``float32 [N, 4]`` in the detector frame, NaN rows dropped; else ``[0, 4]``)."""

    header: Header
    detections: Any
    markers: list[MarkerData]
    boxes: list[BoxData]
    num_points: int
    points: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 4), np.float32))
    num_nonfinite: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class FrameProcessor:
    """Runs a :class:`~pointpillars_trt.detector.Detector` on clouds.

    Each cloud is decoded straight into ``detector.input_buffer`` (on the GPU pipeline its pinned
    staging row, so the cloud is copied once, from the message's bytes, and not again into pinned
    memory), moved into the detector frame there, and detected. ``keep_points``: the results carry a
    copy of the points the detector saw (``FrameResult.points``; for tools that save them), else
    an empty ``[0, 4]`` array.
    """

    def __init__(self, detector: Any, params: NodeParams, keep_points: bool = False) -> None:
        self.detector = detector
        self.keep_points = keep_points
        self.params = params.check()
        self.matrix = params.transform_matrix()
        self.intensity_scale = parse_intensity_scale(params.intensity_scale)

    def output_frame(self, cloud_frame: str) -> str:
        return self.params.frame_id or cloud_frame

    def to_detector_frame(self, points: np.ndarray, cloud: CloudData, source: str, out: np.ndarray | None = None) -> np.ndarray:
        """Points of ``cloud`` in the detector frame (see :class:`NodeParams` for the rules): ``points``
        itself when no transform applies, else the transformed points in ``out`` (``points`` itself
        is allowed) or a new array."""
        p, frame = self.params, cloud.header.frame_id
        if not p.frame_id or frame == p.frame_id:
            return points
        if self.matrix is not None and (not p.transform_from or p.transform_from == frame):
            return apply_transform(points, self.matrix, out=out)
        have = f"a transform from {p.transform_from!r}" if self.matrix is not None else "no transform"
        raise PointCloudError(
            f"{source}: the cloud is in frame {frame!r}, the detector works in {p.frame_id!r} and there is "
            f"{have}; set transform (and transform_from) or frame_id"
        )

    def process(self, cloud: CloudData, markers: bool = True) -> FrameResult:
        """Detect in one cloud. A cloud without a usable point (empty, all NaN/inf under
        ``nonfinite=drop``, all outside the range) gives a result with no boxes (its markers: one
        ``DELETEALL``) and a note. ``markers=False``: ``FrameResult.markers`` is left empty (a node
        whose marker topic has no subscriber). Raises PointCloudError (bad layout, wrong frame,
        NaN/inf under ``nonfinite=error``) or another PointPillarsError."""
        from ..io.pointcloud import validate_points

        source = describe_cloud(cloud)
        threshold = self.params.score_threshold if self.params.score_threshold >= 0 else None
        t0 = time.perf_counter()
        with self.detector.input_buffer(max(0, int(cloud.height) * int(cloud.width))) as buf:
            points = cloud_to_points(cloud, self.intensity_scale, self.params.intensity_field or None,
                                     parse_intensity_scale(self.params.intensity_auto_float_scale), out=buf)
            num_nonfinite, notes = 0, []
            if not np.isfinite(points).all():  # the per-row mask only when a value is NaN/inf (it costs ~30x more)
                finite = np.isfinite(points).all(axis=1)
                num_nonfinite = int(points.shape[0] - np.count_nonzero(finite))
                if self.params.nonfinite == "error":
                    validate_points(points, source, nonfinite="error")
                points = points[finite]  # a copy: the detector stages it as any array
                notes.append(f"{source}: dropped {num_nonfinite} of {finite.size} points holding NaN/inf")
            # an empty cloud (also: every point NaN, or none in range) goes on: the detector returns an
            # empty result with an EmptyFrameWarning, published as "no objects" with the input's stamp
            points = self.to_detector_frame(points, cloud, source, out=points)  # in place: this frame's own array
            t1 = time.perf_counter()
            with caught_warnings() as caught:  # per thread: a node may call from several callback threads
                det = self.detector.detect(points, score_threshold=threshold, source=source)
            kept = points.copy() if self.keep_points else np.zeros((0, 4), np.float32)  # buf is reused after the block
        num_points = int(points.shape[0])
        notes += caught
        t2 = time.perf_counter()
        class_names = tuple(det.class_names)
        marker_list = detections_to_markers(
            det.boxes, det.scores, det.labels, class_names, ns=self.params.marker_ns,
            lifetime_s=self.params.marker_lifetime,
        ) if markers else []
        boxes = detections_to_boxes(det.boxes, det.scores, det.labels, class_names)
        t3 = time.perf_counter()
        timings = {"decode": (t1 - t0) * 1e3, **det.timings_ms, "markers": (t3 - t2) * 1e3}
        header = Header(cloud.header.stamp, self.output_frame(cloud.header.frame_id))
        return FrameResult(header, det, marker_list, boxes, num_points, kept, num_nonfinite, timings, notes)


class RepeatFilter:
    """Log the first of a kind of message, then at most one per ``period_s`` seconds with a count.

    Messages are of the same kind when they are equal after every number is replaced by ``#``
    (so stamps and counts do not make them differ).
    """

    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, message: str) -> str | None:
        """The text to log now (with ``(N similar messages suppressed)`` when some were), or None."""
        key = re.sub(r"\d+(\.\d+)?", "#", message)
        now = self.clock()
        if key in self._last:
            last, suppressed = self._last[key]
            if now - last < self.period_s:
                self._last[key] = (last, suppressed + 1)
                return None
            self._last[key] = (now, 0)
            return f"{message} ({suppressed} similar messages suppressed)" if suppressed else message
        self._last[key] = (now, 0)
        return message


def build_detector(params: NodeParams) -> Any:
    """The :class:`~pointpillars_trt.detector.Detector` the parameters describe (loads torch): the
    one factory, so ``backend=auto`` reaches the whole-frame GPU pipeline on a machine with CUDA."""
    from ..detector import build_detector as build

    return build(params.ckpt or None, params.engine_dir or None, config=params.config or None, backend=params.backend,
                 device=params.device or None, format=params.format or None, on_overflow="warn", nonfinite="error")
