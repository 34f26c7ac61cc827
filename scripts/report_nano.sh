#!/usr/bin/env bash
# The nano ablation report (docs/ablation_nano/): the paper's Tables 8-11 in miniature on the held-out
# synthetic test set. Run scripts/train_nano.sh first: this reuses its data, feature cache and its Stage 1 /
# Stage 2 weights, and trains the other variants (no pre-fusion, each single modality, joint) with the
# same recipe (about 1.5 h on 2 CPU cores; resumable: finished variants are only re-evaluated).
#
#   scripts/report_nano.sh [WORK_DIR] [OUT_DIR]     # defaults /tmp/nano_train, docs/ablation_nano
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${1:-/tmp/nano_train}
OUT=${2:-docs/ablation_nano}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$PY" -m training.report --recipe nano --manifest "$WORK/data/manifest.jsonl" --out "$WORK/report" \
  --reuse "$WORK/run" --cache "$WORK/run/feature_cache" --threads "${THREADS:-2}" --no-progress \
  --variants stage1,stage2,no_prefusion,audio_only,vision_only,text_only,joint
mkdir -p "$OUT"
cp "$WORK/report/report.md" "$WORK/report/report.json" "$OUT/"
