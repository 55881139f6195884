#!/usr/bin/env python3
"""Issue 18: the RPN's convolutions through Triton against cuDNN, per layer and for the whole backbone.

For every convolution of the config's :class:`~pointpillars_trt.model.inference_rpn.InferenceRPN`
(the backbone's 3x3 ones and the upsampling 1x1 ones; BatchNorm folded, float16, channels_last),
at each ``--batch``:

* cuDNN: ``torch.cudnn_convolution_relu``, what the GPU pipeline runs today;
* Triton, two forms, each with the tile configurations that fit the layer (the fastest of each is
  reported with its label): :func:`benchmarks.triton_conv.conv_bias_relu_nhwc` (pointer
  loads, ``PTR_CONFIGS``) and, for stride 1, :func:`benchmarks.triton_conv.conv_bias_relu_tma`
  (TMA boxes, ``TMA_CONFIGS``).

Every time is the replay of one CUDA graph holding ``--repeat`` back-to-back calls (the form the
pipeline runs in: no launch overhead), CUDA events, median over ``--runs`` replays, divided by the
repeat. Each Triton output is checked against cuDNN's (max abs difference over max |cuDNN|).
Then the whole ``branches()`` pass (every backbone and upsampling convolution in order), the same way,
in five forms: cuDNN; each layer's fastest Triton form; Triton only where it beat cuDNN (hybrid); and
the last two with the Triton kernels launched as programmatic dependent launches (``_pdl``).

With ``--only sparse`` (also part of ``all``): the first block, and the first two, as
:class:`benchmarks.sparse_conv.ConstAwareChain` against cuDNN on canvases holding the real frames' pillars
(:func:`measure_sparse`).

    python benchmarks/bench_triton_conv.py [--config NAME] [--batch 1 16] [--json PATH] [--time-limit 240]
                                           [--only all|convs|head|sparse] [--sparse-frames 10]

Without a CUDA GPU, or without Triton, it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import faulthandler
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.config import load_config  # noqa: E402

PTR_CONFIGS = [  # (block_m, block_n, block_k, num_warps, num_stages): pointer loads, any stride
    (128, 64, 64, 4, 3), (64, 64, 64, 4, 3), (64, 128, 64, 4, 3), (128, 128, 64, 8, 3), (128, 128, 64, 4, 3), (128, 256, 64, 8, 3),
]
TMA_CONFIGS = [  # (rows, block_w, block_n, block_k, num_warps, num_stages): TMA boxes, stride 1
    (2, 64, 64, 64, 4, 3), (2, 64, 64, 64, 4, 4), (1, 128, 64, 64, 4, 3), (2, 64, 128, 64, 8, 3), (2, 64, 128, 64, 4, 3),
    (1, 64, 128, 64, 4, 3), (1, 64, 64, 64, 4, 4), (2, 64, 256, 64, 8, 3), (4, 32, 128, 64, 4, 3), (2, 32, 128, 64, 4, 3),
    (1, 64, 256, 64, 8, 3), (4, 32, 64, 64, 4, 4),
]


def out_hw(layer) -> int:
    """Output pixels of one image."""
    return ((layer.h + 2 * layer.pad - layer.kernel) // layer.stride + 1) * ((layer.w + 2 * layer.pad - layer.kernel) // layer.stride + 1)


def candidates(tc, layer):
    """``[(label, make(packed, bias, pdl) -> fn(x) -> y)]``: the Triton forms that fit ``layer``."""
    out = []
    for bm, bn, bk, nw, ns in PTR_CONFIGS:
        if layer.cin % bk or (bn > 64 and layer.cout < bn):
            continue
        out.append(("ptr " + tc.TileConfig(bm, bn, bk, nw, ns).label(), lambda packed, bias, pdl, a=(bm, bn, bk, nw, ns): (
            lambda x, c=tc.TileConfig(*a, pdl=pdl): tc.conv_bias_relu_nhwc(x, packed, bias, layer.kernel, layer.stride, layer.pad, c))))
    if layer.stride == 1:
        for rows, bw, bn, bk, nw, ns in TMA_CONFIGS:
            if layer.cin % bk or (bn > 64 and layer.cout < bn):
                continue
            out.append(("tma " + tc.TmaConfig(rows, bw, bn, bk, nw, ns).label(), lambda packed, bias, pdl, a=(rows, bw, bn, bk, nw, ns): (
                lambda x, c=tc.TmaConfig(*a, pdl=pdl): tc.conv_bias_relu_tma(x, packed, bias, layer.kernel, layer.pad, c))))
    return out


@dataclass(frozen=True)
class Layer:
    """One convolution of the RPN: ``name``, input ``[cin, h, w]``, ``cout``, square ``kernel``, ``stride``, ``pad``."""

    name: str
    cin: int
    h: int
    w: int
    cout: int
    kernel: int
    stride: int
    pad: int


def rel_err(y, ref) -> float:
    """Max abs difference of ``y`` from ``ref`` over max ``|ref|`` (float32)."""
    return float((y.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-6))


def graph_ms(torch, fn, repeat: int, runs: int) -> float:
    """Median over ``runs`` replays of a CUDA graph of ``repeat`` calls of ``fn``, per call (ms)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(repeat):
            fn()
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
    for start, end in pairs:
        start.record()
        graph.replay()
        end.record()
    torch.cuda.synchronize()
    return statistics.median([s.elapsed_time(e) for s, e in pairs]) / repeat


def rpn_layers(torch, cfg):
    """``(rpn, [(Layer, weight, bias)])``: an :class:`InferenceRPN` of ``cfg`` and its convolutions (random trained-like
    weights: the shapes are what matters), float16 on the GPU, in the order ``branches()`` runs them."""
    from pointpillars_trt.model.inference_rpn import InferenceRPN
    from pointpillars_trt.model.rpn import RPN

    torch.manual_seed(0)
    rpn = RPN(cfg)
    for m in rpn.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    inf = InferenceRPN(rpn.eval(), fused_neck=False).cuda().half().to(memory_format=torch.channels_last)
    nx, ny, _ = cfg.grid_size
    h, w, cin = ny, nx, cfg.network.pfn_channels
    out = []
    for b, (convs, up) in enumerate(zip(inf.convs, inf.ups)):
        for i, conv in enumerate(convs):
            k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            out.append((Layer(f"block{b}.conv{i}", cin, h, w, conv.out_channels, k, s, p), conv.weight.detach(), conv.bias.detach()))
            h, w, cin = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, conv.out_channels
        out.append((Layer(f"block{b}.up", cin, h, w, up.out_channels, 1, 1, 0), up.weight.detach(), up.bias.detach()))
    return inf, out


HEAD_TILES = [  # (block_m, block_k, num_warps, num_stages)
    (64, 64, 8, 2), (64, 64, 4, 2), (128, 64, 8, 2), (128, 64, 8, 3), (32, 64, 4, 2), (64, 32, 4, 3), (128, 32, 8, 3),
    (64, 64, 8, 3), (128, 64, 4, 2), (32, 64, 4, 3), (64, 64, 8, 1), (128, 64, 8, 1),
]


def measure_head(torch, cfg, inf, bsz: int, args) -> dict:
    """The upsampling convolutions + head as the pipeline runs them (cuDNN 1x1 convolutions, then
    ``head_without_concat``: cuBLAS products in float32 and the depth-to-space add kernel) against
    :func:`~pointpillars_trt.model.triton_head.neck_head` with each of ``HEAD_TILES``; then the whole
    RPN (``head_output``) against the backbone + the fastest ``neck_head``. Graph replays, as above."""
    from pointpillars_trt.model import triton_head as th
    from pointpillars_trt.model.inference_rpn import head_without_concat

    nx, ny, _ = cfg.grid_size
    canvas = torch.randn(bsz, cfg.network.pfn_channels, ny, nx, device="cuda", dtype=torch.half).relu_().contiguous(memory_format=torch.channels_last)

    with torch.no_grad():
        xs = inf.blocks(canvas)
        hw = inf.head.weight[:, :, 0, 0]

        def current():
            return head_without_concat(inf.upsampled(xs), inf.up_strides, hw, inf.head.bias)

        ref = current()
        packed = inf.pack_neck()
        row = {"batch": bsz, "current_ms": round(graph_ms(torch, current, args.repeat, args.runs), 5), "tiles": {}}
        best = None
        for bm, bk, nw, ns in HEAD_TILES:
            tiles = th.HeadTiles(bm, bk, nw, ns)
            try:
                out = th.neck_head(xs, packed, tiles)
                torch.cuda.synchronize()
                err = rel_err(out, ref)
                ms = graph_ms(torch, lambda: th.neck_head(xs, packed, tiles), args.repeat, args.runs)
                row["tiles"][tiles.label()] = {"ms": round(ms, 5), "rel_err": err,
                                               "differing": float((out != ref).float().mean())}
                if best is None or ms < best[0]:
                    best = (ms, tiles)
            except Exception as exc:
                row["tiles"][tiles.label()] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        if best is not None:
            row["best"] = best[1].label()
            row["best_ms"] = round(best[0], 5)
            def rpn(fused: bool):
                def run():
                    inf.fused_neck = fused  # InferenceRPN's own choice of path (the default tiles when fused)
                    return inf.head_output(canvas)
                return run

            whole = {"current": rpn(False), "fused_default_tiles": rpn(True),
                     "fused_best_tiles": lambda: th.neck_head(inf.blocks(canvas), packed, best[1])}
            for rnd in range(2):
                for name, fn in whole.items():
                    row.setdefault(f"rpn_{name}_ms", []).append(round(graph_ms(torch, fn, 5, args.runs), 5))
    inf.fused_neck = False
    print(f"b{bsz} neck+head: {json.dumps(row)}", flush=True)
    return row


FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_frames" / "cuda_pointpillars" / "velodyne_reduced"
SPARSE_TILES = [(4, 2), (4, 3), (8, 2), (8, 3)]  # (num_warps, num_stages) of benchmarks.sparse_conv's kernels


def measure_sparse(torch, cfg, inf, layers, args) -> dict:
    """The first block, and the first two blocks, as :class:`benchmarks.sparse_conv.ConstAwareChain` (tiles whose
    output is a known constant filled, the rest computed) against the same convolutions through cuDNN, on
    canvases that hold the real frames' pillars (``FRAMES``, voxelized on the CPU; features: random
    non-negative values, one per pillar and channel). Graph replays as above; the chain's outputs are checked
    against cuDNN's, and the share of tiles each layer computed is reported. Then the whole RPN as the
    pipeline runs it (cuDNN backbone, the fused Triton upsampling + head) against the same with the chain for
    each of ``blocks`` (with that frame's fastest tiles), heads checked against each other (``rpn`` rows)."""
    from benchmarks import sparse_conv as sc
    from pointpillars_trt.model import triton_head as th
    from pointpillars_trt.model.inference_rpn import conv_bias_relu
    from pointpillars_trt.io.pointcloud import load_points
    from pointpillars_trt.voxelize import make_voxelizer

    nx, ny, _ = cfg.grid_size
    vox = make_voxelizer(cfg.voxel, "numba", max_pillars=cfg.voxel.max_pillars)
    convs = [(layer, w, b) for layer, w, b in layers if not layer.name.endswith(".up")]
    blocks = {"block0": [t for t in convs if t[0].name.startswith("block0.")]}
    blocks["block0+1"] = blocks["block0"] + [t for t in convs if t[0].name.startswith("block1.")]
    frames = sorted(FRAMES.glob("*.bin"))[: args.sparse_frames]
    if not frames:
        return {"error": f"no frames in {FRAMES}"}
    def chain_of(chain, **tiles):
        return sc.ConstAwareChain([w for _, w, _ in chain], [b for _, _, b in chain], [layer.stride for layer, _, _ in chain],
                                  (ny, nx), **tiles)

    rows = []
    gen = torch.Generator(device="cuda").manual_seed(0)
    t_start = time.perf_counter()
    for path in frames:
        # the H100 run of 2026-12-06 stopped returning on the second frame (twice, > 300 s) after a first frame of
        # 1.5 s: a frame that takes longer than --stall-dump seconds writes every thread's stack to stderr
        faulthandler.dump_traceback_later(args.stall_dump, repeat=True)
        p = vox(load_points(path))
        coords = torch.zeros((cfg.voxel.max_pillars, 2), dtype=torch.int32, device="cuda")
        c = torch.from_numpy(np.ascontiguousarray(p.coords[: p.num_pillars], dtype=np.int32)).cuda()
        coords[: p.num_pillars] = c
        count = torch.tensor([p.num_pillars], dtype=torch.int32, device="cuda")
        canvas = torch.zeros(1, cfg.network.pfn_channels, ny, nx, device="cuda", dtype=torch.half)
        canvas[0, :, c[:, 1].long(), c[:, 0].long()] = torch.rand(cfg.network.pfn_channels, p.num_pillars, device="cuda", generator=gen).half()
        canvas = canvas.contiguous(memory_format=torch.channels_last)
        row = {"frame": path.stem, "pillars": int(p.num_pillars)}
        for name, chain in blocks.items():

            def dense(chain=chain):
                x = canvas
                for layer, w, b in chain:
                    x = conv_bias_relu(x, w, b, (layer.stride,) * 2, (layer.pad,) * 2)
                return x

            ref = dense()
            out = {"cudnn_ms": round(graph_ms(torch, dense, 5, args.runs), 5)}
            for nw, ns in SPARSE_TILES:
                label = f"w{nw}/s{ns}"
                try:
                    run = chain_of(chain, num_warps=nw, num_stages=ns)
                    y = run(canvas, coords, count)
                    torch.cuda.synchronize()
                    err = rel_err(y, ref)
                    out[label] = {"ms": round(graph_ms(torch, lambda run=run: run(canvas, coords, count), 5, args.runs), 5),
                                  "rel_err": err, "computed_share": [round(v, 3) for v in run.computed_share()],
                                  "marked_share": [round(v, 3) for v in run.marked_share()]}
                except Exception as exc:  # a configuration that does not compile or fit: reported
                    out[label] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            row[name] = out
        packed = inf.pack_neck()

        def rpn_with(chain_run, first_blocks: int):
            def run():
                x = chain_run(canvas, coords, count)
                xs = [x] if first_blocks == 1 else [chain_run.outputs[len(blocks["block0"]) - 1], x]  # block 0's output, then block 1's
                for convs in inf.convs[first_blocks:]:
                    for conv in convs:
                        x = conv_bias_relu(x, conv.weight, conv.bias, conv.stride, conv.padding)
                    xs.append(x)
                return th.neck_head(xs, packed)
            return run

        def rpn_dense():
            return th.neck_head(inf.blocks(canvas), packed)

        try:
            ref = rpn_dense()
            rpn = {"cudnn_backbone_ms": round(graph_ms(torch, rpn_dense, 5, args.runs), 5)}
            for name, chain in blocks.items():
                timed = [(v["ms"], (nw, ns)) for (nw, ns) in SPARSE_TILES if isinstance(v := row[name].get(f"w{nw}/s{ns}"), dict)]
                if not timed:
                    rpn[name] = "no tile configuration ran"
                    continue
                nw, ns = min(timed)[1]  # this frame's fastest tiles for these blocks
                run = rpn_with(chain_of(chain, num_warps=nw, num_stages=ns), 1 if name == "block0" else 2)
                y = run()
                torch.cuda.synchronize()
                rpn[name] = {"ms": round(graph_ms(torch, run, 5, args.runs), 5), "tiles": f"w{nw}/s{ns}",
                             "head_rel_err": rel_err(y, ref)}
            row["rpn"] = rpn
        except Exception as exc:  # reported, the per-block rows stand
            row["rpn"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        faulthandler.cancel_dump_traceback_later()
        row["elapsed_s"] = round(time.perf_counter() - t_start, 1)  # since the first frame began: compile time shows in the first
        rows.append(row)
        print(f"sparse {json.dumps(row)}", flush=True)
    summary = {}
    for name in blocks:
        cud = statistics.median([r[name]["cudnn_ms"] for r in rows])
        best = {}
        for nw, ns in SPARSE_TILES:
            label = f"w{nw}/s{ns}"
            ok = [r[name][label]["ms"] for r in rows if isinstance(r[name].get(label), dict)]
            if ok:
                best[label] = round(statistics.median(ok), 5)
        summary[name] = {"cudnn_ms_median": cud, "chain_ms_median": best,
                         "max_rel_err": max((r[name][k]["rel_err"] for r in rows for k in r[name] if isinstance(r[name][k], dict)), default=None)}
    rpn_rows = [r["rpn"] for r in rows if isinstance(r.get("rpn"), dict)]
    if rpn_rows:
        timed = {name: [r[name] for r in rpn_rows if isinstance(r.get(name), dict)] for name in blocks}
        summary["rpn"] = {"cudnn_backbone_ms_median": statistics.median([r["cudnn_backbone_ms"] for r in rpn_rows]),
                          **{f"{name}_chain_ms_median": statistics.median([t["ms"] for t in ts]) for name, ts in timed.items() if ts},
                          "max_head_rel_err": max((t["head_rel_err"] for ts in timed.values() for t in ts), default=None)}
    print(f"sparse summary {json.dumps(summary)}", flush=True)
    return {"frames": rows, "summary": summary}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="kitti_pointpillars_3class")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--time-limit", type=float, default=240.0, help="stop trying tile configurations after this many seconds")
    ap.add_argument("--only", choices=("all", "convs", "head", "sparse"), default="all", help="which part to measure")
    ap.add_argument("--sparse-frames", type=int, default=10, help="real frames for the sparse first blocks (--only sparse / all)")
    ap.add_argument("--stall-dump", type=float, default=60.0, help="a sparse frame taking longer than this many seconds dumps every thread's stack to stderr (again each period)")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench_triton_conv: needs torch; nothing measured")
        return 0
    if not torch.cuda.is_available():
        print("bench_triton_conv: needs a CUDA GPU (torch.cuda.is_available() is False); nothing measured")
        return 0
    from benchmarks import triton_conv as tc

    if not tc.available():
        print("bench_triton_conv: needs Triton (not importable); nothing measured")
        return 0
    import triton

    cfg = load_config(args.config)
    inf, layers = rpn_layers(torch, cfg)
    t_end = time.monotonic() + args.time_limit
    env = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
           "cudnn": torch.backends.cudnn.version(), "config": args.config,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    print(json.dumps(env))
    rows, wholes, heads = [], [], []
    sparse = measure_sparse(torch, cfg, inf, layers, args) if args.only in ("all", "sparse") else None
    for bsz in args.batch if args.only in ("all", "convs") else []:
        chosen, seen = [], {}  # per layer: its fastest Triton implementation (label, fn) and whether it beat cuDNN
        for layer, weight, bias in layers:
            shape = (layer.cin, layer.h, layer.w, layer.cout, layer.kernel, layer.stride, layer.pad)
            if shape in seen:  # the same shape as an earlier layer: its measurement
                row, pick = seen[shape]
                rows.append(dict(row, name=layer.name))
                chosen.append(pick)
                continue
            x = torch.randn(bsz, layer.cin, layer.h, layer.w, device="cuda", dtype=torch.half).relu_().contiguous(memory_format=torch.channels_last)
            wcl = weight.contiguous(memory_format=torch.channels_last)
            st, pd = (layer.stride,) * 2, (layer.pad,) * 2
            ref = torch.cudnn_convolution_relu(x, wcl, bias, st, pd, (1, 1), 1)
            cudnn_ms = graph_ms(torch, lambda: torch.cudnn_convolution_relu(x, wcl, bias, st, pd, (1, 1), 1), args.repeat, args.runs)
            packed = tc.pack_weight(weight)
            tries = []
            for cand_label, make in candidates(tc, layer):
                if time.monotonic() > t_end:
                    break
                try:
                    fn = make(packed, bias, pdl=False)
                    y = fn(x)
                    torch.cuda.synchronize()
                    err = rel_err(y, ref)
                    tries.append((graph_ms(torch, lambda: fn(x), args.repeat, args.runs), cand_label, make, err))
                except Exception as exc:  # a tile that does not compile or fit: report, go on
                    print(f"  {layer.name} b{bsz} {cand_label}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            if not tries:
                continue
            flop = 2.0 * bsz * layer.cout * layer.kernel ** 2 * layer.cin * out_hw(layer)
            row = {"batch": bsz, **asdict(layer), "cudnn_ms": round(cudnn_ms, 5), "cudnn_tflops": round(flop / cudnn_ms / 1e9, 1), "tiles_tried": len(tries)}
            for family in ("ptr", "tma"):
                fam = [t for t in tries if t[1].startswith(family)]
                if fam:
                    ms, lab, _, err = min(fam, key=lambda t: t[0])
                    row[family] = {"ms": round(ms, 5), "tile": lab, "ratio": round(ms / cudnn_ms, 3), "rel_err": err, "tflops": round(flop / ms / 1e9, 1)}
            ms, lab, make, err = min(tries, key=lambda t: t[0])
            pick = (lab, make, ms < cudnn_ms)
            rows.append(row)
            seen[shape] = (row, pick)
            chosen.append(pick)
            fams = "  ".join(f"{f} {row[f]['ms']*1e3:6.1f} us ({row[f]['tile']}, x{row[f]['ratio']:.2f}, err {row[f]['rel_err']:.1e})" for f in ("ptr", "tma") if f in row)
            print(f"b{bsz} {layer.name:<13} {layer.cin:>3}->{layer.cout:<4} {layer.h}x{layer.w} k{layer.kernel}s{layer.stride}: "
                  f"cuDNN {cudnn_ms*1e3:6.1f} us  {fams}", flush=True)
        if len(chosen) != len(layers):
            continue
        nx, ny, _ = cfg.grid_size
        canvas = torch.randn(bsz, cfg.network.pfn_channels, ny, nx, device="cuda", dtype=torch.half).relu_().contiguous(memory_format=torch.channels_last)
        wcls = [w.contiguous(memory_format=torch.channels_last) for _, w, _ in layers]
        packs = [tc.pack_weight(w) for _, w, _ in layers]

        def cudnn_fn(i):
            layer, _, bias = layers[i]
            st, pd = (layer.stride,) * 2, (layer.pad,) * 2
            return lambda x: torch.cudnn_convolution_relu(x, wcls[i], bias, st, pd, (1, 1), 1)

        def chain(fns):
            def run():
                x = canvas
                for (layer, _, _), fn in zip(layers, fns):
                    y = fn(x)
                    if not layer.name.endswith(".up"):
                        x = y
            return run

        forms = {"cudnn": [cudnn_fn(i) for i in range(len(layers))],
                 "triton": [make(packs[i], layers[i][2], pdl=False) for i, (_, make, _) in enumerate(chosen)],
                 "hybrid": [make(packs[i], layers[i][2], pdl=False) if win else cudnn_fn(i) for i, (_, make, win) in enumerate(chosen)],
                 "hybrid_pdl": [make(packs[i], layers[i][2], pdl=True) if win else cudnn_fn(i) for i, (_, make, win) in enumerate(chosen)],
                 "triton_pdl": [make(packs[i], layers[i][2], pdl=True) for i, (_, make, _) in enumerate(chosen)]}
        whole = {"batch": bsz}
        for rnd in range(2):
            for name, fns in forms.items():
                try:
                    whole.setdefault(name + "_ms", []).append(round(graph_ms(torch, chain(fns), 5, args.runs), 5))
                except Exception as exc:
                    whole[name + "_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        whole["triton_layers_in_hybrid"] = [layers[i][0].name + " " + lab for i, (lab, _, win) in enumerate(chosen) if win]
        wholes.append(whole)
        print(f"b{bsz} branches(): {json.dumps(whole)}", flush=True)
    for bsz in args.batch if args.only in ("all", "head") else []:
        heads.append(measure_head(torch, cfg, inf, bsz, args))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"env": env, "layers": rows, "branches": wholes, "neck_head": heads, "sparse": sparse}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
