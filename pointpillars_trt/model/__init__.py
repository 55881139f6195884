from .pfn import PillarFeatureNet
from .pointpillars import PointPillars, build_model
from .rpn import RPN
from .scatter import PointPillarsScatter, scatter_reference

__all__ = ["PillarFeatureNet", "PointPillars", "PointPillarsScatter", "RPN", "build_model", "scatter_reference"]
