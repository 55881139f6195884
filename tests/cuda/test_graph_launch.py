"""The graph launcher's driver calls through ctypes (``cuda/graph_launch.py``).

CPU side: the prototypes declared for ctypes are the ones ``cuda.h`` declares (same arity, every
handle a pointer, the elapsed time a ``float *``), checked against the toolkit's header where one
is installed. GPU side: a captured torch graph replayed through :class:`GraphLaunch` runs, is
timed, and frees idempotently; the device pipeline's own use is in tests/cuda/test_gpu_pipeline.py.
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

import pytest

from pointpillars_trt.cuda.graph_launch import OPTIONAL_V2, PROTOTYPES
from tests.cuda_helpers import cuda_device, torch_cuda  # noqa: F401  (fixtures)

HANDLES = {"CUevent", "CUstream", "CUgraphExec"}  # typedef struct CU*_st *CU*: pointers


def cuda_header() -> Path | None:
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "include" / "cuda.h").is_file():
            return Path(root) / "include" / "cuda.h"
    return None


def declared_parameters(header: str, name: str) -> list[str]:
    """The parameter types of ``CUresult CUDAAPI name(...)`` in ``cuda.h`` (first declaration)."""
    m = re.search(rf"CUresult CUDAAPI {name}\(([^)]*)\);", header)
    assert m, f"{name} is not declared in cuda.h"
    return [" ".join(p.split()[:-1]) + ("*" if "*" in p else "") for p in m.group(1).split(",")]


@pytest.mark.skipif(cuda_header() is None, reason="no CUDA toolkit header (cuda.h) on this machine")
@pytest.mark.parametrize("name", sorted(PROTOTYPES))
def test_prototypes_match_cuda_h(name):
    header = cuda_header().read_text(errors="replace")
    params = declared_parameters(header, name)
    argtypes = PROTOTYPES[name]
    assert len(params) == len(argtypes)
    for decl, arg in zip(params, argtypes):
        if decl.replace("*", "").strip() in HANDLES:
            assert arg is ctypes.c_void_p, (name, decl)
        elif decl.startswith("float") and decl.endswith("*"):
            assert arg is ctypes.POINTER(ctypes.c_float), (name, decl)
        else:
            pytest.fail(f"{name}: parameter {decl!r} has no ctypes rule here")
    if name in OPTIONAL_V2:  # the _v2 entry point keeps the same parameters
        v2 = re.search(rf"CUresult CUDAAPI {name}_v2\(([^)]*)\);", header)
        assert v2 is None or len(v2.group(1).split(",")) == len(params)


@pytest.mark.gpu
def test_graph_launch_replays_a_captured_graph(torch_cuda):
    import torch

    from pointpillars_trt.cuda.device import get_device
    from pointpillars_trt.cuda.graph_launch import GraphLaunch, raw_graph_exec

    dev = torch.device("cuda", 0)
    stream = torch.cuda.Stream(dev)
    x = torch.zeros(1 << 20, device=dev)
    with torch.cuda.stream(stream):
        x.add_(1.0)  # warm-up outside the capture
    stream.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=stream):
        x.add_(1.0)
    handle = raw_graph_exec(g)
    if handle is None:
        pytest.skip("this torch does not expose the executable graph")
    launcher = GraphLaunch(g, handle, stream.cuda_stream, get_device(0))
    before = float(x[0].item())
    for _ in range(3):
        launcher.launch()
        launcher.wait()
        assert launcher.elapsed_ms() > 0.0
    assert float(x[0].item()) == before + 3.0
    launcher.free()
    launcher.free()
