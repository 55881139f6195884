#!/usr/bin/env bash
# Train the demo model on generator-v2 synthetic data, on one fresh GPU machine without network.
#
#   bash tools/train_demo_gpu.sh OUT_DIR                      # the real run (aimed at ~7 min on an H200 with 16 cores)
#   bash tools/train_demo_gpu.sh OUT_DIR --frames 8 --steps 2 --batch-size 2 --device cpu   # smoke test
#
# Two variants are trained at the same time on the one GPU, on the same scenes:
#   plain: tools/make_synthetic.py --generator-version 2            (one simulated sensor)
#   mix:   tools/make_synthetic.py --generator-version 2 --mix 0.3  (every frame its own sensor settings)
# both with the robust recipe (GT sampling Car 20 / Pedestrian 15 / Cyclist 15, object sparsify 0.3,
# beam dropout 0.05, point dropout 0.3, intensity jitter 0.15, float16 weights). Ship the one
# tools/eval_real.py scores best (it runs here too when the real frames are present).
#
# Writes OUT_DIR/{plain,mix}/{model.safetensors,train.log,train.json,real.json,real.log},
# OUT_DIR/{plain,mix}_data.json (the datasets' dataset.json), OUT_DIR/make_synthetic.log and
# OUT_DIR/timing.txt. Datasets go to $DATA_ROOT (default /tmp/demo_v2_data), not into OUT_DIR.
# Needs python3 with torch, numpy, numba, pyyaml, safetensors (all in the device image).
# Options: --frames N (2400) --steps N (2500) --batch-size N (16) --device D (cuda)
#          --workers N (data-loader workers per variant; default (cores - 2) / 2) --variants "plain mix"
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
[ $# -ge 1 ] || { echo "usage: $0 OUT_DIR [--frames N] [--steps N] [--batch-size N] [--device D] [--workers N] [--variants LIST]" >&2; exit 2; }
OUT="$(mkdir -p "$1" && cd "$1" && pwd)"; shift
FRAMES=2400 STEPS=2500 BATCH=16 DEVICE=cuda VARIANTS="plain mix" WORKERS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --frames) FRAMES="$2" ;; --steps) STEPS="$2" ;; --batch-size) BATCH="$2" ;; --device) DEVICE="$2" ;;
    --workers) WORKERS="$2" ;; --variants) VARIANTS="$2" ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
PY="${PYTHON:-python3}"
DATA_ROOT="${DATA_ROOT:-/tmp/demo_v2_data}"
CORES="$(nproc)"
NVAR=$(echo $VARIANTS | wc -w)
WORKERS="${WORKERS:-$(( (CORES - 2) / NVAR > 0 ? (CORES - 2) / NVAR : 1 ))}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
T0=$SECONDS
stamp() { echo "$1 $((SECONDS - T0)) s" | tee -a "$OUT/timing.txt"; }
: >"$OUT/timing.txt"
mix_of() { [ "$1" = mix ] && echo 0.3 || echo 0.0; }

for v in $VARIANTS; do
  "$PY" tools/make_synthetic.py --out "$DATA_ROOT/$v" --frames "$FRAMES" --seed 0 --val-fraction 0.15 \
    --generator-version 2 --mix "$(mix_of "$v")" --workers "$CORES" --quiet 2>&1 | tee -a "$OUT/make_synthetic.log"
  cp "$DATA_ROOT/$v/dataset.json" "$OUT/${v}_data.json"
  stamp "data $v"
done

pids=()
for v in $VARIANTS; do
  mkdir -p "$OUT/$v"
  "$PY" tools/train.py --data "$DATA_ROOT/$v" --out "$OUT/$v/model.safetensors" --steps "$STEPS" --batch-size "$BATCH" \
    --workers "$WORKERS" --device "$DEVICE" --seed 0 --fp16-out --eval --eval-limit 300 --json "$OUT/$v/train.json" \
    --sample-groups Car:20,Pedestrian:15,Cyclist:15 --object-sparsify 0.3 --beam-dropout 0.05 --point-dropout 0.3 \
    --intensity-jitter 0.15 >"$OUT/$v/train.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
stamp "train ($VARIANTS)"
[ "$rc" -eq 0 ] || { echo "training failed: see $OUT/*/train.log" >&2; tail -n 5 "$OUT"/*/train.log >&2; exit 1; }

BACKEND=(--backend torch --device "$DEVICE")
case "$DEVICE" in cuda*) ;; *) BACKEND=() ;; esac  # on the CPU: ONNX Runtime when installed
for v in $VARIANTS; do
  if "$PY" tools/eval_real.py --ckpt "$OUT/$v/model.safetensors" "${BACKEND[@]}" --json "$OUT/$v/real.json" >"$OUT/$v/real.log" 2>&1; then
    grep "Car" "$OUT/$v/real.log" | sed "s/^/$v: /"
  else
    echo "$v: eval_real did not run here ($(tail -n 1 "$OUT/$v/real.log")); run it on the CPU afterwards"
  fi
  ls -l "$OUT/$v/model.safetensors"
done
stamp "done"
