"""ONNX export of PointPillars as three graphs (PFN, MFN, RPN) or one fused chain.

:func:`export_onnx` writes the graphs; :func:`read_graph_metadata` reads back (and verifies) what
each carries, :class:`~pointpillars_trt.artifacts.ArtifactMetadata` (config, weights and graph
hashes, part, precision); :func:`check_graph_config` refuses graphs exported from another config. The graph layout (the contract the ONNX Runtime and TensorRT backends rely on) is
described in :mod:`.graphs`. INT8 graphs (explicit Q/DQ, ``export_onnx(..., int8=Int8Export(frames))``)
are made by :mod:`.quantize` from calibration frames of :mod:`.calibration`.
"""

from .calibration import CalibrationFrames, calibration_frames, synthetic_frames
from .export import PART_FILES, Int8Export, as_model, check_graph, export_onnx, graph_op_types, parse_supported_operators
from .graphs import DEFAULT_FP16_POLICY, OPS_USED, OPSET, Fp16Policy, build_graphs
from .metadata import (
    ArtifactMetadata, check_graph_config, check_graph_set, check_graph_weights, file_sha256, read_graph_metadata,
    state_dict_sha256,
)
from .quantize import ActivationType, CalibrationMethod, QuantizeOptions, quantizable_nodes

__all__ = [
    "ActivationType", "CalibrationFrames", "CalibrationMethod", "Int8Export", "QuantizeOptions", "calibration_frames", "quantizable_nodes",
    "synthetic_frames",
    "ArtifactMetadata", "DEFAULT_FP16_POLICY", "Fp16Policy", "OPSET", "OPS_USED", "PART_FILES", "as_model", "build_graphs",
    "check_graph", "check_graph_config", "check_graph_set", "check_graph_weights", "export_onnx", "file_sha256",
    "graph_op_types", "parse_supported_operators", "read_graph_metadata", "state_dict_sha256",
]
