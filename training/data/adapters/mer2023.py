"""MER2023 (Lian et al. 2023): Chinese TV/film clips, 6 discrete emotions + valence.

Expected layout (the MER2023 release):

    <root>/
      mer2023train/train-label.csv        columns: name, discrete, valence
      mer2023train/train/{name}.avi|.mp4
      test-labels/test1-label.csv         (and test2/test3) columns: name, discrete[, valence]
      test1/{name}.avi|.mp4                (test2/, test3/ likewise; also looked up under mer2023train/)
      transcription-engchi-polish.csv     optional subtitles; columns: name, chinese, english
                                          (or transcription.csv with name, sentence)

discrete values (neutral, angry, happy, sad, worried, surprise) form the MER6 label space. test1 is
MER-MULTI (the paper's MER2023 test set), test2 MER-NOISE, test3 the semi-supervised set; all map to
split "test" with meta["subset"] telling which. Valence is kept on its native scale (meta va_scale).
"""
from __future__ import annotations

import os

from emotion_ros_training.data.adapters import AdapterResult, column, find_media, read_csv
from emotion_ros_training.data.manifest import MER6, ClipRecord

LABEL_ALIASES = {"surprised": "surprise", "anger": "angry", "happiness": "happy", "sadness": "sad"}


def _subtitles(root: str, language: str) -> dict[str, str]:
    for name, cols in (("transcription-engchi-polish.csv", (language, "english", "chinese")),
                       ("transcription.csv", ("sentence", language))):
        for base in (root, os.path.join(root, "mer2023train")):
            p = os.path.join(base, name)
            if os.path.isfile(p):
                return {column(r, "name") or "": column(r, *cols) or "" for r in read_csv(p)}
    return {}


def build(root: str | os.PathLike, language: str = "english",
          subsets: tuple[str, ...] = ("train", "test1", "test2", "test3")) -> AdapterResult:
    root = os.path.abspath(root)
    res = AdapterResult()
    subs = _subtitles(root, language)
    label_files = {
        "train": [os.path.join(root, "mer2023train", "train-label.csv"), os.path.join(root, "train-label.csv")],
    }
    for t in ("test1", "test2", "test3"):
        label_files[t] = [os.path.join(root, "test-labels", f"{t}-label.csv"), os.path.join(root, f"{t}-label.csv")]
    video_dirs = {
        "train": [os.path.join(root, "mer2023train", "train"), os.path.join(root, "train")],
    }
    for t in ("test1", "test2", "test3"):
        video_dirs[t] = [os.path.join(root, t), os.path.join(root, "mer2023train", t)]
    found = False
    for subset in subsets:
        path = next((p for p in label_files[subset] if os.path.isfile(p)), None)
        if path is None:
            continue
        found = True
        for row in read_csv(path):
            name = column(row, "name")
            label = (column(row, "discrete") or "").lower()
            label = LABEL_ALIASES.get(label, label)
            if not name:
                res.skipped["bad_row"] += 1
                continue
            if label not in MER6.labels:
                res.skipped["label_not_in_space"] += 1
                continue
            video = find_media(video_dirs[subset], [name])
            if video is None:
                res.skipped["missing_media"] += 1
                continue
            val = column(row, "valence")
            try:
                valence = float(val) if val not in (None, "") else None
            except ValueError:
                valence = None
            subtitle = subs.get(name) or None
            res.records.append(ClipRecord(
                clip_id=f"mer2023_{name}",
                dataset="MER2023",
                split="train" if subset == "train" else "test",
                label_space=MER6,
                labels=[label],
                video_path=video,
                audio_path=video,
                subtitle=subtitle,
                valence=valence,
                modalities=["audio", "vision"] + (["text"] if subtitle else []),
                meta={"subset": subset, "va_scale": "-5..5"},
            ))
    if not found:
        raise FileNotFoundError(f"no MER2023 label csv (mer2023train/train-label.csv ...) under {root}")
    return res
