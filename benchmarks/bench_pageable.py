#!/usr/bin/env python3
"""Issue 18's lead for the host overhead: can the GPU read the caller's own numpy cloud, so that a
single frame needs no staging copy into pinned memory (about 24 us for a KITTI FOV cloud and
0.14 ms for a 110k-point 360-degree one on the H200 host)?

Reports the device's ``CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS`` (the GPU can read pageable
host memory: HMM or ATS), ``..._PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES`` and
``..._HOST_REGISTER_SUPPORTED``. Then, per cloud size, the host-to-host time of making a cloud
readable and running one kernel that reads every point once (a grid-stride float4 sum into a
mapped pinned float, the shape of the voxelizer's first pass), in these ways:

* ``device``: the cloud already in device memory (the kernel and the launch alone: the floor);
* ``staged``: ``np.copyto`` into a pinned buffer, the kernel reading it mapped (single frames today);
* ``staged_copy``: the same, then ``cuMemcpyHtoDAsync`` and the kernel on device memory (batches today);
* ``pageable``: the kernel reading the numpy array's own address (only where the attribute is 1);
* ``registered``: ``cuMemHostRegister`` of the array, the kernel on its device pointer, unregister.

and two kinds of input: ``fresh`` (a new numpy array per frame, as a driver that allocates one) and
``reused`` (one array rewritten per frame; the rewrite is not timed). Each case checks the kernel's
sum against numpy's. Medians and p90 of ``--frames`` frames (perf_counter), in microseconds.

    python benchmarks/bench_pageable.py [--points 20000 110000] [--frames 300] [--json PATH]

Without a CUDA GPU (or cuda-python) it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NO_GPU_LINE = "bench_pageable: needs a CUDA GPU and cuda-python; nothing measured"
SOURCE = r"""
extern "C" __global__ void probe_sum(const float4* __restrict__ pts, int n, float* out) {
    float s = 0.f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float4 p = pts[i];
        s += p.x + p.y + p.z + p.w;
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, s);
}
"""
BLOCK = 256


def attributes(drv, dev) -> dict:
    a = drv.CUdevice_attribute
    out = {}
    for name in ("CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS", "CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES",
                 "CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED", "CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM"):
        try:
            err, value = drv.cuDeviceGetAttribute(getattr(a, name), dev.handle)
            out[name.removeprefix("CU_DEVICE_ATTRIBUTE_").lower()] = int(value) if int(err) == 0 else f"error {int(err)}"
        except AttributeError:
            out[name.removeprefix("CU_DEVICE_ATTRIBUTE_").lower()] = "unknown to this cuda-python"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, nargs="+", default=[20000, 110000], help="cloud sizes (a FOV frame, a 360-degree one)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    try:
        from pointpillars_trt.cuda.bindings import bindings, check
        from pointpillars_trt.cuda.device import cuda_unavailable_reason, get_device
        from pointpillars_trt.cuda.memory import DeviceBuffer, PinnedBuffer, Stream, copy_h2d_async, mapped_pointer
        from pointpillars_trt.cuda.nvrtc import CudaModule, choose_target, compile_source, i32, launch, nvrtc_supported_archs, ptr

        reason = cuda_unavailable_reason()
    except Exception as exc:  # noqa: BLE001 - cuda-python missing: the same one line
        reason = str(exc)
    if reason is not None:
        print(NO_GPU_LINE)
        return 0
    drv = bindings()[0]
    dev = get_device()
    cc = dev.info.compute_capability
    target = choose_target(cc, nvrtc_supported_archs() or [cc[0] * 10 + cc[1]])
    fn = CudaModule(compile_source(SOURCE, "probe_sum.cu", target), dev, "probe_sum").function("probe_sum")
    grid = dev.info.multiprocessor_count * 4
    stream = Stream()
    out_buf = PinnedBuffer(4)
    out_host = out_buf.view(np.float32, (1,))
    out_dev = mapped_pointer(out_buf.ptr)
    env = {"device": dev.info.name, "driver_version": dev.info.driver_version, **attributes(drv, dev),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    print(json.dumps(env), flush=True)
    pageable = env.get("pageable_memory_access") == 1
    rng = np.random.default_rng(0)
    results = []
    for n in args.points:
        src = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
        expect = float(src.astype(np.float64).sum())
        nbytes = src.nbytes
        pinned = PinnedBuffer(nbytes)
        pin_view = pinned.view(np.float32, (n, 4))
        pin_dev = mapped_pointer(pinned.ptr)
        dbuf = DeviceBuffer(nbytes)
        copy_h2d_async(dbuf.ptr, src.ctypes.data, nbytes, stream.handle)
        stream.synchronize()

        def run(points_ptr: int) -> None:
            launch(fn, grid, BLOCK, (ptr(points_ptr), i32(n), ptr(out_dev)), stream.handle, programmatic=False)
            stream.synchronize()

        def device(cloud):
            run(dbuf.ptr)

        def staged(cloud):
            np.copyto(pin_view, cloud)
            run(pin_dev)

        def staged_copy(cloud):
            np.copyto(pin_view, cloud)
            copy_h2d_async(dbuf.ptr, pinned.ptr, nbytes, stream.handle)
            run(dbuf.ptr)

        def direct(cloud):
            run(cloud.ctypes.data)

        def registered(cloud):
            check(drv.cuMemHostRegister(cloud.ctypes.data, nbytes, 0), "cuMemHostRegister")
            try:
                run(mapped_pointer(cloud.ctypes.data))
            finally:
                check(drv.cuMemHostUnregister(cloud.ctypes.data), "cuMemHostUnregister")

        cases = {"device": device, "staged": staged, "staged_copy": staged_copy, "registered": registered}
        if pageable:
            cases["pageable"] = direct
        for name, case in cases.items():
            for kind in ("fresh", "reused"):
                reused = src.copy()
                times, bad = [], 0
                try:
                    for i in range(args.frames + 5):
                        cloud = src.copy() if kind == "fresh" else reused
                        if kind == "reused":
                            np.copyto(reused, src)
                        out_host[0] = 0.0
                        t0 = time.perf_counter()
                        case(cloud)
                        t1 = time.perf_counter()
                        if i >= 5:
                            times.append((t1 - t0) * 1e6)
                        if abs(float(out_host[0]) - expect) > 1e-3 * max(1.0, float(np.abs(src).sum())):
                            bad += 1
                    times.sort()
                    row = {"points": n, "case": name, "input": kind, "median_us": round(statistics.median(times), 2),
                           "p90_us": round(times[int(0.9 * (len(times) - 1))], 2), "wrong_sums": bad}
                except Exception as exc:  # noqa: BLE001 - a way the driver refuses: reported
                    row = {"points": n, "case": name, "input": kind, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
                results.append(row)
                print(json.dumps(row), flush=True)
        if not pageable:
            results.append({"points": n, "case": "pageable", "skipped": "the device cannot read pageable host memory"})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"env": env, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
