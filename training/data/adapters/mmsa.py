"""CMU-MOSI, CMU-MOSEI and CH-SIMS in the MMSA raw layout (the layout the MMSA toolkit distributes).

Expected layout:

    <root>/
      label.csv               columns: video_id, clip_id, text, label, [label_T, label_A, label_V,]
                              annotation, mode   (mode: train / valid / test)
      Raw/{video_id}/{clip_id}.mp4

`label` is the sentiment score: [-3, 3] for MOSI/MOSEI, [-1, 1] for SIMS. It becomes 3-way sentiment
(SENTIMENT3): score < 0 negative, score == 0 neutral, score > 0 positive (`neutral_band` widens the
neutral zone), and is kept as `valence`. CH-SIMS names files with a zero-padded clip id
(Raw/{video_id}/0001.mp4) while label.csv may hold 1: both spellings are tried, and the CMU raw naming
Raw/{video_id}_{clip_id}.mp4 (e.g. Video/Segmented) is tried as well. mode valid -> split val.
"""
from __future__ import annotations

import os

from emotion_ros_training.data.adapters import AdapterResult, column, find_media, read_csv, sentiment3
from emotion_ros_training.data.manifest import SENTIMENT3, ClipRecord

MODES = {"train": "train", "valid": "val", "val": "val", "dev": "val", "test": "test"}
SCALES = {"CMU-MOSI": "-3..3", "CMU-MOSEI": "-3..3", "CH-SIMS": "-1..1"}


def build(root: str | os.PathLike, dataset: str = "CMU-MOSI", neutral_band: float = 0.0,
          label_file: str = "label.csv", raw_dir: str = "Raw") -> AdapterResult:
    root = os.path.abspath(root)
    csv_path = os.path.join(root, label_file)
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"no {label_file} under {root}")
    raw = os.path.join(root, raw_dir)
    res = AdapterResult()
    prefix = dataset.lower().replace("-", "").replace("cmu", "")
    for row in read_csv(csv_path):
        vid, cid = column(row, "video_id"), column(row, "clip_id")
        mode = MODES.get((column(row, "mode") or "").lower())
        try:
            score = float(column(row, "label") or "nan")
        except ValueError:
            score = float("nan")
        if not vid or cid is None or mode is None or score != score:
            res.skipped["bad_row"] += 1
            continue
        stems = [cid, cid.zfill(4)] if cid.isdigit() else [cid]
        video = find_media([os.path.join(raw, vid)], stems) or find_media(
            [raw, os.path.join(raw, "Video", "Segmented")], [f"{vid}_{cid}"])
        if video is None:
            res.skipped["missing_media"] += 1
            continue
        text = column(row, "text") or None
        res.records.append(ClipRecord(
            clip_id=f"{prefix}_{vid}_{cid}",
            dataset=dataset,
            split=mode,
            label_space=SENTIMENT3,
            labels=[sentiment3(score, neutral_band)],
            video_path=video,
            audio_path=video,
            subtitle=text,
            valence=score,
            modalities=["audio", "vision"] + (["text"] if text else []),
            meta={"video_id": vid, "clip_id": cid, "score": score, "va_scale": SCALES.get(dataset, "native"),
                  "annotation": column(row, "annotation"),
                  **{k: float(v) for k in ("label_T", "label_A", "label_V")
                     if (v := column(row, k)) not in (None, "") and _isfloat(v)}},
        ))
    return res


def _isfloat(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
