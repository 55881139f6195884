"""Is a frame's intensity in the range the model was trained on? If not, which scale fits.

Drivers publish intensity in their own units: KITTI's reflectance is in ``[0, 1]``, many drivers
send ``uint8`` (``0..255``) or ``uint16`` (``0..65535``) values. A model fed intensities far
outside its training range gives wrong boxes without any error, so :func:`intensity_problem`
says so and names the ``intensity_scale`` (the factor the ROS node, ``tools/infer_bag.py`` and
:func:`~pointpillars_trt.ros.cloud.cloud_to_points` multiply intensities by) that maps the
frame's full scale onto the model's.
"""

from __future__ import annotations

import threading

import numpy as np

# full scales of common sensor encodings: float reflectance, uint8, uint16
FULL_SCALES = (1.0, 255.0, 65535.0)
TOLERANCE = 1e-3


def suggested_scale(max_intensity: float, high: float) -> str:
    """The scale, as ``"a/b"`` text, mapping the smallest common full scale that holds
    ``max_intensity`` (1, 255, 65535, else the value itself) onto ``high``."""
    full = next((f for f in FULL_SCALES if max_intensity <= f * (1 + TOLERANCE)), max_intensity)
    return f"{high:.7g}/{full:.7g}"


def intensity_problem(points: np.ndarray, intensity_range: tuple[float, float], source: str = "<array>") -> str | None:
    """A message when the finite intensities of ``points`` lie outside ``intensity_range``, else None.

    Args:
        points: ``float32 [N, 4]`` ``(x, y, z, intensity)``; non-finite values are ignored.
        intensity_range: ``(low, high)``, the model's ``config.voxel.intensity_range``.
        source: names the frame in the message.

    Values may exceed the range by a relative ``TOLERANCE`` (rounding of a stored maximum).
    Above the range the message names the ``intensity_scale`` that fits (max 254 with range
    ``[0, 1]``: ``1/255``; max 65535: ``1/65535``); below it (negative intensities) no scale helps
    and the message says so.
    """
    column = np.asarray(points)[:, 3]
    column = column[np.isfinite(column)]
    if column.size == 0:
        return None
    return range_problem(float(column.min()), float(column.max()), intensity_range, source)


def range_problem(vmin: float, vmax: float, intensity_range: tuple[float, float], source: str = "<array>") -> str | None:
    """:func:`intensity_problem` from a frame's smallest and largest finite intensity (``vmin > vmax``:
    the frame had none, and there is no problem)."""
    low, high = (float(v) for v in intensity_range)
    if vmin > vmax:
        return None
    slack = TOLERANCE * max(abs(high - low), 1e-12)
    where = f"the model's intensity range [{low:g}, {high:g}] (config voxel.intensity_range)"
    if vmax > high + slack:
        scale = suggested_scale(vmax, high)
        return (
            f"{source}: intensities up to {vmax:g} are outside {where}; boxes will be wrong. "
            f"Scale them: intensity_scale={scale} (ROS parameter intensity_scale, or auto)"
        )
    if vmin < low - slack:
        return f"{source}: intensities down to {vmin:g} are outside {where}; check which field holds the intensity"
    return None


class IntensityMonitor:
    """Checks each frame against ``intensity_range`` and says so at most once per ``period_s``
    (the next message counts the frames in between). Frames of more than ``sample`` points are
    checked on an even stride of about ``sample`` of them: a wrong scale moves every point, and
    this keeps the check at a few microseconds on the GPU path's hot loop. ``points`` are a
    validated cloud (NaN intensities make the fast check fall through to :func:`intensity_problem`)."""

    def __init__(self, intensity_range: tuple[float, float], period_s: float = 5.0, sample: int = 2048) -> None:
        self.range, self.period_s, self.sample = tuple(float(v) for v in intensity_range), float(period_s), int(sample)
        low, high = self.range
        slack = TOLERANCE * max(abs(high - low), 1e-12)
        self._low, self._high = low - slack, high + slack
        self._last = -float("inf")
        self._suppressed = 0
        self._lock = threading.Lock()  # one Detector, several threads: the quiet period and its count are shared

    def __call__(self, points: np.ndarray, source: str, now: float) -> str | None:
        """The message to warn with for this frame, or None (in range, or inside the quiet period)."""
        column = points[:: max(1, points.shape[0] // self.sample), 3]
        if self._low <= column.min() and column.max() <= self._high:  # the common case: two reductions, no copy
            return None
        return self._rate_limited(intensity_problem(points[:: max(1, points.shape[0] // self.sample)], self.range, source), now)

    def check_range(self, vmin: float, vmax: float, source: str, now: float) -> str | None:
        """The same from a frame's smallest and largest finite intensity, measured elsewhere (the
        device executor measures them on the GPU, over every point)."""
        if vmin > vmax or (self._low <= vmin and vmax <= self._high):
            return None
        return self._rate_limited(range_problem(vmin, vmax, self.range, source), now)

    def _rate_limited(self, msg: str | None, now: float) -> str | None:
        if msg is None:  # only non-finite values were outside
            return None
        with self._lock:
            if now - self._last < self.period_s:
                self._suppressed += 1
                return None
            suppressed, self._last, self._suppressed = self._suppressed, now, 0
        return msg + f" ({suppressed} more frames like this since the last warning)" if suppressed else msg
