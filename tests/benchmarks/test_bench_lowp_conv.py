"""benchmarks/bench_lowp_conv.py on the CPU: the RPN conv shapes it derives from a config are the ones
the real RPN runs (checked with the model on the meta device), and without a GPU it prints one line
and exits 0. The probes themselves run on a CUDA GPU (tools/gpu_suite.sh's bench-lowp-conv step)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import bench_lowp_conv as bench
from pointpillars_trt.config import load_config
from pointpillars_trt.model.rpn import RPN

REPO = Path(__file__).resolve().parents[2]


def rpn_conv_inputs(cfg) -> list[tuple[int, int, int, int, int]]:
    """``(cin, cout, height, width, stride)`` of each block's first conv after the strided one, seen by
    forward hooks of the real RPN on a meta-device canvas."""
    nx, ny, _ = cfg.grid_size
    rpn = RPN(cfg).to("meta")
    seen = []
    for block in rpn.blocks:
        conv = block[3]
        conv.register_forward_hook(lambda m, inp, out: seen.append((m.in_channels, m.out_channels, *inp[0].shape[2:], m.stride[0])))
    rpn.features(torch.empty(1, cfg.network.pfn_channels, ny, nx, device="meta"))
    return seen


@pytest.mark.parametrize("name, expected", [
    (None, [(64, 64, 248, 216, 1), (128, 128, 124, 108, 1), (256, 256, 62, 54, 1)]),
    ("example_360_2class", [(32, 32, 256, 256, 1), (64, 64, 128, 128, 1), (128, 128, 64, 64, 1)]),
])
def test_shapes_are_the_rpn_convs(name, expected):
    cfg = load_config(name)
    got = [(s.cin, s.cout, s.height, s.width, s.stride) for s in bench.rpn_conv_shapes(cfg)]
    assert got == expected == rpn_conv_inputs(cfg)
    assert [s.name for s in bench.rpn_conv_shapes(cfg)] == ["block0.conv1", "block1.conv1", "block2.conv1"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present: the script would measure")
def test_without_gpu_prints_one_line_and_exits_0():
    proc = subprocess.run([sys.executable, "benchmarks/bench_lowp_conv.py"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [bench.NO_GPU_LINE]
