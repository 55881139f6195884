"""Bird's-eye-view pictures of a point cloud with detected boxes (matplotlib, Agg, no display needed).

Picture convention: LiDAR +x (forward) points UP, LiDAR +y (left) points LEFT, so the picture is
what a bird above the car sees when facing the driving direction. The vertical axis is labelled
with x in metres, the horizontal axis with y in metres (increasing to the left), aspect 1:1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import BackendUnavailableError
from .box_geometry import as_boxes, box_corners_bev, heading_segments
from .style import REFERENCE_COLOR, class_color

COLOR_BY = ("height", "intensity")


def _import_matplotlib():
    """``(Figure, FigureCanvasAgg, Polygon, Line2D)``, or BackendUnavailableError with the install command."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Polygon
    except ImportError as exc:
        raise BackendUnavailableError(
            "render_bev needs matplotlib, which is not installed; install it with "
            "`pip install matplotlib` (or `pip install pointpillars_trt[viz]`)"
        ) from exc
    return Figure, FigureCanvasAgg, Polygon, Line2D


def default_limits(points: np.ndarray, boxes: np.ndarray, margin: float = 1.0):
    """``(xlim, ylim)`` in LiDAR metres covering the finite points (or the boxes if there are none).

    Args:
        points: ``[N, >=2]``; boxes: ``[M, 7]``.
    """
    xy = points[:, :2][np.isfinite(points[:, :2]).all(axis=1)] if len(points) else np.zeros((0, 2))
    if len(xy) == 0 and len(boxes):
        xy = box_corners_bev(boxes).reshape(-1, 2)
    if len(xy) == 0:
        return (-margin, margin), (-margin, margin)
    low, high = xy.min(axis=0) - margin, xy.max(axis=0) + margin
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def _check_inputs(points, boxes, labels, scores):
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points: expected shape [N, 4], got {list(points.shape)}")
    boxes = as_boxes(boxes)
    labels = list(labels) if labels is not None else []
    if len(labels) != len(boxes):
        raise ValueError(f"labels: {len(labels)} labels for {len(boxes)} boxes")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"scores: {len(scores)} scores for {len(boxes)} boxes")
    return points, boxes, labels, scores


def _point_colors(points: np.ndarray, color_by: str) -> tuple[np.ndarray, str, tuple[float, float]]:
    """``[N]`` colour values, their colourbar label and a robust (2nd..98th percentile) range."""
    if color_by == "intensity" and points.shape[1] >= 4:
        values, label = points[:, 3], "intensity"
    elif color_by in COLOR_BY:
        values, label = points[:, 2], "z (m)"
    else:
        raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")
    if len(values) == 0:
        return values, label, (0.0, 1.0)
    low, high = np.percentile(values, [2, 98])
    return values, label, (float(low), float(high) if high > low else float(low) + 1.0)


def _draw_boxes(ax, Polygon, boxes, colors, *, linestyle="-", linewidth=1.8):
    """Rotated rectangles plus a heading tick (centre -> front edge); picture coords are ``(y, x)``."""
    for corners, heading, color in zip(box_corners_bev(boxes), heading_segments(boxes), colors):
        ax.add_patch(
            Polygon(corners[:, ::-1], closed=True, fill=False, edgecolor=color,
                    linewidth=linewidth, linestyle=linestyle, zorder=3)
        )  # fmt: skip
        ax.plot(heading[:, 1], heading[:, 0], color=color, linewidth=linewidth, linestyle=linestyle, zorder=3)


def _draw_texts(ax, boxes, labels, scores, colors):
    """``"Car 0.87"`` just beyond the box's most forward corner (top of the picture)."""
    for i, (corners, color) in enumerate(zip(box_corners_bev(boxes), colors)):
        top = corners[np.argmax(corners[:, 0])]
        text = labels[i] if scores is None else f"{labels[i]} {scores[i]:.2f}"
        ax.text(
            top[1], top[0] + 0.4, text, color=color, fontsize=8, ha="center", va="bottom", zorder=4,
            clip_on=True, bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.5},
        )  # fmt: skip


def render_bev(
    points,
    boxes,
    labels: Sequence[str],
    scores,
    out_path: str | Path,
    *,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    title: str | None = None,
    reference_boxes=None,
    reference_labels: Sequence[str] | None = None,
    reference_name: str = "reference",
    color_by: str = "height",
    dpi: int = 120,
    point_size: float = 1.0,
) -> Path:
    """Draw a bird's-eye view of ``points`` with ``boxes`` and write it to ``out_path`` (PNG, SVG, ...).

    Args:
        points: ``[N, 4]`` ``(x, y, z, intensity)`` LiDAR points (``[N, 3]`` allowed with
            ``color_by="height"``); non-finite points are not drawn.
        boxes: ``[M, 7]`` canonical LiDAR boxes ``(x, y, z, dx, dy, dz, yaw)``, yaw CCW from +x.
        labels: ``M`` class names; each class gets its colour from :func:`style.class_color`.
        scores: ``[M]`` confidences (or None): each box is annotated ``"Car 0.87"``.
        out_path: file to write (missing parent folders are made); the suffix picks the format.
        xlim, ylim: LiDAR x (forward, vertical in the picture) and y (left, horizontal) ranges in
            metres; default to the points' extent plus 1 m.
        title: picture title.
        reference_boxes: ``[K, 7]`` boxes of another detector or the ground truth, drawn dashed
            (in ``reference_labels`` class colours when given, else dark grey), unannotated.
        reference_name: legend entry for the reference boxes.
        color_by: ``"height"`` (z) or ``"intensity"``; the colour scale spans the 2..98th percentile.
        dpi, point_size: resolution of the picture and marker area of a point (points^2).

    Returns:
        ``out_path`` as a Path. The picture: +x (forward) up, +y (left) to the left, metres, 1:1.

    Raises:
        BackendUnavailableError: matplotlib is not installed.
        ValueError: inconsistent shapes or an unknown ``color_by``.
    """
    Figure, FigureCanvasAgg, Polygon, Line2D = _import_matplotlib()
    points, boxes, labels, scores = _check_inputs(points, boxes, labels, scores)
    reference = as_boxes(reference_boxes, "reference_boxes")
    if reference_labels is not None and len(reference_labels) != len(reference):
        raise ValueError(f"reference_labels: {len(reference_labels)} labels for {len(reference)} boxes")
    auto_x, auto_y = default_limits(points, boxes)
    xlim, ylim = tuple(xlim or auto_x), tuple(ylim or auto_y)
    shown = points[_in_limits(points, xlim, ylim)]
    values, color_label, (vmin, vmax) = _point_colors(shown, color_by)

    fig = _new_figure(Figure, FigureCanvasAgg, xlim, ylim)
    ax = fig.add_subplot()
    scatter = ax.scatter(shown[:, 1], shown[:, 0], c=values, s=point_size, cmap="viridis",
                         vmin=vmin, vmax=vmax, linewidths=0, zorder=1)  # fmt: skip
    fig.colorbar(scatter, ax=ax, label=color_label, shrink=0.6, pad=0.01)

    colors = [class_color(label) for label in labels]
    _draw_boxes(ax, Polygon, boxes, colors)
    _draw_texts(ax, boxes, labels, scores, colors)
    ref_colors = [class_color(l) for l in reference_labels] if reference_labels else [REFERENCE_COLOR] * len(reference)
    _draw_boxes(ax, Polygon, reference, ref_colors, linestyle="--", linewidth=1.3)
    _draw_legend(ax, Line2D, labels, len(reference) > 0, reference_name)
    _set_axes(ax, xlim, ylim, title)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no out/
    fig.savefig(out_path, dpi=dpi)
    return out_path


def _in_limits(points: np.ndarray, xlim, ylim) -> np.ndarray:
    """``[N]`` bool: finite points with x in ``xlim`` and y in ``ylim`` (bounds included)."""
    inside = np.isfinite(points).all(axis=1)
    inside &= (points[:, 0] >= xlim[0]) & (points[:, 0] <= xlim[1])
    inside &= (points[:, 1] >= ylim[0]) & (points[:, 1] <= ylim[1])
    return inside


def _new_figure(Figure, FigureCanvasAgg, xlim, ylim):
    """An Agg figure 10 in wide whose height follows the map's aspect (3 to 24 in)."""
    aspect = (xlim[1] - xlim[0]) / max(ylim[1] - ylim[0], 1e-6)
    # 10 in wide; about 8.4 in of it is the map (the rest: colourbar, labels), plus 1 in for title/labels
    fig = Figure(figsize=(10.0, float(np.clip(8.4 * aspect + 1.0, 3.0, 24.0))), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _draw_legend(ax, Line2D, labels, with_reference: bool, reference_name: str) -> None:
    """One entry per class in ``labels`` (first-seen order), plus the dashed reference entry."""
    handles = [Line2D([], [], color=class_color(name), linewidth=2, label=name) for name in dict.fromkeys(labels)]
    if with_reference:
        handles.append(Line2D([], [], color=REFERENCE_COLOR, linestyle="--", linewidth=1.3, label=reference_name))
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8)


def _set_axes(ax, xlim, ylim, title) -> None:
    """The picture convention: +y (left) to the left, +x (forward) up, 1:1, metres, a light grid."""
    ax.set_xlim(ylim[1], ylim[0])  # +y (left) to the left of the picture
    ax.set_ylim(xlim[0], xlim[1])  # +x (forward) up
    ax.set_aspect("equal")
    ax.set_xlabel("y (m, +left)")
    ax.set_ylabel("x (m, +forward)")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    if title:
        ax.set_title(title)
