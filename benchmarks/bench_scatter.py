"""Time the CUDA scatter (both zeroing modes, float32/float16) against torch's index_put scatter.

    python -m benchmarks.bench_scatter [--config NAME] [--iters 200] [--json out.json]

Times are CUDA-event times per call (clear + scatter), averaged over ``--iters`` back-to-back
calls on one stream, for pillar counts 1000, 12000 and the config's maximum. The grid and channel
count come from the config. Needs cuda-python and a CUDA GPU (torch only for its comparison row).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def bench(cfg, iters: int, counts: list[int]) -> list[dict]:
    from pointpillars_trt.cuda.device import get_device
    from pointpillars_trt.cuda.memory import DeviceBuffer, Event, Stream, copy_h2d_async
    from pointpillars_trt.network.cuda_scatter import CLEAR_MODES, CudaScatter

    dev = get_device(0)
    nx, ny, _ = cfg.grid_size
    c = cfg.network.pfn_channels
    stream = Stream(dev)
    start, stop = Event(dev), Event(dev)
    rows = []
    for dtype in (np.float32, np.float16):
        for p in counts:
            rng = np.random.default_rng(p)
            flat = rng.choice(nx * ny, size=p, replace=False)
            coords = np.stack([flat % nx, flat // nx], axis=1).astype(np.int32)
            feats = rng.standard_normal((p, c)).astype(dtype)
            d_f, d_c = DeviceBuffer(feats.nbytes, dev), DeviceBuffer(coords.nbytes, dev)
            copy_h2d_async(d_f.ptr, feats.ctypes.data, feats.nbytes, stream.handle)
            copy_h2d_async(d_c.ptr, coords.ctypes.data, coords.nbytes, stream.handle)
            for clear in CLEAR_MODES:
                s = CudaScatter(nx, ny, c, dtype, max_pillars=max(counts), device=dev, clear=clear)
                for _ in range(10):
                    s(d_f.ptr, d_c.ptr, p, stream.handle)
                start.record(stream.handle)
                for _ in range(iters):
                    s(d_f.ptr, d_c.ptr, p, stream.handle)
                stop.record(stream.handle)
                stream.synchronize()
                rows.append({"impl": f"cuda/{clear}", "dtype": np.dtype(dtype).name, "pillars": p, "ms": start.elapsed_ms(stop) / iters})
                s.free()
            rows.extend(_torch_row(feats, coords, nx, ny, iters))
            d_f.free()
            d_c.free()
    return rows


def _torch_row(feats, coords, nx, ny, iters) -> list[dict]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    from pointpillars_trt.model.scatter import PointPillarsScatter

    mod = PointPillarsScatter(nx, ny, feats.shape[1])
    pf, xy = torch.from_numpy(feats).cuda(), torch.from_numpy(coords).cuda()
    for _ in range(10):
        mod(pf, xy)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(iters):
        mod(pf, xy)
    b.record()
    torch.cuda.synchronize()
    return [{"impl": "torch/index_put", "dtype": str(feats.dtype), "pillars": len(feats), "ms": a.elapsed_time(b) / iters}]


def main(argv: list[str] | None = None) -> int:
    from pointpillars_trt.config import load_config
    from pointpillars_trt.cuda.device import get_device

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=None)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--json", help="write the rows as JSON here")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    counts = sorted({min(1000, cfg.voxel.max_pillars), min(12000, cfg.voxel.max_pillars), cfg.voxel.max_pillars})
    info = get_device(0).info
    rows = bench(cfg, args.iters, counts)
    print(f"scatter on {info.name} (sm_{info.compute_capability[0]}{info.compute_capability[1]}), grid {cfg.grid_size[:2]}, C={cfg.network.pfn_channels}")
    print(f"{'impl':<18} {'dtype':<8} {'pillars':>8} {'ms/call':>9}")
    for r in rows:
        print(f"{r['impl']:<18} {r['dtype']:<8} {r['pillars']:>8} {r['ms']:>9.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": info.name, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
