"""Is a frame's intensity in the range the model was trained on? If not, which scale fits.

Drivers publish intensity in their own units: KITTI's reflectance is in ``[0, 1]``, many drivers
send ``uint8`` (``0..255``) or ``uint16`` (``0..65535``) values. A model fed intensities far
outside its training range gives wrong boxes without any error, so :func:`intensity_problem`
says so and names the ``intensity_scale`` (the factor the ROS node, ``tools/infer_bag.py`` and
:func:`~pointpillars_trt.ros.cloud.cloud_to_points` multiply intensities by) that maps the
frame's full scale onto the model's.
"""

from __future__ import annotations

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
    low, high = (float(v) for v in intensity_range)
    column = np.asarray(points)[:, 3]
    column = column[np.isfinite(column)]
    if column.size == 0:
        return None
    vmin, vmax = float(column.min()), float(column.max())
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
