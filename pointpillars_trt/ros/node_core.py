"""The detector node's per-message logic, shared by the rospy and rclpy shells (no ROS imports).

:class:`NodeCore` takes a PointCloud2 message of any flavour, runs the
:class:`~pointpillars_trt.ros.processor.FrameProcessor`, builds the output messages with a
message factory and hands them to publish callables; it logs through three callables
(``info``, ``warn``, ``error``). A cloud without a usable point (empty, all NaN/inf, all outside
the range) is published as "no objects": a MarkerArray holding one ``DELETEALL`` marker and an
empty box array, with the input's stamp (and a rate-limited warning). A bad cloud (wrong layout
or frame) is logged (similar messages at most once per 5 s) and skipped: nothing is published for
it and the node keeps running.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError, PointPillarsError
from .cloud import cloud_from_msg
from .factories import MessageFactory
from .messages import DETECTION3D_ARRAY_TYPE, box_array_msg, detection3d_array_msg, float32_msg, marker_array_msg
from .msgdefs import BOX_ARRAY_TYPE
from .processor import FrameProcessor, FrameResult, NodeParams, RepeatFilter

Log = Callable[[str], None]


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Publishers:
    """Callables publishing one message each; ``boxes`` None when no box message is published.

    ``markers_wanted`` / ``boxes_wanted``: whether that topic has a subscriber now (rospy's
    ``get_num_connections() > 0``, rclpy's ``get_subscription_count() > 0``). A frame's markers are
    then neither built nor published while nobody listens (RViz closed: ~1500 message objects per frame
    saved), and its box message is not built. Neither publisher is latched, so nobody sees a
    difference."""

    markers: Callable[[Any], None]
    latency: Callable[[Any], None]
    boxes: Callable[[Any], None] | None = None
    markers_wanted: Callable[[], bool] = _always
    boxes_wanted: Callable[[], bool] = _always


def choose_box_type(factory: MessageFactory, choice: str) -> str | None:
    """The box-array message type for ``choice`` (see :class:`NodeParams`), or None for none.

    ``auto``: ``vision_msgs/msg/Detection3DArray`` when the factory has it; else on ROS 1 the
    run-time ``pointpillars_trt_msgs/msg/BoxArray``, on ROS 2 none.

    Raises:
        ConfigError: ``vision_msgs`` asked for but not installed, or ``pointpillars`` on ROS 2.
    """
    if choice == "none":
        return None
    if choice in ("auto", "vision_msgs") and factory.has(DETECTION3D_ARRAY_TYPE):
        return DETECTION3D_ARRAY_TYPE
    if choice == "vision_msgs":
        raise ConfigError("box_msg 'vision_msgs': vision_msgs/Detection3DArray is not installed")
    if factory.ros_version == 1:
        return BOX_ARRAY_TYPE
    if choice == "pointpillars":
        raise ConfigError("box_msg 'pointpillars' exists on ROS 1 only (ROS 2 cannot build message types at run time)")
    return None


class NodeCore:
    """One detector node's state: processor, factory, publishers, log functions, counters."""

    def __init__(
        self,
        detector: Any,
        params: NodeParams,
        factory: MessageFactory,
        publishers: Publishers,
        box_type: str | None,
        info: Log,
        warn: Log,
        error: Log,
    ) -> None:
        self.detector = detector
        self.processor = FrameProcessor(detector, params)
        self.factory = factory
        self.publishers = publishers
        self.box_type = box_type
        self.info, self.warn, self.error = info, warn, error
        self.repeat = RepeatFilter()
        self.frames = 0
        self.skipped = 0
        self._lock = threading.Lock()
        self._closed = False

    def handle(self, msg: Any) -> FrameResult | None:
        """Process one PointCloud2 and publish its outputs; returns the result (None if skipped)."""
        with self._lock:
            if self._closed:
                return None
            return self._handle(msg)

    def _log_once(self, log: Log, text: str) -> None:
        line = self.repeat(text)
        if line is not None:
            log(f"pointpillars: {line}")

    def _handle(self, msg: Any) -> FrameResult | None:
        t0 = time.perf_counter()
        pubs = self.publishers
        want_markers = pubs.markers_wanted()
        try:
            result = self.processor.process(cloud_from_msg(msg), markers=want_markers)
        except PointPillarsError as exc:
            self.skipped += 1
            self._log_once(self.error, f"skipped a cloud: {exc}")
            return None
        except Exception:  # keep the node alive; the traceback says what broke
            self.skipped += 1
            self._log_once(self.error, f"skipped a cloud after an unexpected error:\n{traceback.format_exc()}")
            return None
        for note in result.notes:
            self._log_once(self.warn, note)
        f = self.factory
        # boxes first: what a planner or tracker reads does not wait for RViz's ~26 points per box
        if self.box_type is not None and pubs.boxes is not None and pubs.boxes_wanted():
            build = detection3d_array_msg if self.box_type == DETECTION3D_ARRAY_TYPE else box_array_msg
            pubs.boxes(build(f, result.header, result.boxes))
        if want_markers:
            pubs.markers(marker_array_msg(f, result.header, result.markers))
        latency = (time.perf_counter() - t0) * 1e3
        pubs.latency(float32_msg(f, latency))
        self.frames += 1
        t = result.timings_ms
        self.info(
            f"pointpillars: stamp {result.header.stamp}: {result.num_points} points -> {len(result.boxes)} boxes"
            f"{'' if want_markers else ' (no marker subscriber)'}, "
            f"latency {latency:.1f} ms (decode {t.get('decode', 0.0):.1f}, voxelize {t.get('voxelize', 0.0):.1f}, "
            f"network {t.get('network', 0.0):.1f}, postprocess {t.get('postprocess', 0.0):.1f})"
        )
        return result

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop taking clouds, wait (up to ``timeout_s``) for the one in progress, release the backend."""
        got = self._lock.acquire(timeout=timeout_s)
        try:
            if self._closed:
                return
            self._closed = True
            self.detector.close()
            self.info(f"pointpillars: shut down after {self.frames} frames ({self.skipped} clouds skipped)")
        finally:
            if got:
                self._lock.release()


def warm_up(detector: Any, iterations: int, info: Log) -> None:
    if iterations > 0:
        t0 = time.perf_counter()
        detector.warmup(iterations=iterations)
        info(f"pointpillars: warm-up ({iterations} frames) took {(time.perf_counter() - t0) * 1e3:.0f} ms")


def describe_model(detector: Any, info: Log, warn: Log) -> None:
    src = detector.source
    info(f"pointpillars: model {src.describe()}; config {detector.config.name}; {detector.path}")
    if src.is_random:
        warn("pointpillars: no trained checkpoint given: RANDOM weights, the boxes are meaningless")
