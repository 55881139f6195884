"""benchmarks/bench_cudnn_engines.py on the CPU: without a GPU it prints one line and exits 0. The
engine sweep itself runs on a CUDA GPU (tools/gpu_suite.sh's bench-cudnn-engines step)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present: the script would measure")
def test_without_gpu_prints_one_line_and_exits_0():
    proc = subprocess.run([sys.executable, "benchmarks/bench_cudnn_engines.py"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "bench_cudnn_engines: needs a CUDA GPU (torch.cuda.is_available() is False); nothing measured"]
