#!/usr/bin/env bash
# Train demo-model candidates on synthetic data, on one fresh GPU machine without network.
#
#   bash tools/train_demo_gpu.sh OUT_DIR                      # the real run (~7.5 min on an H200 with 16 cores)
#   bash tools/train_demo_gpu.sh OUT_DIR --frames 8 --steps 2 --batch-size 2 --device cpu --val-frames 2   # smoke test
#
# One dataset (tools/make_synthetic.py --generator-version 6 --seed 1 --val-fraction 0.15, 3600 frames), then up
# to three variants trained at the same time on the one GPU, all with the robust recipe of the v2 demo model
# (object sparsify 0.3, beam dropout 0.05, point dropout 0.3, intensity jitter 0.15, float16 weights).
# The default variants (issue 19, after the v5 run: the v5 model met the 10-frame targets but lost 9.4 points of Car
# 3D AP on the v3 val split, whose far cars keep their roofs; generator v6 mixes both kinds of far car per frame):
#   plain:     GT sampling Car 20 / Pedestrian 15 / Cyclist 15, seed 0 (the v2 recipe), plain_s1: plain with seed 1
# The data seed is 1 (--data-seed): the v3 and v5 val splits below are frames of seed 0, whose scenes a seed-0
# dataset of 3600 frames would train on (v3-v6 draw the same scene for the same seed and index).
# Other variants: plain_s2 (seed 2), farw (plain with --far-weight 3 --far-weight-range 20,60: positive anchors'
# classification loss weighted 1 up to 20 m, rising to 3 at 60 m), far (GT sampling Car 30 / Pedestrian 15 / Cyclist 15
# with far objects: --db-any-difficulty --sample-far 0.5 --sample-far-range 20,70, seed 0), far_s1, farw_s1;
# cut (plain with --cut-box-weight 4: box and direction losses of positives matched to a car cut by the image's edge
# weighted 1 + 3 * its label truncation), cut_s1 (seed 1), cut8_s1 (seed 1, --cut-box-weight 8); edge (plain with
# --db-any-difficulty --sample-far 0.6 --sample-far-range 20,50 --sample-edge 1: 60 % of the GT samples moved 20-50 m
# away, thinned, across the edge of the frame's view and cut there), edge_s1 (seed 1); ends (plain with --object-ends 0.3:
# 30 % of the boxes keep only the points of one end of their length, 15-50 % of it), ends_s1 (seed 1); tilt (ends, the
# shipped recipe, with --tilt 1.5: each sample seen from a sensor pitched and rolled by N(0, 1.5 deg) each, clipped at
# 3.75 deg, i.e. roads on a grade of up to 6.5 %), tilt_s1 (seed 1), tilt3 (--tilt 3), tilt_small (--tilt 0.75);
# twin (the shipped recipe with --twin-negative-weight 3: a background anchor whose other-rotation twin is positive
# weighs 3 times in the classification loss), twin_s1 (seed 1); ft_twin (twin as a fine-tune of the shipped model:
# --init pointpillars_trt/data/demo_model.safetensors --lr 0.0003), ft_twin_head (that with only the 1x1 head convolutions
# trained: --freeze pfn,rpn.blocks,rpn.deblocks --lr 0.001); ft_ends (the shipped recipe as a fine-tune of the shipped
# model, --lr 0.0003: with --generator-version 7, the shipped model shown v7's screened crossing cars).
# runs (the shipped recipe with --object-runs 0.2: a box keeps only a 0.8-2 m run of its length, as a crossing car's side
# between occluders, which the shipped model reads as a car's back), twin_runs (runs with --twin-negative-weight 3).
# Issue 19's next run (not yet run): --generator-version 7 --steps 2700 --variants "ends runs twin_runs" (v7: steeper
# grades and screened crossing cars; docs/MODEL_CARD.md, 2026-12-06).
# The v3 run: --generator-version 3 --data-seed 0 --frames 2400 --steps 2500 --variants "plain far far_s1" --budget 450.
# The v4 run: --generator-version 4 --data-seed 0 --frames 3600 --steps 3200 --variants "plain plain_s1 farw" --budget 540.
# The v5 run: --generator-version 5 --data-seed 0 --frames 3600 --steps 2700 --variants "plain plain_s1 plain_s2" --budget 470.
# Synthetic val of every variant and of the shipped model (the control, evaluated while the variants train): the
# first --val-frames (300) frames of the v3 val split (make_synthetic --frames 2400 --seed 0 --val-fraction 0.15
# --generator-version 3) and of the v5 val split (--frames 3600, version 5), tools/eval_kitti.py; the dataset's own
# val split (first 300) is train.py's --eval. Ship the one tools/eval_real.py scores best (it runs here when the
# real frames are present) if its synthetic val holds.
#
# Leaves in OUT_DIR only (the device returns at most 8 files): VARIANT.tar.gz per variant (model.safetensors,
# train.log, train.json, real.json, real.log, data.json = the dataset's dataset.json, val_v3.log/json,
# val_v5.log/json), shipped.tar.gz (the control's val_v3/val_v5 logs and JSON), timing.txt (stage times and
# make_synthetic's summaries) and summary.txt (each variant's steps, eval_real Car lines and val 3D R40 lines).
# Datasets and work files go to $DATA_ROOT (default /tmp/demo_data), not into OUT_DIR.
# Needs python3 with torch, numpy, numba, pyyaml, safetensors (all in the device image). The real frames for
# tools/eval_real.py: $REAL_FRAMES (a kitti_frames folder, e.g. a carried .devshared/data/kitti_frames), else
# eval_real's default (../shared/data/kitti_frames beside the repository).
# Options: --generator-version G (6) --data-seed S (1) --frames N (3600) --steps N (2400) --batch-size N (16)
#          --device D (cuda) --workers N (data-loader workers per variant; default cores / variants - 1, 1..4)
#          --variants "plain plain_s1" --val-frames N (300) --budget S (520: wall seconds for the whole run; 480 cut 2700 steps short on the H200;
#          training ends early if it would leave less than 130 s for evaluation and packing: the one-cycle schedule is
#          fitted to that time limit (pointpillars_trt.train.schedule), so a slow run still anneals)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
USAGE="usage: $0 OUT_DIR [--generator-version G] [--data-seed S] [--frames N] [--steps N] [--batch-size N] [--device D] [--workers N] [--variants LIST] [--val-frames N] [--budget S]"
[ $# -ge 1 ] || { echo "$USAGE" >&2; exit 2; }
OUT="$(mkdir -p "$1" && cd "$1" && pwd)"; shift
GEN=6 DATA_SEED=1 FRAMES=3600 STEPS=2400 BATCH=16 DEVICE=cuda VARIANTS="plain plain_s1" WORKERS="" VAL_FRAMES=300 BUDGET=520
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 2; }
  case "$1" in
    --generator-version) GEN="$2" ;; --data-seed) DATA_SEED="$2" ;; --val-frames) VAL_FRAMES="$2" ;; --frames) FRAMES="$2" ;; --steps) STEPS="$2" ;; --batch-size) BATCH="$2" ;; --device) DEVICE="$2" ;;
    --workers) WORKERS="$2" ;; --variants) VARIANTS="$2" ;; --budget) BUDGET="$2" ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done

# the training flags of each variant (besides data, steps, batch, device, workers)
variant_args() {
  local far=(--sample-groups Car:30,Pedestrian:15,Cyclist:15 --db-any-difficulty --sample-far 0.5 --sample-far-range 20,70)
  local plain=(--sample-groups Car:20,Pedestrian:15,Cyclist:15) farw=(--far-weight 3 --far-weight-range 20,60)
  local ft=(--init pointpillars_trt/data/demo_model.safetensors)
  local edge=(--db-any-difficulty --sample-far 0.6 --sample-far-range 20,50 --sample-edge 1)
  case "$1" in
    ends) echo --seed 0 "${plain[@]}" --object-ends 0.3 ;;
    ends_s1) echo --seed 1 "${plain[@]}" --object-ends 0.3 ;;
    tilt) echo --seed 0 "${plain[@]}" --object-ends 0.3 --tilt 1.5 ;;
    tilt_s1) echo --seed 1 "${plain[@]}" --object-ends 0.3 --tilt 1.5 ;;
    tilt3) echo --seed 0 "${plain[@]}" --object-ends 0.3 --tilt 3 ;;
    tilt_small) echo --seed 0 "${plain[@]}" --object-ends 0.3 --tilt 0.75 ;;
    twin) echo --seed 0 "${plain[@]}" --object-ends 0.3 --twin-negative-weight 3 ;;
    twin_s1) echo --seed 1 "${plain[@]}" --object-ends 0.3 --twin-negative-weight 3 ;;
    ft_twin) echo --seed 0 "${plain[@]}" --object-ends 0.3 --twin-negative-weight 3 "${ft[@]}" --lr 0.0003 ;;
    ft_ends) echo --seed 0 "${plain[@]}" --object-ends 0.3 "${ft[@]}" --lr 0.0003 ;;
    runs) echo --seed 0 "${plain[@]}" --object-ends 0.3 --object-runs 0.2 ;;
    twin_runs) echo --seed 0 "${plain[@]}" --object-ends 0.3 --object-runs 0.2 --twin-negative-weight 3 ;;
    ft_twin_head) echo --seed 0 "${plain[@]}" --object-ends 0.3 --twin-negative-weight 3 "${ft[@]}" --freeze pfn,rpn.blocks,rpn.deblocks --lr 0.001 ;;
    edge) echo --seed 0 "${plain[@]}" "${edge[@]}" ;;
    edge_s1) echo --seed 1 "${plain[@]}" "${edge[@]}" ;;
    cut) echo --seed 0 "${plain[@]}" --cut-box-weight 4 ;;
    cut_s1) echo --seed 1 "${plain[@]}" --cut-box-weight 4 ;;
    cut8_s1) echo --seed 1 "${plain[@]}" --cut-box-weight 8 ;;
    plain) echo --seed 0 "${plain[@]}" ;;
    plain_s1) echo --seed 1 "${plain[@]}" ;;
    plain_s2) echo --seed 2 "${plain[@]}" ;;
    farw) echo --seed 0 "${plain[@]}" "${farw[@]}" ;;
    farw_s1) echo --seed 1 "${plain[@]}" "${farw[@]}" ;;
    far) echo --seed 0 "${far[@]}" ;;
    far_s1) echo --seed 1 "${far[@]}" ;;
    *) return 1 ;;
  esac
}
for v in $VARIANTS; do variant_args "$v" >/dev/null || { echo "$0: unknown variant $v (plain, plain_s1, plain_s2, farw, farw_s1, far, far_s1, cut, cut_s1, cut8_s1, edge, edge_s1, ends, ends_s1, tilt, tilt_s1, tilt3, tilt_small, twin, twin_s1, ft_twin, ft_ends, ft_twin_head, runs, twin_runs)" >&2; exit 2; }; done

PY="${PYTHON:-python3}"
DATA_ROOT="${DATA_ROOT:-/tmp/demo_data}"
DATA="$DATA_ROOT/v$GEN" VAL="$DATA_ROOT/val" RUNS="$DATA_ROOT/runs"
CORES="$(nproc)"
NVAR=$(echo $VARIANTS | wc -w)
# data-loader workers per variant: the cores shared out, one left per variant for its trainer, 1..4 (3 variants on the
# 16-core H200 machine: 4; the former fixed 8 / variants gave 2 there, and the 2026-12-01 23:00 run waited on data 85 % of the time)
W_AUTO=$(( CORES / NVAR - 1 )); W_AUTO=$(( W_AUTO > 4 ? 4 : (W_AUTO < 1 ? 1 : W_AUTO) ))
WORKERS="${WORKERS:-$W_AUTO}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
T0=$SECONDS
stamp() { echo "$1 $((SECONDS - T0)) s" | tee -a "$OUT/timing.txt"; }
: >"$OUT/timing.txt"
: >"$OUT/summary.txt"

"$PY" tools/make_synthetic.py --out "$DATA" --frames "$FRAMES" --seed "$DATA_SEED" --val-fraction 0.15 --generator-version "$GEN" \
  --workers "$CORES" --quiet 2>&1 | tee -a "$OUT/timing.txt"
stamp "data v$GEN"

DET_ARGS=(--backend torch --device "$DEVICE")
case "$DEVICE" in cuda*) ;; *) DET_ARGS=() ;; esac  # on the CPU: ONNX Runtime when installed
# val_ap CKPT DIR: tools/eval_kitti.py of CKPT ("": the shipped model) on the v3 and v5 val frames, both at once,
# into DIR/val_{v3,v5}.{log,json}
val_ap() {
  local ck=() s
  [ -z "$1" ] || ck=(--ckpt "$1")
  for s in v3 v5; do
    "$PY" tools/eval_kitti.py --data-root "$VAL/$s" --split val "${ck[@]}" "${DET_ARGS[@]}" --no-progress \
      --out-dir "$2/val_${s}_pred" --json "$2/val_$s.json" >"$2/val_$s.log" 2>&1 &
  done
  wait
}
# val_lines NAME DIR: the 3D R40 moderate line (Car Pedestrian Cyclist) of each val log in DIR
val_lines() {
  local f
  for f in "$2"/train.log "$2"/val_v3.log "$2"/val_v5.log; do
    [ -f "$f" ] || continue
    case "$f" in *train.log) what="v$GEN val (own split, first 300)" ;; *v3.log) what="v3 val" ;; *) what="v5 val" ;; esac
    echo "$1: $what R40 moderate 3D Car / Ped / Cyc: $(awk '/^3d R40/ {l = $3 " / " $4 " / " $5} END {print l ? l : "none: see the log"}' "$f")"
  done
}

# the v3 and v5 val frames (seed 0, the model card's splits), then the shipped model on them, while the variants train
mkdir -p "$RUNS/shipped"
( for g in 3 5; do
    "$PY" tools/make_synthetic.py --out "$VAL/v$g" --frames $(( g == 3 ? 2400 : 3600 )) --seed 0 --val-fraction 0.15 \
      --generator-version "$g" --val-only "$VAL_FRAMES" --workers 2 --quiet || exit 1
  done >"$RUNS/val_data.log" 2>&1
  val_ap "" "$RUNS/shipped" ) &
control=$!

TRAIN_S=$(( BUDGET - (SECONDS - T0) - 130 > 30 ? BUDGET - (SECONDS - T0) - 130 : 30 ))
pids=()
for v in $VARIANTS; do
  mkdir -p "$RUNS/$v"
  cp "$DATA/dataset.json" "$RUNS/$v/data.json"
  # shellcheck disable=SC2046  # variant_args prints plain words
  "$PY" tools/train.py --data "$DATA" --out "$RUNS/$v/model.safetensors" --steps "$STEPS" --batch-size "$BATCH" \
    --workers "$WORKERS" --device "$DEVICE" --fp16-out --eval --eval-limit 300 --json "$RUNS/$v/train.json" \
    --object-sparsify 0.3 --beam-dropout 0.05 --point-dropout 0.3 --intensity-jitter 0.15 --max-seconds "$TRAIN_S" \
    $(variant_args "$v") >"$RUNS/$v/train.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
stamp "train ($VARIANTS; time limit $TRAIN_S s each)"
wait "$control" || rc=1
cat "$RUNS/val_data.log" >>"$OUT/timing.txt"
stamp "val data v3 + v5 ($VAL_FRAMES frames each) and the shipped model's val"

REAL_ARGS=("${DET_ARGS[@]}")
[ -z "${REAL_FRAMES:-}" ] || REAL_ARGS+=(--frames "$REAL_FRAMES")
evals=()
for v in $VARIANTS; do
  d="$RUNS/$v"
  [ -f "$d/model.safetensors" ] || continue
  "$PY" tools/eval_real.py --ckpt "$d/model.safetensors" "${REAL_ARGS[@]}" --json "$d/real.json" >"$d/real.log" 2>&1 &
  evals+=("$v:$!")
  val_ap "$d/model.safetensors" "$d" &
  evals+=("-:$!")
done
real_ok=" "
for e in "${evals[@]}"; do if wait "${e#*:}"; then real_ok+="${e%%:*} "; fi; done
stamp "eval_real and val"

for v in $VARIANTS; do
  d="$RUNS/$v"
  if [ ! -f "$d/model.safetensors" ]; then
    echo "$v: training failed: $(tail -n 1 "$d/train.log")" | tee -a "$OUT/summary.txt"
  else
    { echo "$v: $(grep -h -o 'trained [0-9]* steps.*\|stopped after .*' "$d/train.log" | tr '\n' ' ')"
      case "$real_ok" in
        *" $v "*) grep "Car" "$d/real.log" | sed "s/^/$v: /" ;;
        *) echo "$v: eval_real did not run here ($(tail -n 1 "$d/real.log")); run it on the CPU afterwards" ;;
      esac
      val_lines "$v" "$d"; } | tee -a "$OUT/summary.txt"
  fi
  files=()
  for f in model.safetensors train.log train.json real.json real.log data.json val_v3.log val_v3.json val_v5.log val_v5.json; do
    [ -f "$d/$f" ] && files+=("$f")
  done
  tar -czf "$OUT/$v.tar.gz" -C "$d" "${files[@]}"
done
val_lines "shipped (control: the shipped model)" "$RUNS/shipped" | tee -a "$OUT/summary.txt"
files=()
for f in val_v3.log val_v3.json val_v5.log val_v5.json; do [ -f "$RUNS/shipped/$f" ] && files+=("$f"); done
[ ${#files[@]} -eq 0 ] || tar -czf "$OUT/shipped.tar.gz" -C "$RUNS/shipped" "${files[@]}"
stamp "done"
[ "$rc" -eq 0 ] || { echo "training or the val data failed: see summary.txt and the logs in the archives" >&2; exit 1; }
