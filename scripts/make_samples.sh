#!/usr/bin/env bash
# Regenerates the shipped sample bags in samples/ (deterministic): synthetic MMEVerse-format clips
# (emotion_ros_training.synth, seed 777 — a seed the nano training data does not use) laid back to back into one
# annotated rosbag2 MCAP session, with JPEG CompressedImage frames to keep it small. Its clock starts 100 s
# after samples/real_session's (1700000000 s, scripts/make_real_check.sh --sample): the demo replays the
# two one after another to one node, and sensor time must move forwards between them. Subtitles as
# std_msgs/String, the type launch/perceive.yaml's node subscribes to (transcript_type: string).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=.venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$PY -m emotion_ros_training.synth.generate --out "$work/clips" --num 6 --seed 777 --test-fraction 1.0 \
    --conflict-fraction 0 --missing-fraction 0
rm -rf samples/synth_session
$PY -m emotion_ros make-bag samples/synth_session --manifest "$work/clips/manifest.jsonl" \
    --fps 15 --max-side 224 --jpeg 85 --dataset SYNTH --t0 1700000100 --transcripts string
