"""Interactive 3-D view of a cloud and its boxes in an Open3D window (optional dependency)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import BackendUnavailableError
from .box_geometry import BOX_EDGES, as_boxes, box_corners_3d, heading_segments
from .style import class_color, hex_to_rgb

INSTALL_HINT = "install it with `pip install open3d` (or `pip install pointpillars_trt[open3d]`)"


def _import_open3d():
    try:
        import open3d
    except ImportError as exc:
        raise BackendUnavailableError(f"show_open3d needs open3d, which is not installed; {INSTALL_HINT}") from exc
    return open3d


def height_colors(z: np.ndarray) -> np.ndarray:
    """``[N]`` heights -> ``[N, 3]`` RGB in ``[0, 1]``: blue (low) to yellow (high), 2..98th percentile."""
    if len(z) == 0:
        return np.zeros((0, 3))
    low, high = np.percentile(z, [2, 98])
    t = np.clip((z - low) / max(high - low, 1e-6), 0.0, 1.0)[:, None]
    return (1 - t) * np.array([0.15, 0.25, 0.75]) + t * np.array([0.95, 0.85, 0.15])


def box_line_vertices(boxes) -> tuple[np.ndarray, np.ndarray]:
    """``[M, 7]`` boxes -> ``(vertices [M*10, 3], lines [M*13, 2])``: 12 edges plus a heading line each."""
    boxes = as_boxes(boxes)
    corners = box_corners_3d(boxes)  # [M, 8, 3]
    heading = heading_segments(boxes)  # [M, 2, 2] at the box centre height
    heading = np.concatenate([heading, boxes[:, None, 2:3].repeat(2, axis=1)], axis=-1)
    vertices = np.concatenate([corners, heading], axis=1).reshape(-1, 3)
    per_box = np.array(list(BOX_EDGES) + [(8, 9)])
    lines = (per_box[None] + 10 * np.arange(len(boxes))[:, None, None]).reshape(-1, 2)
    return vertices, lines


def build_geometries(points, boxes, labels: Sequence[str]) -> list:
    """The Open3D geometries of a frame: the cloud (coloured by height) and one LineSet of the
    boxes (coloured by class). ``points [N, >=3]``, ``boxes [M, 7]``, ``labels`` M class names."""
    o3d = _import_open3d()
    points = np.asarray(points, dtype=np.float64)
    boxes = as_boxes(boxes)
    if len(labels) != len(boxes):
        raise ValueError(f"labels: {len(labels)} labels for {len(boxes)} boxes")
    points = points[np.isfinite(points[:, :3]).all(axis=1)]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[:, :3]))
    cloud.colors = o3d.utility.Vector3dVector(height_colors(points[:, 2]))
    vertices, lines = box_line_vertices(boxes)
    line_set = o3d.geometry.LineSet(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector2iVector(lines.astype(np.int32)))
    colors = np.repeat(np.array([hex_to_rgb(class_color(label)) for label in labels]).reshape(-1, 3), 13, axis=0)
    line_set.colors = o3d.utility.Vector3dVector(colors)
    return [cloud, line_set]


def show_open3d(points, boxes, labels: Sequence[str], *, window_name: str = "pointpillars_trt",
                screenshot: str | Path | None = None, size: tuple[int, int] = (1280, 720)) -> None:
    """Open an Open3D window with the cloud (coloured by height) and the boxes (by class).

    Args:
        points: ``[N, >=3]`` LiDAR points. boxes: ``[M, 7]`` canonical LiDAR boxes.
        labels: ``M`` class names; they pick the box colours (Open3D's classic viewer draws no text).
        screenshot: None: block until the user closes the window. A path: draw one frame, save
            the window's pixels there as PNG and close the window.
        size: window ``(width, height)`` in pixels.

    Raises:
        BackendUnavailableError: open3d is not installed (the message holds the pip command), or
            there is no display to open a window on.
    """
    o3d = _import_open3d()
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise BackendUnavailableError("show_open3d needs a display (DISPLAY/WAYLAND_DISPLAY is not set); use render_bev")
    geometries = build_geometries(points, boxes, labels)
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(window_name=window_name, width=size[0], height=size[1]):
        raise BackendUnavailableError(f"show_open3d: Open3D could not open a window on display {os.environ.get('DISPLAY')!r}")
    try:
        for g in geometries:
            vis.add_geometry(g)
        opt = vis.get_render_option()
        opt.point_size, opt.line_width = 2.0, 3.0
        opt.background_color = np.array([1.0, 1.0, 1.0])
        if screenshot is None:
            vis.run()
        else:
            vis.poll_events()
            vis.update_renderer()
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            vis.capture_screen_image(str(screenshot), do_render=True)
    finally:
        vis.destroy_window()
