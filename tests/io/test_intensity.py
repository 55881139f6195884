"""intensity_problem: frames outside the model's intensity range name the scale that fits."""

from __future__ import annotations

import numpy as np
import pytest

from pointpillars_trt.io.intensity import intensity_problem


def _cloud(intensity):
    points = np.zeros((len(intensity), 4), np.float32)
    points[:, 3] = intensity
    return points


@pytest.mark.parametrize(
    "top, scale",
    [(254.0, "1/255"), (255.0, "1/255"), (65535.0, "1/65535"), (4000.0, "1/65535"), (1.5, "1/255"), (1e6, "1/1000000")],
)
def test_above_the_range_names_the_scale(top, scale):
    message = intensity_problem(_cloud([0.0, top / 2, top]), (0.0, 1.0), "frame 7")
    assert message.startswith("frame 7: intensities up to")
    assert f"intensity_scale={scale} " in message and "[0, 1]" in message


def test_other_ranges_scale_onto_their_top():
    assert "intensity_scale=255/65535" in intensity_problem(_cloud([65535.0]), (0.0, 255.0))
    assert intensity_problem(_cloud([200.0]), (0.0, 255.0)) is None


def test_inside_the_range_or_no_finite_values_is_fine(kitti_points):
    assert intensity_problem(kitti_points, (0.0, 1.0)) is None
    assert intensity_problem(_cloud([np.nan, np.inf, 0.5]), (0.0, 1.0)) is None
    assert intensity_problem(np.zeros((0, 4), np.float32), (0.0, 1.0)) is None
    assert intensity_problem(_cloud([1.0004]), (0.0, 1.0)) is None  # rounding of a stored maximum


def test_real_frame_scaled_as_uint16_drivers_send_it(kitti_points):
    scaled = kitti_points.copy()
    scaled[:, 3] *= 65535
    assert "intensity_scale=1/65535" in intensity_problem(scaled, (0.0, 1.0))


def test_below_the_range_says_no_scale_helps():
    message = intensity_problem(_cloud([-3.0, 0.5]), (0.0, 1.0))
    assert "down to -3" in message and "intensity_scale" not in message


def test_monitor_counts_every_frame_once_under_threads():
    """Several threads share one Detector's monitor: each out-of-range frame is either the one warning
    of its quiet period or counted in the next message, never lost or counted twice."""
    import threading

    from pointpillars_trt.io.intensity import IntensityMonitor

    monitor = IntensityMonitor((0.0, 1.0), period_s=1e9)
    frame = _cloud(np.full(64, 200.0, np.float32))
    messages: list[str] = []

    def work():
        for _ in range(500):
            msg = monitor(frame, "<t>", now=1.0)
            if msg is not None:
                messages.append(msg)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(messages) == 1
    assert monitor._suppressed == 4 * 500 - 1
    monitor.period_s = 0.0
    assert f"({4 * 500 - 1} more frames like this" in monitor(frame, "<t>", now=2.0)
