"""The network of the device executor: everything between the grouped points and the head maps,
for ``B`` batch lanes on one GPU. Three forms with one interface (:class:`DeviceNetwork`):

* :class:`FusedTorchNetwork`: the PFN runs inside the last voxelization pass (our kernel, float32
  math) and writes pillar features straight into the BEV canvas; the RPN is the
  :class:`~pointpillars_trt.model.inference_rpn.InferenceRPN` (BatchNorm folded, every backbone
  convolution with its bias and ReLU in one cuDNN call; in FP16 with Triton the upsampling and the
  head in one Triton kernel; one head tensor read in place by the post-processing: float16 NHWC in
  FP16);
* :class:`TorchNetwork`: the torch PFN (cuBLAS) on all ``max_pillars`` rows (rows ``>= P`` have no
  points and are masked), our scatter with the pillar count on the device, the same RPN;
* :class:`EngineNetwork`: the PFN and RPN TensorRT engines around our scatter, one execution
  context of each per lane (bound once; never rebound inside a capture).

A form's :meth:`~DeviceNetwork.voxelize` runs on the lane's stream, :meth:`~DeviceNetwork.heads`
on the executor's stream; both only enqueue work (capturable in a CUDA graph).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from ..config import PointPillarsConfig
from ..errors import ConfigError
from ..options import Precision

if TYPE_CHECKING:  # annotations only
    from ..executors.buffers import FrameBuffers
    from ..voxelize.cuda import CudaVoxelizer


@dataclass(frozen=True)
class Heads:
    """The head maps of a batch: ``cls``, ``box``, ``dir`` tensors ``[B, C, H, W]`` and their
    ``layout`` for the post-processor (``None``: float32 NCHW planes)."""

    cls: Any
    box: Any
    dir: Any
    layout: tuple[int, int, bool] | None = None


def head_layout(head) -> tuple[int, int, bool]:
    """``(channel stride, pixel stride, is float16)`` of a head tensor ``[B, C, H, W]`` (NCHW or
    channels_last) for :meth:`~pointpillars_trt.postprocess.cuda.CudaPostProcessor.enqueue`."""
    import torch

    _, _, h, w = head.shape
    if head.dtype not in (torch.float16, torch.float32) or head.stride(2) != w * head.stride(3):
        raise ConfigError(f"head tensor {tuple(head.shape)} {head.dtype} strides {head.stride()}: need float16/float32, rows of W pixels")
    return int(head.stride(1)), int(head.stride(3)), head.dtype == torch.float16


class DeviceNetwork(abc.ABC):
    """One form of the device network. ``precision``, ``max_pillars`` (an engine profile may be
    smaller than the config's) and ``describe()`` are what the executor reports."""

    precision: Precision
    max_pillars: int

    def __init__(self, cfg: PointPillarsConfig, device: Any) -> None:
        self.cfg, self.device = cfg, device
        self.nx, self.ny, _ = cfg.grid_size
        self.channels = cfg.network.pfn_channels
        self.max_pillars = cfg.voxel.max_pillars

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def allocate(self, bufs: "FrameBuffers", features_shape: tuple[int, int, int]) -> None:
        """Allocate this form's buffers for ``bufs.batch`` lanes."""

    @abc.abstractmethod
    def voxelize(self, b: int, vox: "CudaVoxelizer", bufs: "FrameBuffers", stream: int, bucket: int) -> None:
        """Enqueue lane ``b``'s voxelization (and, fused, its PFN) on ``stream``."""

    @abc.abstractmethod
    def heads(self, batch: int, bufs: "FrameBuffers", stream: int) -> Heads:
        """Enqueue lanes ``0..batch-1`` through the network on ``stream``; returns their heads."""

    def free(self) -> None:
        """Release what :meth:`allocate` took."""


class _TorchRPNNetwork(DeviceNetwork):
    """The torch forms: the trained model on the GPU, the RPN in its inference form.

    ``rpn_form`` turns the trained :class:`~pointpillars_trt.model.rpn.RPN` into the module that
    runs (default :class:`~pointpillars_trt.model.inference_rpn.InferenceRPN`); a form whose module
    has no ``head_output`` returns its three heads as a tuple (benchmarks compare such forms).
    """

    def __init__(self, cfg: PointPillarsConfig, state_dict: Mapping[str, Any], device: Any, *,
                 precision: Precision = Precision.FP16, channels_last: bool | None = None,
                 rpn_form: Callable[[Any], Any] | None = None) -> None:
        import torch

        from ..model import build_model
        from ..model.inference_rpn import InferenceRPN

        super().__init__(cfg, device)
        if state_dict is None:
            raise ConfigError("device network: a state_dict is required without an engine folder")
        self.precision = Precision.parse(precision, "device network: precision")
        # channels_last pays in float16 (cuDNN's NHWC tensor-core kernels); in float32 cuDNN's kernels are
        # NCHW and it would transpose around every convolution (measured: +0.5 ms per frame on an H100)
        self.channels_last = self.precision == Precision.FP16 if channels_last is None else bool(channels_last)
        self.dtype = torch.float16 if self.precision == Precision.FP16 else torch.float32
        model = build_model(cfg)
        model.load_state_dict(dict(state_dict), strict=True)
        self.model = model.to(device).eval()
        self.rpn = (rpn_form or InferenceRPN)(self.model.rpn).to(self.dtype)
        if self.channels_last:
            self.rpn = self.rpn.to(memory_format=torch.channels_last)
        self.canvas = None

    def rpn_label(self) -> str:
        """``cuDNN RPN``, naming the Triton upsampling + head kernel where this RPN runs it on the
        allocated canvas (:meth:`~pointpillars_trt.model.inference_rpn.InferenceRPN.fuses_neck_on`;
        the backbone runs once to ask, only where the kernel can run at all)."""
        import torch

        rpn = self.rpn
        if self.canvas is None or not hasattr(rpn, "may_fuse_neck") or not rpn.may_fuse_neck(self.canvas):
            return "cuDNN RPN"
        with torch.inference_mode():
            fused = rpn.fuses_neck_on(rpn.blocks(self.canvas[:1]))
        return "cuDNN RPN, upsampling + head in Triton" if fused else "cuDNN RPN"

    def allocate(self, bufs: "FrameBuffers", features_shape: tuple[int, int, int]) -> None:
        import torch

        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.canvas = torch.zeros((bufs.batch, self.channels, self.ny, self.nx), dtype=self.dtype,
                                  device=self.device).contiguous(memory_format=fmt)

    def _rpn_heads(self, batch: int) -> Heads:
        import torch

        if hasattr(self.rpn, "head_output"):  # cls / box / dir are channel slices of one head tensor, read in place
            head = self.rpn.head_output(self.canvas[:batch])
            return Heads(*torch.split(head, self.rpn.splits, dim=1), layout=head_layout(head))
        return Heads(*[h.float().contiguous() for h in self.rpn(self.canvas[:batch])])

    def free(self) -> None:
        self.canvas = None


class _UnfusedPFN:
    """What the forms with a separate PFN share: CUDA voxelization into float32 ``features`` lane
    buffers, and one CUDA scatter per lane (the pillar count stays on the device)."""

    features: Any
    scatters: list

    def _lane_scatters(self, bufs: "FrameBuffers", np_dtype: Any, channels: int, nx: int, ny: int) -> None:
        from ..cuda.device import get_device
        from .cuda_scatter import CudaScatter

        cuda = get_device(self.device.index)
        self.scatters = [CudaScatter(nx, ny, channels, np_dtype, max_pillars=bufs.max_pillars, device=cuda) for _ in range(bufs.batch)]

    def voxelize(self, b: int, vox: "CudaVoxelizer", bufs: "FrameBuffers", stream: int, bucket: int) -> None:
        from ..executors.buffers import tensor_ptr

        vox.enqueue(tensor_ptr(bufs.points_dev, b), stream, features_ptr=tensor_ptr(self.features, b),
                    num_points_bound=bucket, **bufs.voxel_outputs(b))

    def _scatter(self, b: int, pillar_features_ptr: int, bufs: "FrameBuffers", stream: int) -> int:
        """Enqueue lane ``b``'s scatter; returns its canvas pointer."""
        from ..executors.buffers import tensor_ptr

        return self.scatters[b].scatter_device_count(pillar_features_ptr, tensor_ptr(bufs.coords, b), bufs.counters_ptr(b),
                                                     bufs.max_pillars, stream)

    def _free_scatters(self) -> None:
        for s in getattr(self, "scatters", ()):
            s.free()
        self.scatters = []


class FusedTorchNetwork(_TorchRPNNetwork):
    """The PFN fused into voxelization (writes the canvas), then the torch RPN."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pfn_weight, self._pfn_scale, self._pfn_shift = self.model.pfn.eval_affine()

    def describe(self) -> str:
        layout = "NHWC" if self.channels_last else "NCHW"
        return f"CUDA voxelization with the PFN fused -> {self.rpn_label()} ({self.precision}, {layout})"

    def voxelize(self, b: int, vox: "CudaVoxelizer", bufs: "FrameBuffers", stream: int, bucket: int) -> None:
        from ..executors.buffers import tensor_ptr

        vox.enqueue_fused_pfn(
            tensor_ptr(bufs.points_dev, b), stream, weight_ptr=self._pfn_weight.data_ptr(), scale_ptr=self._pfn_scale.data_ptr(),
            shift_ptr=self._pfn_shift.data_ptr(), channels=self.channels, canvas_ptr=tensor_ptr(self.canvas, b),
            nhwc=self.channels_last, half=self.precision == Precision.FP16, num_points_bound=bucket, **bufs.voxel_outputs(b))

    def heads(self, batch: int, bufs: "FrameBuffers", stream: int) -> Heads:
        return self._rpn_heads(batch)


class TorchNetwork(_UnfusedPFN, _TorchRPNNetwork):
    """The torch PFN on all ``max_pillars`` rows, our scatter (pillar count on the device), the torch RPN."""

    def describe(self) -> str:
        return f"CUDA voxelization -> torch PFN -> CUDA scatter -> {self.rpn_label()} ({self.precision})"

    def allocate(self, bufs: "FrameBuffers", features_shape: tuple[int, int, int]) -> None:
        import torch

        from ..executors.buffers import lane_tensor

        super().allocate(bufs, features_shape)
        self.pfn = self.model.pfn.to(self.dtype)
        self.features = lane_tensor(bufs.batch, features_shape, torch.float32, self.device)
        self._lane_scatters(bufs, np.float16 if self.dtype == torch.float16 else np.float32, self.channels, self.nx, self.ny)

    def heads(self, batch: int, bufs: "FrameBuffers", stream: int) -> Heads:
        import torch

        code = "<f2" if self.dtype == torch.float16 else "<f4"
        views = []
        for b in range(batch):
            pf = self.pfn(self.features[b].to(self.dtype), bufs.num_points[b]).contiguous()
            canvas_ptr = self._scatter(b, pf.data_ptr(), bufs, stream)
            views.append(torch.as_tensor(_DeviceArray(canvas_ptr, (self.channels, self.ny, self.nx), code), device=self.device))
        self.canvas[:batch].copy_(torch.stack(views))
        return self._rpn_heads(batch)

    def free(self) -> None:
        self._free_scatters()
        super().free()


class EngineNetwork(_UnfusedPFN, DeviceNetwork):
    """The PFN and RPN TensorRT engines of an :class:`~pointpillars_trt.tensorrt.engines.EngineSet`
    around our scatter. The PFN runs on the profile's ``max_pillars`` rows every frame (rows beyond
    the frame's pillar count have no points and are not scattered: the count stays on the device),
    so shapes never change and the launches can be captured. Each lane has its own PFN and RPN
    execution context, bound once at :meth:`allocate`. Not run here (no TensorRT on the GPU machine).
    """

    def __init__(self, cfg: PointPillarsConfig, engines: Any, device: Any) -> None:
        super().__init__(cfg, device)
        self.engines = engines.activate()
        self.precision = Precision.parse(engines.precision, "engines: precision")
        self.max_pillars = min(cfg.voxel.max_pillars, engines.max_pillars)
        self.lanes: list[tuple[Any, Any]] = []

    def describe(self) -> str:
        return f"CUDA voxelization -> TensorRT PFN engine -> CUDA scatter -> TensorRT RPN engine ({self.precision})"

    def allocate(self, bufs: "FrameBuffers", features_shape: tuple[int, int, int]) -> None:
        import torch

        from ..executors.buffers import lane_tensor, tensor_ptr

        geo = self.engines.geometry
        to_torch = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32}
        feat_dtype, canvas_dtype = to_torch[geo.feature_dtype], to_torch[geo.canvas_dtype]
        B, mp = bufs.batch, bufs.max_pillars
        self.features = lane_tensor(B, features_shape, torch.float32, self.device)
        self.features_in = self.features if feat_dtype == torch.float32 else lane_tensor(B, features_shape, feat_dtype, self.device)
        self.pillar_features = lane_tensor(B, (mp, geo.channels), canvas_dtype, self.device)
        rpn_tensors = self.engines["rpn"].tensors
        self.head_maps = [lane_tensor(B, rpn_tensors[n].shape[1:], torch.float32, self.device) for n in ("cls", "box", "dir")]
        self._lane_scatters(bufs, geo.canvas_dtype, geo.channels, geo.nx, geo.ny)
        for b in range(B):
            pfn, rpn = self.engines.context("pfn"), self.engines.context("rpn")
            pfn.set_shape("features", (mp, geo.points_per_pillar, geo.features))
            pfn.set_shape("num_points", (mp,))
            pfn.bind("features", tensor_ptr(self.features_in, b))
            pfn.bind("num_points", tensor_ptr(bufs.num_points, b))
            pfn.bind("pillar_features", tensor_ptr(self.pillar_features, b))
            rpn.bind("canvas", self.scatters[b].canvas_ptr)
            for name, head in zip(("cls", "box", "dir"), self.head_maps):
                rpn.bind(name, tensor_ptr(head, b))
            self.lanes.append((pfn, rpn))

    def heads(self, batch: int, bufs: "FrameBuffers", stream: int) -> Heads:
        from ..executors.buffers import tensor_ptr

        for b in range(batch):  # PFN engine -> our scatter -> RPN engine, frame by frame
            pfn, rpn = self.lanes[b]
            if self.features_in is not self.features:
                self.features_in[b].copy_(self.features[b])
            pfn.execute(stream)
            canvas_ptr = self._scatter(b, tensor_ptr(self.pillar_features, b), bufs, stream)
            if canvas_ptr != self.scatters[b].canvas_ptr:
                raise ConfigError("EngineNetwork: the scatter's canvas moved after the RPN context was bound")
            rpn.execute(stream)
        return Heads(*self.head_maps)

    def free(self) -> None:
        self._free_scatters()
        self.lanes = []
        self.engines.free()


class _DeviceArray:
    """A raw device pointer seen by torch through ``__cuda_array_interface__`` (no copy)."""

    def __init__(self, pointer: int, shape: tuple[int, ...], typestr: str) -> None:
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (int(pointer), False),
                                         "version": 3, "strides": None}


__all__ = ["DeviceNetwork", "EngineNetwork", "FusedTorchNetwork", "Heads", "TorchNetwork", "head_layout"]
