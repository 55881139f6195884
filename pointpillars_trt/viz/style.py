"""Per-class colours used by every viewer (hex RGB strings, so tests can look for them in pixels)."""

from __future__ import annotations

CLASS_COLORS = {
    "Car": "#e6194b",  # red
    "Pedestrian": "#f032e6",  # magenta
    "Cyclist": "#ff8c00",  # orange
}
# For labels outside CLASS_COLORS, picked by a stable hash of the label.
EXTRA_COLORS = ("#4363d8", "#000000", "#9a6324", "#800000", "#808000", "#000075")
REFERENCE_COLOR = "#222222"


def class_color(label: str) -> str:
    """The hex colour ``"#rrggbb"`` of a class label (case-sensitive KITTI names get fixed colours)."""
    if label in CLASS_COLORS:
        return CLASS_COLORS[label]
    return EXTRA_COLORS[sum(label.encode("utf-8")) % len(EXTRA_COLORS)]


def hex_to_rgb(color: str) -> tuple[float, float, float]:
    """``"#rrggbb"`` -> ``(r, g, b)`` in ``[0, 1]``."""
    color = color.lstrip("#")
    return tuple(int(color[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
