#!/usr/bin/env python3
"""Issue 18: does cuDNN hold a faster engine for the RPN's backbone convolutions than the one the
GPU pipeline gets today?

The pipeline runs every 3x3 convolution of the backbone as ``torch.cudnn_convolution_relu``
(float16, channels_last, BatchNorm folded), whose engine torch picks by cuDNN's heuristics. This
script measures each distinct layer shape of the config's RPN (``bench_triton_conv.rpn_layers``),
at each ``--batch``, three ways:

* ``torch``: ``torch.cudnn_convolution_relu`` as the pipeline calls it (heuristics);
* ``torch_benchmark``: the same call after a first call with ``torch.backends.cudnn.benchmark``
  on and ``benchmark_limit`` 0 (every engine torch lists is timed, the fastest cached). This runs
  in a child process, since torch's plan cache outlives the flag;
* ``frontend``: a cudnn-frontend graph ``relu(bias(conv_fprop(x, w), b))`` (half in and out,
  float compute), plans from heuristics modes A, B and FALLBACK, every plan built
  (``build_plan_policy.ALL``) and timed; the fastest is reported with its name, and each plan's
  output is checked against torch's (max abs difference over max |torch|; a plan above
  ``--max-rel-err`` is not counted).

Then the whole backbone (``InferenceRPN.blocks``: every 3x3 convolution in order) in each form
(``frontend``: each layer's fastest plan). Every time is the replay of one CUDA graph holding
``--repeat`` back-to-back calls (``bench_triton_conv.graph_ms``), median over ``--runs`` replays.

    python benchmarks/bench_cudnn_engines.py [--config NAME] [--batch 1 16] [--json PATH] [--time-limit 240]

cudnn-frontend comes as a wheel in ``.lowp/`` (``tools/gpu_suite.sh`` installs it; see
``bench_lowp_conv.py``'s header). Without a CUDA GPU it prints one line and exits 0; without
cudnn-frontend the ``frontend`` rows say why they are missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.config import load_config  # noqa: E402


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def conv_inputs(torch, layer, weight, bsz: int):
    """``(x, w, stride, pad)``: a random non-negative input like a block's and the weight, channels_last."""
    x = torch.randn(bsz, layer.cin, layer.h, layer.w, device="cuda", dtype=torch.half).relu_().contiguous(memory_format=torch.channels_last)
    return x, weight.contiguous(memory_format=torch.channels_last), (layer.stride,) * 2, (layer.pad,) * 2


def torch_call(torch, x, w, bias, st, pd):
    return lambda: torch.cudnn_convolution_relu(x, w, bias, st, pd, (1, 1), 1)


class FrontendConv:
    """One cudnn-frontend graph for ``relu(conv(x, w) + b)`` on fixed tensors, every plan built."""

    def __init__(self, torch, cudnn, handle, x, w, bias, layer, like) -> None:
        dt = cudnn.data_type
        self.torch, self.cudnn, self.handle = torch, cudnn, handle
        self.out = torch.empty_like(like)  # torch's output for the same call: its shape, dtype and channels_last strides
        b4 = bias.reshape(1, -1, 1, 1).contiguous()
        g = cudnn.pygraph(handle=handle, io_data_type=dt.HALF, intermediate_data_type=dt.FLOAT, compute_data_type=dt.FLOAT)
        X = g.tensor(name="X", dim=list(x.shape), stride=list(x.stride()), data_type=dt.HALF)
        W = g.tensor(name="W", dim=list(w.shape), stride=list(w.stride()), data_type=dt.HALF)
        B = g.tensor(name="B", dim=list(b4.shape), stride=list(b4.stride()), data_type=dt.HALF)
        c = g.conv_fprop(image=X, weight=W, padding=[layer.pad] * 2, stride=[layer.stride] * 2, dilation=[1, 1], compute_data_type=dt.FLOAT)
        y = g.relu(input=g.bias(input=c, bias=B, compute_data_type=dt.FLOAT), compute_data_type=dt.FLOAT)
        y.set_output(True).set_data_type(dt.HALF).set_dim(list(self.out.shape)).set_stride(list(self.out.stride()))
        self.pack = {X: x, W: w, B: b4, y: self.out}
        g.validate()
        g.build_operation_graph()
        g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.B, cudnn.heur_mode.FALLBACK])
        g.check_support()
        g.build_plans(cudnn.build_plan_policy.ALL)
        self.graph = g
        self.count = g.get_execution_plan_count()
        self.workspaces: dict[int, object] = {}

    def name(self, i: int) -> str:
        try:
            return str(self.graph.get_plan_name_at_index(i))
        except Exception as exc:  # noqa: BLE001 - a name is only a label
            return f"plan {i} ({one_line(exc)})"

    def call(self, i: int):
        """A zero-argument call of plan ``i`` on the current torch stream (its workspace made once, here)."""
        if i not in self.workspaces:
            size = int(self.graph.get_workspace_size_plan_at_index(i))
            self.workspaces[i] = self.torch.empty(max(size, 1), device="cuda", dtype=self.torch.uint8)
        ws = self.workspaces[i]

        def run():
            self.cudnn.set_stream(self.handle, self.torch.cuda.current_stream().cuda_stream)
            self.graph.execute_plan_at_index(self.pack, ws, i, handle=self.handle)
            return self.out

        return run


def measure(mode: str, args) -> dict:
    """Every distinct layer shape and the whole backbone in ``mode`` (torch / torch_benchmark / frontend)."""
    import torch

    from benchmarks.bench_triton_conv import graph_ms, rel_err, rpn_layers

    if mode == "torch_benchmark":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.benchmark_limit = 0
    cfg = load_config(args.config)
    inf, layers = rpn_layers(torch, cfg)
    layers = [t for t in layers if not t[0].name.endswith(".up")]  # the 1x1 upsampling runs in the fused head
    cudnn = handle = None
    if mode == "frontend":
        import cudnn

        handle = cudnn.create_handle()
    out = {"mode": mode, "layers": [], "backbone": []}
    for bsz in args.batch:
        seen, chosen = {}, []  # seen: shape -> the layer's call, or None where no plan was timed
        t_end = time.monotonic() + args.time_limit / len(args.batch)
        for layer, weight, bias in layers:
            shape = (layer.cin, layer.h, layer.w, layer.cout, layer.kernel, layer.stride, layer.pad)
            if shape in seen:
                if seen[shape] is not None:
                    chosen.append(seen[shape])
                continue
            x, w, st, pd = conv_inputs(torch, layer, weight, bsz)
            fn = torch_call(torch, x, w, bias, st, pd)
            ref = fn()
            row = {"batch": bsz, "name": layer.name, "cin": layer.cin, "cout": layer.cout, "h": layer.h, "w": layer.w, "stride": layer.stride}
            if mode != "frontend":
                row["ms"] = round(graph_ms(torch, fn, args.repeat, args.runs), 5)
                pick = lambda x, w=w, bias=bias, st=st, pd=pd: torch.cudnn_convolution_relu(x, w, bias, st, pd, (1, 1), 1)  # noqa: E731
            else:
                try:
                    fc = FrontendConv(torch, cudnn, handle, x, w, bias, layer, ref)
                except Exception as exc:  # noqa: BLE001 - reported
                    row["error"] = one_line(exc)
                    seen[shape] = None
                    out["layers"].append(row)
                    print(f"{mode} b{bsz} {layer.name}: {row['error']}", flush=True)
                    continue
                plans, best = [], None
                for i in range(fc.count):
                    if time.monotonic() > t_end:
                        row["stopped"] = f"time limit after {i} of {fc.count} plans"
                        break
                    try:
                        run = fc.call(i)
                        y = run()
                        torch.cuda.synchronize()
                        err = rel_err(y, ref)
                        ms = graph_ms(torch, run, args.repeat, args.runs)
                        plans.append({"plan": fc.name(i), "ms": round(ms, 5), "rel_err": err})
                        if err <= args.max_rel_err and (best is None or ms < best[0]):
                            best = (ms, i, fc)
                    except Exception as exc:  # noqa: BLE001 - a plan that does not run: reported
                        plans.append({"plan": fc.name(i), "error": one_line(exc)})
                row["plans"] = sorted(plans, key=lambda p: p.get("ms", 1e9))
                row["plan_count"] = fc.count
                if best is None:
                    seen[shape] = None
                    out["layers"].append(row)
                    continue
                row["ms"], row["best_plan"] = round(best[0], 5), fc.name(best[1])
                bfc, bi = best[2], best[1]

                def pick(x, fc=bfc, i=bi):
                    # the chain runs each layer on its own fixed tensors: copy the chain's input in, as a
                    # pipeline with one buffer per layer would not need to (the copy is timed separately)
                    if x is not None:
                        fc.pack[next(iter(fc.pack))].copy_(x)
                    return fc.call(i)()
            print(f"{mode} b{bsz} {layer.name:<12} {layer.cin:>3}->{layer.cout:<4} {layer.h}x{layer.w} s{layer.stride}: "
                  f"{row['ms'] * 1e3:6.1f} us {row.get('best_plan', '')}", flush=True)
            out["layers"].append(row)
            seen[shape] = pick
            chosen.append(pick)
        if len(chosen) != len(layers):
            continue
        nx, ny, _ = cfg.grid_size
        canvas = torch.randn(bsz, cfg.network.pfn_channels, ny, nx, device="cuda", dtype=torch.half).relu_().contiguous(memory_format=torch.channels_last)
        whole = {"batch": bsz}
        if mode != "frontend":
            whole["ms"] = [round(graph_ms(torch, lambda: inf.blocks(canvas), 5, args.runs), 5) for _ in range(2)]
        else:
            def chain(copy: bool):
                def run():
                    x = canvas
                    for f in chosen:
                        x = f(x if copy else None)
                return run
            # with the copies (what chaining fixed-tensor graphs costs here) and without (the convolutions alone)
            whole["ms_with_copies"] = [round(graph_ms(torch, chain(True), 5, args.runs), 5) for _ in range(2)]
            whole["ms"] = [round(graph_ms(torch, chain(False), 5, args.runs), 5) for _ in range(2)]
        out["backbone"].append(whole)
        print(f"{mode} b{bsz} backbone: {json.dumps(whole)}", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="kitti_pointpillars_3class")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--max-rel-err", type=float, default=2e-2, help="a plan whose output differs more from torch's is not counted")
    ap.add_argument("--time-limit", type=float, default=240.0, help="stop timing frontend plans after this many seconds (shared out over the batch sizes)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--mode", choices=("torch", "torch_benchmark", "frontend"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench_cudnn_engines: needs torch; nothing measured")
        return 0
    if not torch.cuda.is_available():
        print("bench_cudnn_engines: needs a CUDA GPU (torch.cuda.is_available() is False); nothing measured")
        return 0
    if args.mode:  # a child: one mode, its JSON on the last line of stdout
        print("RESULT " + json.dumps(measure(args.mode, args)), flush=True)
        return 0
    env = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
           "config": args.config, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        import cudnn

        env["cudnn_frontend"] = getattr(cudnn, "__version__", "?")
    except Exception as exc:  # noqa: BLE001 - reported, and the frontend mode is skipped
        env["cudnn_frontend"] = f"missing: {one_line(exc)}"
    print(json.dumps(env), flush=True)
    result = {"env": env}
    passthrough = ["--config", args.config, "--batch", *map(str, args.batch), "--repeat", str(args.repeat), "--runs", str(args.runs),
                   "--max-rel-err", str(args.max_rel_err), "--time-limit", str(args.time_limit)]
    for mode in ("torch", "torch_benchmark", "frontend"):
        if mode == "frontend" and env["cudnn_frontend"].startswith("missing"):
            result[mode] = {"error": env["cudnn_frontend"]}
            continue
        proc = subprocess.run([sys.executable, __file__, *passthrough, "--mode", mode], capture_output=True, text=True)
        lines = proc.stdout.splitlines()
        for line in lines:
            if not line.startswith("RESULT "):
                print(line, flush=True)
        done = [line for line in lines if line.startswith("RESULT ")]
        result[mode] = json.loads(done[-1][7:]) if done else {"error": f"rc {proc.returncode}: {proc.stderr.strip()[-600:]}"}
        if not done:
            print(f"{mode}: {result[mode]['error']}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
