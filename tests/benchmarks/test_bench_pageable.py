"""benchmarks/bench_pageable.py on the CPU: without a GPU it prints one line and exits 0. The probe
itself runs on a CUDA GPU (tools/gpu_suite.sh's bench-pageable step)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import bench_pageable as bench

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present: the script would measure")
def test_without_gpu_prints_one_line_and_exits_0():
    proc = subprocess.run([sys.executable, "benchmarks/bench_pageable.py"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [bench.NO_GPU_LINE]
