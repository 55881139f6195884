"""The torch_cuda backend (PFN/RPN in torch on the GPU, our scatter kernel) inside the CPU Detector."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pointpillars_trt.network import create_backend
from pointpillars_trt.detector import Detector
from pointpillars_trt.compare.detections import compare_detections, match_detections
from tests.helpers import lively_state_dict

from tests.cuda_helpers import cuda_device, torch_cuda  # noqa: F401  (fixtures: skip without a CUDA GPU)

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def weights(kitti_config):
    return lively_state_dict(kitti_config)


def test_fp32_equals_cpu_and_fp16_keeps_the_boxes(torch_cuda, kitti_config, weights, kitti_frames):
    cpu = Detector.from_backend(kitti_config, create_backend("torch", cfg=kitti_config, state_dict=weights))
    fp32 = Detector.from_backend(kitti_config, create_backend("torch_cuda", cfg=kitti_config, state_dict=weights, precision="fp32"))
    fp16 = Detector.from_backend(kitti_config, create_backend("torch_cuda", cfg=kitti_config, state_dict=weights, precision="fp16"))
    found = total = 0
    for path in kitti_frames:
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
        ref, a, h = cpu.detect(pts), fp32.detect(pts), fp16.detect(pts)
        # boxes paired one to one (near-tied scores may swap places), within float32 noise
        diff = compare_detections(ref, a)
        assert len(ref) > 0 and diff.agrees(box_tol=1e-3, score_tol=1e-4), (path, diff)
        assert {"h2d", "pfn", "scatter", "rpn", "d2h"} <= set(a.timings_ms)
        keep = ref.scores > 0.3
        strong = SimpleNamespace(boxes=ref.boxes[keep], scores=ref.scores[keep], labels=ref.labels[keep])
        found += match_detections(strong, h, iou_threshold=0.9).n_matched
        total += int(keep.sum())
    assert found >= 0.99 * total
