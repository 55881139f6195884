"""KITTI object evaluation: the official protocol (``kitti_eval``) and its box overlaps (``iou``)."""

from .kitti_eval import KittiEvaluator, PRCurve, evaluate, format_table

__all__ = ["KittiEvaluator", "PRCurve", "evaluate", "format_table"]
