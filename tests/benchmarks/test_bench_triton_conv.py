"""benchmarks/bench_triton_conv.py on the CPU: without a GPU it prints one line and exits 0, and the
Triton forms it tries for a layer are the ones that fit it. The measurements run on a CUDA GPU
(tools/gpu_suite.sh's bench-triton-head step; the convolution part by hand, see its docstring)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks import bench_triton_conv as bench
from benchmarks import triton_conv

REPO = Path(__file__).resolve().parents[2]


def test_without_a_gpu_it_prints_one_line_and_exits_0():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_triton_conv.py")], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1 and "nothing measured" in proc.stdout


def test_candidates_fit_the_layer():
    strided = bench.Layer("block1.conv0", 64, 248, 216, 128, 3, 2, 1)
    unit = bench.Layer("block0.conv1", 64, 248, 216, 64, 3, 1, 1)
    got = {name: [label for label, _ in bench.candidates(triton_conv, layer)] for name, layer in (("strided", strided), ("unit", unit))}
    assert got["strided"] and all(label.startswith("ptr ") for label in got["strided"])  # TMA boxes: stride 1 only
    assert any(label.startswith("tma ") for label in got["unit"])
    for label in got["unit"]:  # no tile wider than the layer's 64 output channels
        dims = [int(v) for v in label.split()[1].split("/")[0].removeprefix("tma").split("x")]
        assert (dims[2] if label.startswith("tma ") else dims[1]) <= 64, label
    assert bench.out_hw(strided) == 124 * 108
