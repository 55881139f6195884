"""Pictures of clouds and detections: BEV PNGs (matplotlib) and an Open3D window; both import lazily."""

from .bev import render_bev
from .open3d_view import show_open3d

__all__ = ["render_bev", "show_open3d"]
