#!/usr/bin/env bash
# The nano ablation report (docs/ablation_nano/): the paper's Tables 8-11 in miniature on the held-out
# synthetic test set. Run scripts/train_nano.sh first: this reuses its data, feature cache and its Stage 1 /
# Stage 2 weights, and trains the other variants with the same recipe. Resumable: finished variants are
# neither retrained nor re-evaluated (each keeps its evaluation beside its weights).
#
#   scripts/report_nano.sh [WORK_DIR] [OUT_DIR]     # defaults /tmp/nano_train, docs/ablation_nano
#
# Cost on 2 CPU cores (1 thread per process; two variants can run side by side, e.g.
# VARIANTS=no_prefusion,audio_only in one shell and VARIANTS=vision_only,text_only in another, then
# once more with the full list to write the report): each Stage-1 variant ~30 min + ~3 min evaluation;
# `joint` (350 steps, half of them long reasoning samples) ~105 min. Then the training-scheme comparison
# (Table 10) at 0.3x the budget (stage1, stage2 and joint retrained from scratch, ~60 min).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${1:-/tmp/nano_train}
OUT=${2:-docs/ablation_nano}
VARIANTS=${VARIANTS:-stage1,stage2,no_prefusion,audio_only,vision_only,text_only,joint}
SCHEME_SCALE=${SCHEME_SCALE:-0.3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
common=(--recipe nano --manifest "$WORK/data/manifest.jsonl" --cache "$WORK/run/feature_cache"
        --threads "${THREADS:-1}" --no-progress)
"$PY" -m emotion_ros_training.report "${common[@]}" --out "$WORK/report" --reuse "$WORK/run" --variants "$VARIANTS"
mkdir -p "$OUT"
cp "$WORK/report/report.md" "$WORK/report/report.json" "$OUT/"
if [ "$SCHEME_SCALE" != "0" ]; then
  "$PY" -m emotion_ros_training.report "${common[@]}" --out "$WORK/report_scheme_${SCHEME_SCALE}x" --steps-scale "$SCHEME_SCALE" \
    --variants stage1,stage2,joint
  cp "$WORK/report_scheme_${SCHEME_SCALE}x/report.md" "$OUT/report_scheme_${SCHEME_SCALE}x.md"
  cp "$WORK/report_scheme_${SCHEME_SCALE}x/report.json" "$OUT/report_scheme_${SCHEME_SCALE}x.json"
fi
