"""MELD (Poria et al. 2019): Friends TV utterances, 7 emotions (MELD-e) or 3 sentiments (MELD-s).

Expected layout (the official MELD.Raw release after unpacking the per-split tarballs):

    <root>/
      train_sent_emo.csv   dev_sent_emo.csv   test_sent_emo.csv
      train_splits/dia{Dialogue_ID}_utt{Utterance_ID}.mp4
      dev_splits_complete/dia{D}_utt{U}.mp4
      output_repeated_splits_test/dia{D}_utt{U}.mp4

Mirrors that nest each split under train/, dev/, test/ (e.g. <root>/train/train_splits/...) are found
too. CSV columns used: Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID (plus
Season, Episode, StartTime, EndTime kept in meta). The mp4 holds both video and audio. Split names
train/dev/test map to train/val/test. macOS '._dia*' files in the test archive are ignored.
"""
from __future__ import annotations

import os

from emotion_ros_training.data.adapters import AdapterResult, column, find_media, read_csv
from emotion_ros_training.data.manifest import MELD7, SENTIMENT3, ClipRecord

SPLITS = {
    "train": ("train_sent_emo.csv", ("train_splits",), "train"),
    "dev": ("dev_sent_emo.csv", ("dev_splits_complete", "dev_splits"), "val"),
    "test": ("test_sent_emo.csv", ("output_repeated_splits_test", "test_splits"), "test"),
}


def build(root: str | os.PathLike, task: str = "emotion") -> AdapterResult:
    """Records for every utterance with an existing video. task: 'emotion' (MELD7) or 'sentiment'."""
    if task not in ("emotion", "sentiment"):
        raise ValueError("task must be 'emotion' or 'sentiment'")
    root = os.path.abspath(root)
    res = AdapterResult()
    space = MELD7 if task == "emotion" else SENTIMENT3
    found_csv = False
    for src_split, (csv_name, video_dirs, split) in SPLITS.items():
        csv_path = next((p for p in (os.path.join(root, csv_name), os.path.join(root, src_split, csv_name))
                         if os.path.isfile(p)), None)
        if csv_path is None:
            continue
        found_csv = True
        dirs = [os.path.join(root, d) for d in video_dirs] + [os.path.join(root, src_split, d) for d in video_dirs]
        for row in read_csv(csv_path):
            d, u = column(row, "Dialogue_ID"), column(row, "Utterance_ID")
            if d is None or u is None:
                res.skipped["bad_row"] += 1
                continue
            label = (column(row, "Emotion" if task == "emotion" else "Sentiment") or "").lower()
            if label not in space.labels:
                res.skipped["label_not_in_space"] += 1
                continue
            video = find_media(dirs, [f"dia{d}_utt{u}"], (".mp4",))
            if video is None:
                res.skipped["missing_media"] += 1
                continue
            subtitle = column(row, "Utterance") or None
            res.records.append(ClipRecord(
                clip_id=f"meld_{src_split}_dia{d}_utt{u}",
                dataset="MELD" if task == "emotion" else "MELD-s",  # two test sets, two official metrics
                split=split,
                label_space=space,
                labels=[label],
                video_path=video,
                audio_path=video,
                subtitle=subtitle,
                modalities=["audio", "vision"] + (["text"] if subtitle else []),
                meta={"task": task, "speaker": column(row, "Speaker"), "dialogue_id": d, "utterance_id": u,
                      "emotion": (column(row, "Emotion") or "").lower(),
                      "sentiment": (column(row, "Sentiment") or "").lower(),
                      "season": column(row, "Season"), "episode": column(row, "Episode"),
                      "source_start": column(row, "StartTime"), "source_end": column(row, "EndTime")},
            ))
    if not found_csv:
        raise FileNotFoundError(f"no MELD label csv (train_sent_emo.csv ...) under {root}")
    return res
