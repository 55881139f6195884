#!/usr/bin/env python3
"""Issue 15: does a maintained library give the torch path int8 or fp8 convolutions without
hand-written kernels? Probes, on three of the RPN's 3x3 convolutions (each block's first
non-strided conv; batch 1, channels_last; shapes from the config), and measures what runs:

  fp16 / bf16            torch ``F.conv2d`` (cuDNN), the baseline
  torch int8             ``torch.ops.quantized.conv2d`` on CUDA tensors
  torchao fp8 auto/mslk  ``quantize_`` with ``Float8DynamicActivationFloat8WeightConfig`` on an ``nn.Conv2d``
  torchao int8           ``quantize_`` with ``Int8DynamicActivationInt8WeightConfig`` on an ``nn.Conv2d``
  cudnn-fe fp8           cudnn-frontend ``conv_fprop``: FP8_E4M3 x and w, float compute, descale, half out
  cudnn-fe int8          cudnn-frontend ``conv_fprop``: INT8 x and w, INT32 compute, the first output
                         type cuDNN accepts (half, float, then int32 dequantized outside the timing)

plus whether ``torch._scaled_mm`` (an fp8 GEMM: a conv through it would be a hand-made im2col,
not built here) exists. Every probe reports ``ok`` with its median time (CUDA events, warm-up,
median of ``--runs``), its ratio to fp16 and its error against the fp16 output (max abs, and
relative = max abs / max |fp16|), or ``unsupported: <reason>``. The cudnn-fe rows time the
convolution of pre-quantized tensors; the torchao rows include their dynamic activation quantization.

    python benchmarks/bench_lowp_conv.py [--config NAME] [--json PATH] [--time-limit 120] [--runs 50]

Without a CUDA GPU it prints one line and exits 0. The libraries come as wheels in ``.lowp/``
(tools/gpu_suite.sh installs them into its site folder); prepare that folder on a machine with network:

    pip download --dest .lowp --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \\
        --abi cp312 --abi abi3 --platform manylinux_2_28_x86_64 nvidia-cudnn-frontend torchao
"""

from __future__ import annotations

import argparse
import datetime
import json
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.config import PointPillarsConfig, load_config  # noqa: E402

NO_GPU_LINE = "bench_lowp_conv: needs a CUDA GPU (torch.cuda.is_available() is False); nothing measured"
FP8_MAX, INT8_MAX = 448.0, 127.0


@dataclass(frozen=True)
class ConvShape:
    """One 3x3 / padding 1 convolution of the RPN: ``[1, cin, height, width] -> [1, cout, ...]``."""

    name: str
    cin: int
    cout: int
    height: int
    width: int
    stride: int


def rpn_conv_shapes(cfg: PointPillarsConfig) -> list[ConvShape]:
    """Each backbone block's first non-strided 3x3 conv (its strided conv when the block has none),
    on the BEV canvas ``[pfn_channels, ny, nx]`` downsampled by the strides before it (a 3x3
    padding-1 conv of stride ``s`` maps ``n`` to ``(n - 1) // s + 1``)."""
    bb = cfg.network.backbone
    nx, ny, _ = cfg.grid_size
    h, w, cin = ny, nx, cfg.network.pfn_channels
    shapes = []
    for i, (n, s, cout) in enumerate(zip(bb.layer_nums, bb.layer_strides, bb.num_filters)):
        if n:
            h, w = (h - 1) // s + 1, (w - 1) // s + 1
            shapes.append(ConvShape(f"block{i}.conv1", cout, cout, h, w, 1))
        else:
            shapes.append(ConvShape(f"block{i}.conv0", cin, cout, h, w, s))
            h, w = (h - 1) // s + 1, (w - 1) // s + 1
        cin = cout
    return shapes


class TimeLimit(BaseException):
    """Raised by SIGALRM when the overall time limit passes inside a probe."""


def one_line(exc: BaseException) -> str:
    """``unsupported: Type: first line of the message`` (at most 240 characters)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"unsupported: {type(exc).__name__}: {text}"[:240]


def median_ms(torch, fn, runs: int, warmup: int) -> float:
    """Median over ``runs`` calls of ``fn()`` timed with CUDA events on the current stream, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
    for start, end in pairs:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median([s.elapsed_time(e) for s, e in pairs])


def errors(torch, y, ref) -> dict:
    """``max_abs_err`` and ``rel_err`` (max abs / max |ref|) of ``y`` against ``ref``, in float32."""
    diff = (y.float() - ref.float()).abs().max().item()
    return {"max_abs_err": diff, "rel_err": diff / max(ref.float().abs().max().item(), 1e-30)}


def make_inputs(torch, shape: ConvShape) -> tuple:
    """Seeded float32 CUDA ``x [1, cin, h, w]`` (post-ReLU: non-negative) and ``w [cout, cin, 3, 3]``
    (He-scaled), both channels_last."""
    g = torch.Generator(device="cuda").manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(1, shape.cin, shape.height, shape.width, device="cuda", generator=g).relu().contiguous(memory_format=cl)
    w = (torch.randn(shape.cout, shape.cin, 3, 3, device="cuda", generator=g) * (2.0 / (9 * shape.cin)) ** 0.5).contiguous(memory_format=cl)
    return x, w


def quantize(torch, t, dtype, qmax: float) -> tuple:
    """Per-tensor symmetric quantization: ``(q, scale)`` with ``t ~= q * scale``, channels_last kept."""
    scale = max(t.abs().max().item(), 1e-12) / qmax
    q = (t / scale).clamp(-qmax, qmax)
    q = q.round() if dtype == torch.int8 else q
    return q.to(dtype).contiguous(memory_format=torch.channels_last), scale


# ---- probes: each returns (run, output_fn, note) or raises; run() is timed, output_fn() gives the result ----

def probe_torch(torch, x, w, shape, dtype):
    """torch ``F.conv2d`` in ``dtype`` (cuDNN, benchmark mode)."""
    xd, wd = x.to(dtype), w.to(dtype)
    run = lambda: torch.nn.functional.conv2d(xd, wd, stride=shape.stride, padding=1)  # noqa: E731
    return run, run, "cuDNN via F.conv2d"


def probe_torch_int8(torch, x, w, shape, ref):
    """``torch.ops.quantized.conv2d`` on CUDA quantized tensors (qint8 weights; qint8, then quint8 activations)."""
    sw = max(w.abs().max().item(), 1e-12) / INT8_MAX
    qw = torch.quantize_per_tensor(w.contiguous(), sw, 0, torch.qint8)
    packed = torch.ops.quantized.conv2d_prepack(qw, None, [shape.stride] * 2, [1, 1], [1, 1], 1)
    out_scale = max(ref.abs().max().item(), 1e-12) / INT8_MAX
    failures = []
    for act in (torch.qint8, torch.quint8):
        try:
            qx = torch.quantize_per_tensor(x, max(x.abs().max().item(), 1e-12) / INT8_MAX, 0, act)
            run = lambda qx=qx: torch.ops.quantized.conv2d(qx, packed, out_scale, 0)  # noqa: E731
            run()
            return run, lambda: run().dequantize(), f"activations {act}"
        except Exception as exc:  # noqa: BLE001 - reported
            failures.append(f"{act}: {one_line(exc)}")
    raise RuntimeError("; ".join(failures))


def probe_torchao(torch, x, w, shape, config):
    """torchao ``quantize_(nn.Sequential(Conv2d), config)`` on a bf16 module, run on bf16 channels_last input."""
    from torchao.quantization import quantize_

    conv = torch.nn.Conv2d(shape.cin, shape.cout, 3, stride=shape.stride, padding=1, bias=False)
    model = torch.nn.Sequential(conv).to(device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    with torch.no_grad():
        conv.weight.copy_(w.to(torch.bfloat16))
    quantize_(model, config, filter_fn=lambda m, fqn: isinstance(m, torch.nn.Conv2d))
    kind = type(model[0].weight).__name__
    if kind == "Parameter":
        raise RuntimeError("quantize_ left the Conv2d weight unquantized")
    xb = x.to(torch.bfloat16)
    run = lambda: model(xb)  # noqa: E731
    return run, run, f"weight {kind}"


def probe_cudnn(torch, cudnn, handle, xq, wq, descale, shape, compute, out_types):
    """cudnn-frontend graph ``conv_fprop(xq, wq)`` with ``compute`` accumulation, then ``* descale`` into
    the first of ``out_types`` (cudnn data types; INT32 goes through an identity and is dequantized in
    torch, outside the timed call) that validates, builds and passes ``check_support``."""
    torch_of = {cudnn.data_type.HALF: torch.float16, cudnn.data_type.FLOAT: torch.float32, cudnn.data_type.INT32: torch.int32}
    cudnn_of = {torch.float8_e4m3fn: cudnn.data_type.FP8_E4M3, torch.int8: cudnn.data_type.INT8}
    p, q = (shape.height - 1) // shape.stride + 1, (shape.width - 1) // shape.stride + 1
    failures = []
    for out_type in out_types:
        try:
            g = cudnn.pygraph(handle=handle, io_data_type=out_type, intermediate_data_type=compute, compute_data_type=compute)
            X = g.tensor(name="X", dim=list(xq.shape), stride=list(xq.stride()), data_type=cudnn_of[xq.dtype])
            W = g.tensor(name="W", dim=list(wq.shape), stride=list(wq.stride()), data_type=cudnn_of[wq.dtype])
            acc = g.conv_fprop(image=X, weight=W, padding=[1, 1], stride=[shape.stride] * 2, dilation=[1, 1], compute_data_type=compute)
            out = torch.empty(1, shape.cout, p, q, device="cuda", dtype=torch_of[out_type]).contiguous(memory_format=torch.channels_last)
            pack = {X: xq, W: wq}
            if out_type == cudnn.data_type.INT32:
                Y = g.identity(input=acc, compute_data_type=compute)
            else:
                S = g.tensor(name="S", dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=cudnn.data_type.FLOAT)
                pack[S] = torch.full((1, 1, 1, 1), descale, device="cuda", dtype=torch.float32)
                Y = g.mul(a=acc, b=S, compute_data_type=cudnn.data_type.FLOAT)
            Y.set_output(True).set_data_type(out_type).set_dim(list(out.shape)).set_stride(list(out.stride()))
            pack[Y] = out
            g.validate()
            g.build_operation_graph()
            g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
            g.check_support()
            g.build_plans()
            ws = torch.empty(max(g.get_workspace_size(), 1), device="cuda", dtype=torch.uint8)
            run = lambda g=g, pack=pack, ws=ws: g.execute(pack, ws, handle=handle)  # noqa: E731
            run()
            engine = getattr(g.selected_engine, "name", None) or "cuDNN backend"
            result = (lambda out=out: out.float() * descale) if out_type == cudnn.data_type.INT32 else (lambda out=out: out)
            tried = f"; declined: {'; '.join(failures)}" if failures else ""
            return run, lambda run=run, result=result: (run(), result())[1], f"out {out_type.name}, {engine}{tried}"
        except Exception as exc:  # noqa: BLE001 - reported
            failures.append(f"{out_type.name}: {one_line(exc)}")
    raise RuntimeError("; ".join(failures))


def cudnn_probes(torch, x, w, shape, handle):
    """name -> zero-argument probe for the cudnn-frontend fp8 and int8 convolutions (pre-quantized inputs);
    without the library each probe reports that it is missing, as the torchao probes do."""

    def fp8():
        import cudnn

        (xq, sx), (wq, sw) = quantize(torch, x, torch.float8_e4m3fn, FP8_MAX), quantize(torch, w, torch.float8_e4m3fn, FP8_MAX)
        return probe_cudnn(torch, cudnn, handle(), xq, wq, sx * sw, shape, cudnn.data_type.FLOAT, [cudnn.data_type.HALF])

    def int8():
        import cudnn

        dt = cudnn.data_type
        (xq, sx), (wq, sw) = quantize(torch, x, torch.int8, INT8_MAX), quantize(torch, w, torch.int8, INT8_MAX)
        return probe_cudnn(torch, cudnn, handle(), xq, wq, sx * sw, shape, dt.INT32, [dt.HALF, dt.FLOAT, dt.INT32])

    return {"cudnn-fe fp8": fp8, "cudnn-fe int8": int8}


def torchao_probes(torch, x, w, shape):
    """name -> zero-argument probe for torchao's fp8 (kernel preference auto, then mslk) and int8 configs."""

    def fp8(pref):
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerTensor
        from torchao.quantization.quantize_.common import KernelPreference

        cfg = Float8DynamicActivationFloat8WeightConfig(granularity=PerTensor(), kernel_preference=getattr(KernelPreference, pref))
        return probe_torchao(torch, x, w, shape, cfg)

    def int8():
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, PerTensor

        return probe_torchao(torch, x, w, shape, Int8DynamicActivationInt8WeightConfig(granularity=PerTensor()))

    return {"torchao fp8 auto": lambda: fp8("AUTO"), "torchao fp8 mslk": lambda: fp8("MSLK"), "torchao int8": int8}


def library_versions(torch) -> dict:
    """Versions of torch, cuDNN, cudnn-frontend, torchao (and mslk), or why each is missing."""
    out = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
           "device": torch.cuda.get_device_name(0), "capability": list(torch.cuda.get_device_capability(0)),
           "torch._scaled_mm": hasattr(torch, "_scaled_mm"), "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    for mod in ("cudnn", "torchao", "mslk"):
        try:
            m = __import__(mod)
            out[f"{mod}_version"] = getattr(m, "__version__", "?")
            if mod == "cudnn":
                out["cudnn_frontend_backend"] = m.backend_version()
        except Exception as exc:  # noqa: BLE001 - reported
            out[f"{mod}_version"] = one_line(exc)
    return out


def measure(torch, name, probe, ref, base_ms, args) -> dict:
    """Run one probe: status, median ms, ratio to fp16, error against the fp16 output ``ref``."""
    try:
        run, output, note = probe()
        with torch.inference_mode():
            errs = errors(torch, output(), ref) if ref is not None else {}
            ms = median_ms(torch, run, args.runs, args.warmup)
        return {"probe": name, "status": "ok", "median_ms": ms, "ratio_to_fp16": ms / base_ms if base_ms else 1.0, **errs, "note": note}
    except Exception as exc:  # noqa: BLE001 - reported
        return {"probe": name, "status": one_line(exc)}


def run_shape(torch, shape, args, deadline, handle) -> tuple[dict, list[dict]]:
    """All probes on one shape; returns the shape's context (fp16's error vs float32) and its rows."""
    x, w = make_inputs(torch, shape)
    with torch.inference_mode():
        ref32 = torch.nn.functional.conv2d(x, w, stride=shape.stride, padding=1)
        ref = torch.nn.functional.conv2d(x.half(), w.half(), stride=shape.stride, padding=1)
    context = {**asdict(shape), "fp16_vs_fp32": errors(torch, ref, ref32)}
    probes = {"fp16": lambda: probe_torch(torch, x, w, shape, torch.float16),
              "bf16": lambda: probe_torch(torch, x, w, shape, torch.bfloat16),
              "torch int8": lambda: probe_torch_int8(torch, x, w, shape, ref),
              **torchao_probes(torch, x, w, shape), **cudnn_probes(torch, x, w, shape, handle)}
    rows, base_ms = [], None
    for name, probe in probes.items():
        if time.monotonic() > deadline:
            rows.append({"shape": shape.name, "probe": name, "status": "skipped: time limit reached"})
            continue
        row = measure(torch, name, probe, ref, base_ms, args)
        if name == "fp16" and row["status"] == "ok":
            base_ms = row["median_ms"]
        rows.append({"shape": shape.name, **row})
    return context, rows


def print_table(env: dict, shapes: list[dict], rows: list[dict]) -> None:
    """The readable table: per shape and probe, status, median ms, ratio to fp16, relative error."""
    print(f"{env['device']} (sm {env['capability']}), torch {env['torch']} cuda {env['torch_cuda']}, cuDNN {env['cudnn']}, "
          f"cudnn-frontend {env['cudnn_version']}, torchao {env['torchao_version']}, mslk {env['mslk_version']}, "
          f"torch._scaled_mm {'present' if env['torch._scaled_mm'] else 'absent'} (an fp8 GEMM; a conv would need a hand-made im2col)")
    for s in shapes:
        print(f"\n{s['name']}: [1, {s['cin']}, {s['height']}, {s['width']}] -> {s['cout']} ch, stride {s['stride']}, channels_last "
              f"(fp16 vs fp32 rel err {s['fp16_vs_fp32']['rel_err']:.2e})")
        print(f"  {'probe':<18} {'median ms':>10} {'x fp16':>7} {'rel err':>9}  status / note")
        for r in (r for r in rows if r.get("shape") == s["name"]):
            if r["status"] == "ok":
                print(f"  {r['probe']:<18} {r['median_ms']:>10.4f} {r['ratio_to_fp16']:>7.2f} {r.get('rel_err', 0):>9.2e}  ok ({r['note']})")
            else:
                print(f"  {r['probe']:<18} {'-':>10} {'-':>7} {'-':>9}  {r['status']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="config name or YAML path (default: the KITTI default config)")
    p.add_argument("--json", type=Path)
    p.add_argument("--time-limit", type=float, default=120.0, help="overall seconds; probes after it are skipped")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(NO_GPU_LINE)
        return 0
    t0 = time.monotonic()
    deadline = t0 + args.time_limit

    def on_alarm(signum, frame):
        raise TimeLimit(f"hard time limit {args.time_limit + 30:.0f} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.time_limit) + 30)  # a probe stuck past the limit; checked between probes otherwise
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False  # the float32 reference is float32
    cfg = load_config(args.config)
    env = library_versions(torch)
    handles = []

    def handle():
        """One cudnn handle on torch's current stream, made on first use."""
        if not handles:
            import cudnn

            handles.append(cudnn.create_handle())
            cudnn.set_stream(handles[0], torch.cuda.current_stream().cuda_stream)
        return handles[0]

    shapes, rows = [], []
    try:
        for shape in rpn_conv_shapes(cfg):
            context, shape_rows = run_shape(torch, shape, args, deadline, handle)
            shapes.append(context)
            rows += shape_rows
    except TimeLimit as exc:
        rows.append({"probe": "(run)", "status": f"stopped: {exc}"})
    finally:
        signal.alarm(0)
    report = {"env": env, "config": cfg.name, "time_limit_s": args.time_limit, "elapsed_s": time.monotonic() - t0,
              "runs": args.runs, "warmup": args.warmup, "shapes": shapes, "results": rows}
    print_table(env, shapes, rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
