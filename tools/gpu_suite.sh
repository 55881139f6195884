#!/usr/bin/env bash
# Run every GPU test and the GPU benchmarks in one go, on a bare GPU machine without network.
#
#   bash tools/gpu_suite.sh                 # from the repository root (or anywhere: it cd's there)
#   OUT=/some/dir bash tools/gpu_suite.sh   # logs and JSON results go to $OUT (default: ./gpu_suite_out)
#   GPU_SUITE_SKIP="bench-h2d bench-staging" bash tools/gpu_suite.sh   # leave out the steps so named
#
# What it expects there: python3 with numpy and torch (CUDA build); everything else the package
# needs that is missing (cuda-python's cuda-bindings, NVRTC, numba, pyyaml, tqdm, pytest) is installed
# with `pip install --no-index --no-deps --target /tmp/site` from wheels in ./.whl/ and put on
# PYTHONPATH. Nothing is downloaded. The package itself runs from the checkout (PYTHONPATH=repo).
#
# Prepare .whl/ on a machine with network (here: CPython 3.12, manylinux x86_64; match the GPU
# machine's Python and its CUDA major version, 13 for torch +cu130):
#
#   pip download --dest .whl --only-binary=:all: --no-deps \
#       --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
#       "cuda-bindings>=13,<14" "cuda-pathfinder>=1.1" "nvidia-cuda-nvrtc>=13,<14" \
#       "numba>=0.60" "llvmlite>=0.43" "pyyaml>=6" "tqdm>=4.60" \
#       "pytest>=8" "pluggy>=1.5" "iniconfig>=2" "packaging>=24"
#
# (`--no-deps` because the machine's numpy and torch must stay as they are; the list above is the
# whole closure. numba must accept the machine's numpy version, or the numba tests skip/fail.)
#
# Steps: environment report -> install what is missing -> NVRTC check -> `pytest -m gpu -v`
# (plus the CPU-side CUDA/TensorRT tests) -> scatter micro-benchmark -> unfused voxelization as a CUDA graph
# (bench-voxelize-gpu; BENCH_VOX_ARGS adds options; its 360-degree frames go to $VOX_FRAMES, default /tmp/pp_vox_frames, for a peer run; not into $OUT) -> benchmarks/benchmark.py when
# present -> benchmarks/benchmark_gpu.py (eager torch vs the GPU pipeline; BENCHMARK_GPU_ARGS adds options)
# -> bench-facade -> profile-host -> bench-decode (and in .landed/) -> bench-staging -> bench-h2d -> bench-pageable -> bench-lowp-conv (int8/fp8 convs; wheels from .lowp/ when there) -> bench-cudnn-engines (every cuDNN engine for the backbone convs) -> bench-triton-head -> bench-sparse-conv (the first blocks skipping constant tiles) -> bench-fleet (when Ray is there) -> landed-vs-head (when .landed/ is there)
# -> tools/check_tensorrt.py when TensorRT is importable. Exit status: 0 when every step
# passed, else the number of failed steps.

set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-$REPO/gpu_suite_out}"
mkdir -p "$OUT"
LOG="$OUT/gpu_suite.log"
: >"$LOG"
PY="${PYTHON:-python3}"
SITE="${GPU_SUITE_SITE:-/tmp/site}"
WHEELS="${GPU_SUITE_WHEELS:-$REPO/.whl}"
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export POINTPILLARS_TRT_KERNEL_CACHE="${POINTPILLARS_TRT_KERNEL_CACHE:-/tmp/pointpillars_trt_kernels}"
export PYTHONDONTWRITEBYTECODE=1
FAILED=()

say() { echo "== $*" | tee -a "$LOG"; }
step() {  # step NAME CMD...: run, log, remember failures (a NAME listed in GPU_SUITE_SKIP is logged as skipped)
  local name="$1"; shift
  if [[ " ${GPU_SUITE_SKIP:-} " == *" $name "* ]]; then
    say "$name: skipped (GPU_SUITE_SKIP)"
    return 0
  fi
  say "$name: $*"
  local t0=$SECONDS
  "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  say "$name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || FAILED+=("$name (exit $rc)")
  return 0
}
have() { "$PY" -c "import $1" >/dev/null 2>&1; }

say "environment ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "nvidia-smi not available"
  "$PY" - <<'EOF'
import platform, sys
print("python", sys.version.split()[0], platform.machine())
for mod in ("numpy", "torch", "onnx", "onnxruntime", "numba", "yaml", "tqdm", "pytest", "cuda.bindings", "tensorrt"):
    try:
        m = __import__(mod, fromlist=["_"])
        extra = f" cuda {m.version.cuda}, gpu {m.cuda.is_available()}" if mod == "torch" else ""
        print(f"  {mod:<14} {getattr(m, '__version__', '?')}{extra}")
    except Exception as exc:
        print(f"  {mod:<14} MISSING ({type(exc).__name__}: {exc})")
EOF
} 2>&1 | tee -a "$LOG"

# ---- install what is missing, from wheels only ---------------------------------------------------
declare -A PKGS=(
  [cuda.bindings]="cuda-bindings cuda-pathfinder"
  [numba]="numba llvmlite"
  [yaml]="pyyaml"
  [tqdm]="tqdm"
  [pytest]="pytest pluggy iniconfig packaging"
)
missing=()
for mod in cuda.bindings numba yaml tqdm pytest; do
  have "$mod" || missing+=(${PKGS[$mod]})
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ -d "$WHEELS" ]; then
    step install "$PY" -m pip install --no-index --no-deps --find-links "$WHEELS" --target "$SITE" "${missing[@]}"
  else
    say "missing ${missing[*]} and no wheel folder $WHEELS (see this script's header)"
    FAILED+=("install (no $WHEELS)")
  fi
fi
# Ray (fleet inference), only when missing: its wheel is too large to carry whole, so ./.raypkg/ holds
# ray_stripped.tar.xz (the ray 2.60.0 cp312 wheel unpacked without ray/jars, ray/rllib and the
# dashboard's web client) and the wheels of its missing needs (jsonschema, referencing, rpds-py,
# jsonschema-specifications); the image has pyarrow, pandas, msgpack. Made here (29 MB; about 1 min of xz):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d /tmp/rw ray==2.60.0
#   python3 -m zipfile -e /tmp/rw/ray-2.60.0-*.whl /tmp/rs && rm -rf /tmp/rs/ray/jars /tmp/rs/ray/rllib /tmp/rs/ray/dashboard/client
#   mkdir -p .raypkg && tar -C /tmp/rs -cJf .raypkg/ray_stripped.tar.xz .
#   pip download (the same platform flags) -d .raypkg jsonschema referencing rpds-py jsonschema-specifications
# With .devshared, .ortwhl and .landed it stays under the 64 MiB a call carries (leave .lowp out).
if ! have ray && [ -f .raypkg/ray_stripped.tar.xz ]; then
  step install-ray bash -c "mkdir -p '$SITE' && tar -C '$SITE' -xJf .raypkg/ray_stripped.tar.xz && $PY -m pip install -q --no-index --no-deps --target '$SITE' .raypkg/*.whl"
fi
# NVRTC: torch's CUDA wheels usually bring libnvrtc; install the wheel only when it cannot be loaded
if ! "$PY" -c "from pointpillars_trt.cuda.nvrtc import nvrtc_version; nvrtc_version()" >/dev/null 2>&1; then
  if ls "$WHEELS"/nvidia_cuda_nvrtc*.whl >/dev/null 2>&1; then
    step install-nvrtc "$PY" -m pip install --no-index --no-deps --find-links "$WHEELS" --target "$SITE" nvidia-cuda-nvrtc
  fi
fi
step nvrtc "$PY" -c "
from pointpillars_trt.cuda.nvrtc import nvrtc_version, nvrtc_supported_archs
from pointpillars_trt.cuda.device import get_device
print('NVRTC', nvrtc_version(), 'archs', nvrtc_supported_archs()); print(get_device(0).info)"

# ---- tests ---------------------------------------------------------------------------------------
step pytest-gpu "$PY" -m pytest -m gpu -v -p no:cacheprovider -rs --junitxml="$OUT/pytest_gpu.xml" tests
step pytest-cuda-trt "$PY" -m pytest -v -p no:cacheprovider -rs -m "not gpu" tests/cuda tests/tensorrt tests/network tests/executors tests/voxelize/test_voxelize_cuda.py tests/postprocess/test_postprocess_cuda.py

# ---- benchmarks ----------------------------------------------------------------------------------
step bench-scatter "$PY" -m benchmarks.bench_scatter --json "$OUT/bench_scatter.json"
# our unfused voxelization (points -> decorated pillars) as one CUDA graph, replayed on the real FOV and 360-degree frames
step bench-voxelize-gpu "$PY" benchmarks/bench_voxelize_gpu.py ${BENCH_VOX_ARGS:-} --save-frames "${VOX_FRAMES:-/tmp/pp_vox_frames}" --json "$OUT/bench_voxelize_gpu.json"
if [ -f benchmarks/benchmark.py ]; then
  # BENCHMARK_ARGS overrides the arguments (e.g. "--backend torch --device cuda --iters 50")
  if [ -n "${BENCHMARK_ARGS:-}" ]; then
    read -r -a bench_args <<<"$BENCHMARK_ARGS"
  else
    bench_args=(--backend torch --device cuda)
  fi
  step benchmark "$PY" benchmarks/benchmark.py "${bench_args[@]}" --json "$OUT/benchmark.json"
fi
# the GPU pipeline against the eager PyTorch pipeline, plus the device ceilings (< 4 min on an H100)
step benchmark-gpu "$PY" benchmarks/benchmark_gpu.py ${BENCHMARK_GPU_ARGS:-} --json "$OUT/benchmark_gpu.json"
step bench-facade "$PY" benchmarks/bench_facade.py
step profile-host "$PY" benchmarks/profile_host.py --calls 2000
# a ROS node's host path: PointCloud2 decoding in common layouts, FrameProcessor.process against Detector.detect
# (on the GPU pipeline), this checkout and, when .landed/ is there, the landed code
step bench-decode "$PY" benchmarks/bench_decode.py --json "$OUT/bench_decode.json"
if [ -d .landed/pointpillars_trt ]; then
  step bench-decode-landed "$PY" benchmarks/bench_decode.py --tree .landed --json "$OUT/bench_decode_landed.json"
fi
# the staging copy three ways on this host (numpy, one memmove, two threads): does a split pay on a many-core host?
step bench-staging "$PY" benchmarks/bench_staging.py
# issue 18's lead: is a host-to-device copy slower right after the CPU wrote the pinned buffer?
step bench-h2d "$PY" benchmarks/bench_h2d.py --json "$OUT/bench_h2d.json"
# issue 18's host overhead: can a kernel read the caller's own (pageable) cloud, or a registered one, instead of a staged copy?
step bench-pageable "$PY" benchmarks/bench_pageable.py --json "$OUT/bench_pageable.json"
# issue 15: int8 / fp8 convolutions from maintained libraries (torch, torchao, cudnn-frontend) on the RPN's
# conv shapes; the libraries' wheels come from ./.lowp/ when it is there (see the script's header)
if [ -d .lowp ]; then
  step install-lowp "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .lowp/*.whl
fi
step bench-lowp-conv "$PY" benchmarks/bench_lowp_conv.py --json "$OUT/bench_lowp_conv.json"
# issue 18: every cuDNN engine for the backbone's 3x3 convolutions (torch's heuristics, torch's benchmark mode,
# cudnn-frontend plans from heuristics A, B and FALLBACK), per layer and for the whole backbone
step bench-cudnn-engines "$PY" benchmarks/bench_cudnn_engines.py --json "$OUT/bench_cudnn_engines.json"
# issue 18: the RPN's upsampling + head as one Triton kernel against cuDNN + cuBLAS (its tile choices; the whole RPN)
step bench-triton-head "$PY" benchmarks/bench_triton_conv.py --only head --json "$OUT/bench_triton_head.json"
# issue 18: the first RPN blocks skipping the tiles whose output is a known constant (benchmarks/sparse_conv.py) against cuDNN
# (its own time limit, SPARSE_TIMEOUT s: on 2026-12-06 it stopped returning on its second frame and took the rest of the call)
step bench-sparse-conv timeout "${SPARSE_TIMEOUT:-240}" "$PY" benchmarks/bench_triton_conv.py --only sparse --json "$OUT/bench_sparse_conv.json"
# fleet inference on Ray Data against detect_batch in one process, one GPU (FLEET_ARGS overrides)
if have ray; then
  read -r -a fleet_args <<<"${FLEET_ARGS:---frames 8000 --backend gpu --precision fp16 --batch-size 64 --no-progress}"
  step bench-fleet "$PY" benchmarks/bench_fleet.py "${fleet_args[@]}" --json "$OUT/bench_fleet.json"
fi
# no speed regression: this checkout against the landed code in .landed/ (git archive REV pointpillars_trt | tar -x -C .landed)
if [ -d .landed/pointpillars_trt ]; then
  step landed-vs-head "$PY" benchmarks/landed_vs_head.py --landed .landed --json "$OUT/landed_vs_head.json"
fi
if have tensorrt && "$PY" -c "import tensorrt; assert tensorrt.__file__" >/dev/null 2>&1; then
  step check-tensorrt "$PY" tools/check_tensorrt.py --work-dir /tmp/check_tensorrt
fi

say "summary: ${#FAILED[@]} failed step(s)${FAILED[*]:+: ${FAILED[*]}}"
say "logs in $OUT"
exit "${#FAILED[@]}"
