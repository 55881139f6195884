"""Typed exceptions raised by the library.

Tools and the ROS node turn these into log lines and exit codes; the library never
calls ``sys.exit`` or logs an error it also raises.
"""

from __future__ import annotations


class PointPillarsError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(PointPillarsError, ValueError):
    """A configuration file or value is invalid, or two configs disagree."""


class PointCloudError(PointPillarsError, ValueError):
    """A point cloud (file or array) is malformed: wrong size, NaN/inf values, empty, ..."""


class CheckpointError(PointPillarsError):
    """A checkpoint cannot be read or does not fit the architecture."""


class PillarOverflowError(PointPillarsError):
    """A frame has more pillars than the configured or engine maximum and the policy is 'error'."""


class BackendUnavailableError(PointPillarsError, RuntimeError):
    """An optional runtime (ONNX Runtime, TensorRT, CUDA) is not installed or has no device."""


class EngineError(PointPillarsError):
    """A serialized engine or ONNX graph does not match this config, GPU or runtime version."""


class CalibrationError(PointPillarsError, ValueError):
    """A KITTI calibration or label file is malformed."""


class LabelError(CalibrationError):
    """A KITTI label or result file is malformed (the message names the file and line)."""


class DatasetError(PointPillarsError, ValueError):
    """A dataset on disk is incomplete or inconsistent: missing split file, frames without labels or
    calibration, predictions for frames that are not in the split."""


class CudaError(PointPillarsError, RuntimeError):
    """A CUDA driver call failed (the message names the call and the CUresult)."""


class KernelCompileError(CudaError):
    """NVRTC could not compile one of the package's CUDA kernels (the message carries the NVRTC log)."""


class ExportError(PointPillarsError):
    """A model cannot be exported to ONNX (unsupported layer) or an exported graph fails its checks."""


class OutputError(PointPillarsError):
    """A result file or directory cannot be written (the message names the path and the reason)."""


class InputWarning(UserWarning):
    """An input was read, but was unusual in a way that was read unambiguously (a UTF-8 byte order
    mark, a transposed ``.npy`` array); the message names the file and what was done."""


class IntensityRangeWarning(InputWarning):
    """A frame's intensities lie outside the range the model was trained on (``config.intensity_range``);
    the message names the ``intensity_scale`` that would bring them into it."""
