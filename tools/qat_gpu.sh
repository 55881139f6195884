#!/usr/bin/env bash
# Quantization-aware fine-tuning of the shipped demo model (issue 15) on one fresh GPU machine without network.
#
#   bash tools/qat_gpu.sh OUT_DIR                       # the real run (<= 300 s wall on an H200 with 16 cores)
#   bash tools/qat_gpu.sh OUT_DIR --frames 12 --steps 2 --batch-size 1 --device cpu --calib-frames 2 --budget 900   # smoke
#
# 1. The demo model's data: tools/make_synthetic.py --frames 2400 --seed 0 --val-fraction 0.15 --generator-version V,
#    V the shipped model's own (its data_generator_version metadata, as tools/int8_sweep.py reads it)
#    (the same frames as tools/int8_sweep.py makes, so the sweep's val split is never trained on).
# 2. One INT8 export of the demo model per activation type (entropy, --calib-frames train frames): the scales QAT starts from.
# 3. The variants, at the same time on the one GPU (tools/qat.py, float32, BatchNorm frozen, one-cycle max LR --lr):
#      fixed: int8 activations, the export's scales fixed      lsq: int8, scales learned (LSQ)
#      uint8: uint8 activations, fixed (ONNX Runtime only)     uint8_lsq: uint8, learned
#      lsq_kd: lsq distilled from the float demo model          uint8_lsq_kd: uint8_lsq distilled
#    (the _kd variants: tools/qat.py --distill W, W = --distill-weight; the frozen float teacher runs on every batch too)
# No AP evaluation here: the lead runs tools/int8_sweep.py --ckpt V/qat.safetensors --ranges V/qat.calibration.json
# --reference-ckpt pointpillars_trt/data/demo_model.safetensors afterwards (docs/ACCURACY.md, "QAT").
#
# Leaves in OUT_DIR only: VARIANT.tar.gz per variant (qat.safetensors (float16: the device returns <= 16 MiB a file), qat.calibration.json, qat.json, qat.log,
# data.json), timing.txt and summary.txt. Data and work files go to $DATA_ROOT (default /tmp/qat_data).
# Needs python3 with torch, numpy, numba, onnx, onnxruntime, pyyaml, safetensors.
# It runs beside another job: --workers (default 3) data-loader workers per variant, --gen-workers (default 6) for the data.
# Options: --frames N (2400) --steps N (500) --batch-size N (8) --lr F (3e-4) --device D (cuda) --workers N (3)
#          --gen-workers N (6) --calib-frames N (32) --variants "fixed lsq" --budget S (300: wall seconds for the whole
#          run; fine-tuning ends early if it would leave less than 25 s for packing, its one-cycle schedule fitted
#          to that limit, so a slow run still anneals)
#          --distill-weight W (1.0: the distillation weight of the _kd variants)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
USAGE="usage: $0 OUT_DIR [--frames N] [--steps N] [--batch-size N] [--lr F] [--device D] [--workers N] [--gen-workers N] [--calib-frames N] [--variants LIST] [--budget S] [--distill-weight W]"
[ $# -ge 1 ] || { echo "$USAGE" >&2; exit 2; }
OUT="$(mkdir -p "$1" && cd "$1" && pwd)"; shift
FRAMES=2400 STEPS=500 BATCH=8 LR=3e-4 DEVICE=cuda WORKERS=3 GEN_WORKERS=6 CALIB=32 VARIANTS="fixed lsq" BUDGET=300 KD=1.0
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 2; }
  case "$1" in
    --frames) FRAMES="$2" ;; --steps) STEPS="$2" ;; --batch-size) BATCH="$2" ;; --lr) LR="$2" ;; --device) DEVICE="$2" ;;
    --workers) WORKERS="$2" ;; --gen-workers) GEN_WORKERS="$2" ;; --calib-frames) CALIB="$2" ;; --variants) VARIANTS="$2" ;;
    --budget) BUDGET="$2" ;; --distill-weight) KD="$2" ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done

# the activation type and tools/qat.py flags of each variant
variant_type() { case "$1" in fixed|lsq|lsq_kd) echo int8 ;; uint8|uint8_lsq|uint8_lsq_kd) echo uint8 ;; *) return 1 ;; esac; }
variant_args() { case "$1" in lsq|uint8_lsq) echo --learn-scales ;; lsq_kd|uint8_lsq_kd) echo --learn-scales --distill "$KD" ;; *) echo ;; esac; }
for v in $VARIANTS; do
  variant_type "$v" >/dev/null || { echo "$0: unknown variant $v (fixed, lsq, uint8, uint8_lsq, lsq_kd, uint8_lsq_kd)" >&2; exit 2; }
done

PY="${PYTHON:-python3}"
DATA_ROOT="${DATA_ROOT:-/tmp/qat_data}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
GEN=$("$PY" -c 'import sys; sys.path.insert(0, "tools"); from pathlib import Path; from int8_sweep import generator_version; print(generator_version(None))')
DATA="$DATA_ROOT/v$GEN" RUNS="$DATA_ROOT/runs"
T0=$SECONDS
stamp() { echo "$1 $((SECONDS - T0)) s" | tee -a "$OUT/timing.txt"; }
: >"$OUT/timing.txt"
: >"$OUT/summary.txt"

"$PY" tools/make_synthetic.py --out "$DATA" --frames "$FRAMES" --seed 0 --val-fraction 0.15 --generator-version "$GEN" \
  --workers "$GEN_WORKERS" --quiet 2>&1 | tee -a "$OUT/timing.txt"
stamp "data v$GEN"

# one initial INT8 export per activation type, shared by its variants (tools/qat.py reuses a --ptq-dir that holds one)
# at the same time, the cores shared out (one after the other, int8 and uint8 took 147 s of a 350 s budget on 2026-12-01)
mkdir -p "$RUNS"
TYPES=$(for v in $VARIANTS; do variant_type "$v"; done | sort -u)
NTYPES=$(echo $TYPES | wc -w)
CALIB_THREADS=$(( GEN_WORKERS / NTYPES > 0 ? GEN_WORKERS / NTYPES : 1 ))
epids=()
for t in $TYPES; do
  "$PY" export/export_onnx.py --out-dir "$RUNS/ptq_$t" --fused --int8 --calib "$DATA" --calib-frames "$CALIB" \
    --activation-type "$t" --calib-threads "$CALIB_THREADS" >"$RUNS/ptq_$t.log" 2>&1 &
  epids+=($!)
done
i=0
for t in $TYPES; do
  wait "${epids[$i]}" || { echo "INT8 export ($t) failed: $(tail -n 1 "$RUNS/ptq_$t.log")" | tee -a "$OUT/summary.txt"; exit 1; }
  i=$((i + 1))
done
stamp "initial INT8 exports"

TRAIN_S=$(( BUDGET - (SECONDS - T0) - 25 > 20 ? BUDGET - (SECONDS - T0) - 25 : 20 ))
pids=()
for v in $VARIANTS; do
  d="$RUNS/$v"
  mkdir -p "$d"
  cp "$DATA/dataset.json" "$d/data.json"
  # shellcheck disable=SC2046  # variant_args prints plain words
  "$PY" tools/qat.py --data "$DATA" --out "$d/qat.safetensors" --steps "$STEPS" --batch-size "$BATCH" --lr "$LR" \
    --device "$DEVICE" --workers "$WORKERS" --activation-type "$(variant_type "$v")" --ptq-dir "$RUNS/ptq_$(variant_type "$v")" \
    --max-seconds "$TRAIN_S" --fp16-out $(variant_args "$v") >"$d/qat.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
stamp "qat ($VARIANTS; time limit $TRAIN_S s each)"

for v in $VARIANTS; do
  d="$RUNS/$v"
  if [ -f "$d/qat.safetensors" ]; then
    echo "$v: $(grep -h -o 'fine-tuned [0-9]* steps.*\|stopped after .*' "$d/qat.log" | tr '\n' ' ')$(grep -h -o 'step [0-9]*/[0-9]* loss [0-9.]*' "$d/qat.log" | sed -n '1p;$p' | tr '\n' ' ')" \
      | tee -a "$OUT/summary.txt"
  else
    echo "$v: fine-tuning failed: $(tail -n 1 "$d/qat.log")" | tee -a "$OUT/summary.txt"
  fi
  files=()
  for f in qat.safetensors qat.calibration.json qat.json qat.log data.json; do [ -f "$d/$f" ] && files+=("$f"); done
  tar -czf "$OUT/$v.tar.gz" -C "$d" "${files[@]}"
done
stamp "done"
[ "$rc" -eq 0 ] || { echo "fine-tuning failed for some variant: see summary.txt and the logs in the archives" >&2; exit 1; }
