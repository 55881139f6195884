"""NVRTC compilation, the kernel cache and argument packing. NVRTC needs no GPU: the compile
tests run wherever cuda-python and libnvrtc are installed, and skip cleanly elsewhere."""

from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest

from tests.cuda_helpers import nvrtc_skip_reason
from pointpillars_trt.cuda.nvrtc import (
    KernelCache, Target, cache_key, choose_target, compile_kernel_file, compile_source, grid_for, i32, launch_config,
    pack_kernel_args, pdl_ready, ptr, read_kernel_source, set_programmatic_launch,
)
from pointpillars_trt.errors import KernelCompileError

needs_nvrtc = pytest.mark.skipif(nvrtc_skip_reason() is not None, reason=str(nvrtc_skip_reason()))
SCATTER_ENTRIES = {"pp_scatter_f32", "pp_scatter_f16", "pp_clear_cells_f32", "pp_clear_cells_f16"}


def test_choose_target():
    assert choose_target((9, 0), [75, 80, 90, 100]) == Target("--gpu-architecture=sm_90", "cubin")
    assert choose_target((8, 6), [75, 80, 86]).option == "--gpu-architecture=sm_86"
    # a GPU newer than NVRTC knows: PTX for the newest virtual architecture below it
    assert choose_target((12, 9), [80, 90, 100, 120]) == Target("--gpu-architecture=compute_120", "ptx")
    with pytest.raises(KernelCompileError, match="none of which runs on compute capability 6.1"):
        choose_target((6, 1), [75, 80])


def test_cache_key_changes_with_every_input():
    t = Target("--gpu-architecture=sm_90", "cubin")
    base = cache_key("src", {"a.cuh": "x"}, t, ["--std=c++17"], (13, 0))
    assert base == cache_key("src", {"a.cuh": "x"}, t, ["--std=c++17"], (13, 0))
    others = [
        cache_key("src2", {"a.cuh": "x"}, t, ["--std=c++17"], (13, 0)),
        cache_key("src", {"a.cuh": "y"}, t, ["--std=c++17"], (13, 0)),
        cache_key("src", {"a.cuh": "x"}, Target("--gpu-architecture=sm_80", "cubin"), ["--std=c++17"], (13, 0)),
        cache_key("src", {"a.cuh": "x"}, t, ["--std=c++14"], (13, 0)),
        cache_key("src", {"a.cuh": "x"}, t, ["--std=c++17"], (13, 1)),
    ]
    assert len({base, *others}) == 6


def test_kernel_cache(tmp_path):
    cache = KernelCache(tmp_path / "k")
    assert cache.get("abc", "cubin") is None
    assert cache.put("abc", "cubin", b"\x7fELF...")
    assert cache.get("abc", "cubin") == b"\x7fELF..."
    assert not list((tmp_path / "k").glob("*.tmp"))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert KernelCache(blocker / "sub").put("abc", "ptx", b"x") is False  # unwritable: skipped, no error


def test_pack_kernel_args():
    addresses, holders = pack_kernel_args([ptr(0xDEADBEEF), i32(-7), np.float32(1.5)])
    assert addresses.dtype == np.uint64 and len(addresses) == 3
    assert ctypes.c_uint64.from_address(int(addresses[0])).value == 0xDEADBEEF
    assert ctypes.c_int32.from_address(int(addresses[1])).value == -7
    assert ctypes.c_float.from_address(int(addresses[2])).value == 1.5
    with pytest.raises(TypeError, match="argument 1 is int"):
        pack_kernel_args([ptr(1), 5])
    with pytest.raises(ValueError):
        i32(2**31)


def test_pdl_ready_needs_the_entry_in_every_kernel():
    ok = 'extern "C" __global__ void a(int* x) {\n    PP_PDL_ENTRY();\n    *x = 1;\n}\n'
    late = 'extern "C" __global__ void b(int* x) {\n    *x = 1;\n    PP_PDL_ENTRY();\n}\n'
    assert pdl_ready(ok) and pdl_ready(ok + ok)
    assert not pdl_ready(ok + late) and not pdl_ready(late) and not pdl_ready("// no kernels")


@pytest.mark.parametrize("name", ["voxelize.cu", "postprocess.cu", "scatter.cu", "depth_to_space.cu"])
def test_kernel_files_are_pdl_ready(name):
    """Every kernel of these files waits for its predecessor before touching memory, so they may be
    launched programmatically (pointpillars_trt/cuda/nvrtc.py)."""
    assert pdl_ready(read_kernel_source(name)[0])


def test_launch_config_and_switch():
    pytest.importorskip("cuda.bindings.driver")
    cfg = launch_config((3, 2, 1), (256, 1, 1), 0, 1024, True)
    assert (cfg.gridDimX, cfg.gridDimY, cfg.blockDimX, cfg.sharedMemBytes, cfg.numAttrs) == (3, 2, 256, 1024, 1)
    assert cfg.attrs[0].value.programmaticStreamSerializationAllowed == 1
    assert launch_config((1, 1, 1), (32, 1, 1), 0, 0, False).numAttrs == 0
    assert set_programmatic_launch(True) is False  # off by default
    assert set_programmatic_launch(False) is True


def test_grid_for():
    assert grid_for(0, 256, 100) == 1
    assert grid_for(1, 256, 100) == 1
    assert grid_for(257, 256, 100) == 2
    assert grid_for(10**9, 256, 100) == 100


def test_kernel_sources_ship_with_the_package():
    src, headers = read_kernel_source("scatter.cu")
    assert all(f'void __launch_bounds__(256)\n{e}(' in src or f"{e}(" in src for e in SCATTER_ENTRIES)
    assert "#include" not in src  # compiles with a bare NVRTC, no toolkit headers
    with pytest.raises(KernelCompileError, match="kernel source not found"):
        read_kernel_source("nope.cu")


@needs_nvrtc
@pytest.mark.parametrize("cc", [(8, 0), (9, 0)])
def test_scatter_compiles_to_cubin(cc):
    src, _ = read_kernel_source("scatter.cu")
    image = compile_source(src, "scatter.cu", choose_target(cc, [cc[0] * 10 + cc[1]]))
    assert image.kind == "cubin" and image.data[:4] == b"\x7fELF"
    for entry in SCATTER_ENTRIES:
        assert entry.encode() in image.data


@needs_nvrtc
def test_scatter_compiles_to_ptx_with_all_entries():
    src, _ = read_kernel_source("scatter.cu")
    image = compile_source(src, "scatter.cu", Target("--gpu-architecture=compute_80", "ptx"))
    entries = set(re.findall(r"\.entry (\w+)\(", image.data.decode(errors="replace")))
    assert entries == SCATTER_ENTRIES


@needs_nvrtc
def test_postprocess_compiles_per_frame_and_with_lanes():
    # -DPP_POST_LANES adds the lane parameters (5 strides + the group count) to every kernel; without it the
    # kernels are the one-frame ones (the same entries, 6 parameters fewer each)
    src, _ = read_kernel_source("postprocess.cu")
    target = Target("--gpu-architecture=compute_90", "ptx")
    plain = compile_source(src, "postprocess.cu", target, ("--std=c++17", "--fmad=false")).data.decode(errors="replace")
    lanes = compile_source(src, "postprocess.cu", target, ("--std=c++17", "--fmad=false", "-DPP_POST_LANES")).data.decode(errors="replace")

    def params(ptx: str) -> dict[str, int]:
        return {m.group(1): m.group(2).count(".param") for m in re.finditer(r"\.entry (\w+)\(([^)]*)\)", ptx)}

    a, b = params(plain), params(lanes)
    assert set(a) == set(b) and len(a) == 11 and all(n.startswith("pp_post_") for n in a)
    assert all(b[n] == a[n] + 6 for n in a)


@needs_nvrtc
def test_compile_error_carries_the_log():
    bad = 'extern "C" __global__ void k(float* x) {\n  x[0] = undefined_symbol;\n}\n'
    with pytest.raises(KernelCompileError) as exc:
        compile_source(bad, "bad.cu", Target("--gpu-architecture=compute_80", "ptx"))
    msg = str(exc.value)
    assert "bad.cu" in msg and "undefined_symbol" in msg and "bad.cu(2)" in msg


@needs_nvrtc
def test_compile_kernel_file_uses_the_cache(tmp_path):
    cache = KernelCache(tmp_path)
    first = compile_kernel_file("scatter.cu", (9, 0), cache=cache)
    assert not first.from_cache and len(list(tmp_path.iterdir())) == 1
    second = compile_kernel_file("scatter.cu", (9, 0), cache=cache)
    assert second.from_cache and second.data == first.data
    third = compile_kernel_file("scatter.cu", (9, 0), options=("--std=c++17", "-lineinfo"), cache=cache)
    assert not third.from_cache and len(list(tmp_path.iterdir())) == 2


def test_compiling_leaves_shared_bytes_constants_alone():
    """NVRTC writes into bytes buffers; a 1-byte one is CPython's shared b" " (an empty log)."""
    reason = nvrtc_skip_reason()
    if reason:
        pytest.skip(reason)
    from pointpillars_trt.cuda.nvrtc import Target, compile_source

    compile_source('extern "C" __global__ void k(int* p) { p[0] = 1; }', "k.cu", Target("--gpu-architecture=compute_80", "ptx"))
    assert b" " == bytes([32]) and b"a b".split(b" ") == [b"a", b"b"]
