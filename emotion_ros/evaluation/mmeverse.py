"""MMEVerse-Bench's released annotation files, read directly: one file per source dataset -> test-set records.

Layout (the official repository's eval dataset classes, `minigpt4/datasets/datasets/mer_eval_datasets.py`,
and its dataset configs):

    <root>/<NAME>_merged.csv         one row per clip (also .json = pandas records/columns, .jsonl = lines);
                                     must have a `video_id` column
    <root>/video/<video_id>.mp4      the clip (video + audio)
    <root>/<NAME>_peak.json          peak frame per clip (not needed here)

One file can hold several test sets (MER2024_merged: MER2023 and MER2024; MELD_merged: MELD-e and MELD-s;
MAFW_merged: MAFW and MAFW-m; MC-EIU_merged: MC-EIU and MC-EIU-i). `SPECS` gives per test set the label
and subtitle columns, the rows the eval dataset class loads ("eval" rows) and the rows `score.sh` then
scores ("scored" rows: the scorers keep `mode == "test"`, MER2023 `test1`, MER2024 `other`, IEMOCAP
`Session5`). Where the two differ (CAER, DFEW, E3, MC-EIU, MC-EIU-i, MELD-e, MELD-s, MOSI, MOSEI: the class
loads validation rows too) the stored official code does not settle which the paper's numbers used; the
default is the scored rows, `rows="eval"` takes the class's.

OV-MERD+ has no label column: its ground truth is the official `check-result-openset-chi-translate.csv`
(columns `name`, `openset`), looked for next to the annotation file.

The output is one dict per clip in the project's manifest record format (emotion_ros_training.data.manifest
ClipRecord.from_dict), `split` "test", the source row's mode in `meta.mode`. The label space of a set is
the label list its official instruction names (spelled as the file spells them) plus any other label found
in the file, so the label path scores the labels the set uses. Multi-label truths are split at ';' and
',' and lower-cased (as the official mAP does); a sentiment label that is a number is taken as the
continuous score (valence, for the AffectGPT WAF) and its sign as the label. Rows that cannot become a record (no label, no
video file) are counted per reason, never skipped silently.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from emotion_ros.evaluation.wheels import parse_list

OV_TRUTH_FILE = "check-result-openset-chi-translate.csv"
VIDEO_DIR = "video"


class AnnotationFileError(ValueError):
    """An MMEVerse annotation file that cannot be read or lacks a needed column; names file and column."""


@dataclass(frozen=True)
class SetSpec:
    """How one test set is read from its source dataset's annotation file."""

    name: str
    files: tuple[str, ...]                    # annotation file stems (`<stem>_merged.*`), normalised
    label: str | None                         # label column (None: OV-MERD+, truth from OV_TRUTH_FILE)
    text: str                                 # subtitle column
    eval_rows: tuple[str, tuple[str, ...]] | None     # (column, values) the eval dataset class keeps
    scored_rows: tuple[str, tuple[str, ...]] | None   # (column, values) score.sh keeps on top of that
    vocabulary: tuple[str, ...]               # the labels the official instruction lists
    multi_label: bool = False
    mode_column: str = "mode"


_SENT = ("Neutral", "Negative", "Positive")
_MAFW = ("anger", "anxiety", "contempt", "disappointment", "disgust", "fear", "happiness", "helplessness",
         "neutral", "sadness", "surprise")
_BOLD = ("Affection", "Anger", "Annoyance", "Anticipation", "Aversion", "Confidence", "Disapproval",
         "Disconnection", "Disquietment", "Doubt/Confusion", "Embarrassment", "Engagement", "Esteem",
         "Excitement", "Fatigue", "Fear", "Happiness", "Pain", "Peace", "Pleasure", "Sadness", "Sensitivity",
         "Suffering", "Surprise", "Sympathy", "Yearning")
_OV = ("angry", "happy", "joyful", "dissatisfied", "worry", "positive", "excited", "surprised", "concern",
       "relaxed", "sad", "serious", "nervous", "pleasant", "accusation", "concerned", "warning", "confused",
       "delighted")
_MER = ("angry", "happy", "neutral", "sad", "surprise", "worried")
_TEST_VAL = ("test", "validation")

SPECS: dict[str, SetSpec] = {s.name: s for s in (
    SetSpec("MER2023", ("mer2024",), "emotion_label", "chinese", ("MER2023_mode", ("test1", "test2", "test3")),
            ("MER2023_mode", ("test1",)), _MER, mode_column="MER2023_mode"),
    SetSpec("MER2024", ("mer2024",), "emotion_label", "chinese", ("MER2024_mode", ("test_semi",)),
            ("MER2023_mode", ("other",)), _MER, mode_column="MER2023_mode"),
    SetSpec("MELD", ("meld",), "Emotion", "text", ("mode", ("test", "dev")), ("mode", ("test",)),
            ("anger", "disgust", "fear", "joy", "neutral", "sad", "surprise")),
    SetSpec("IEMOCAP", ("iemocap",), "official_label", "text", ("session", ("Session5",)), ("session", ("Session5",)),
            ("Anger", "Sadness", "Happiness"), mode_column="session"),
    SetSpec("MOSI", ("cmumosi",), "sentiment_label", "text", ("mode", ("test", "valid")), ("mode", ("test",)), _SENT),
    SetSpec("MOSEI", ("cmumosei",), "sentiment_label", "text", ("mode", ("test", "valid")), ("mode", ("test",)), _SENT),
    SetSpec("SIMS", ("chsims", "sims"), "val_label", "english", None, None, ("Positive", "Negative")),
    SetSpec("SIMS-v2", ("chsimsv2s", "chsimsv2"), "annotation", "text", ("mode", ("test",)), ("mode", ("test",)), _SENT),
    SetSpec("OV-MERD+", ("ovmerd+", "ovmerdplus", "ovmerd"), None, "sentence", None, None, _OV, multi_label=True),
    SetSpec("CAER", ("caer",), "emotion_label", "text_whisper", ("mode", _TEST_VAL), ("mode", ("test",)),
            ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")),
    SetSpec("E3", ("e3",), "emotion", "conversation", ("mode", ("test", "val")), ("mode", ("test",)),
            ("angry", "disgusted", "happy", "sad", "sarcastic", "scared", "shy", "surprised")),
    SetSpec("DFEW", ("dfew",), "label", "sentence", ("mode", _TEST_VAL), ("mode", ("test",)),
            ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")),
    SetSpec("MAFW", ("mafw",), "single_label", "text_whisper", ("mode", ("test",)), ("mode", ("test",)), _MAFW),
    SetSpec("MAFW-m", ("mafw",), "multi_label", "text_whisper", ("mode", ("test",)), None, _MAFW, multi_label=True),
    SetSpec("BOLD", ("bold",), "Emotion_label", "text_whisper", ("mode", ("val",)), None, _BOLD, multi_label=True),
    SetSpec("MELD-s", ("meld",), "Sentiment", "text", ("mode", ("test", "dev")), ("mode", ("test",)), _SENT),
    SetSpec("MC-EIU-i", ("mceiu",), "intent", "Subtitle", ("mode", _TEST_VAL), ("mode", ("test",)),
            ("acknowledging", "agreeing", "consoling", "encouraging", "neutral", "questioning", "suggesting", "wishing")),
    SetSpec("MC-EIU", ("mceiu",), "emotion", "Subtitle", ("mode", _TEST_VAL), ("mode", ("test",)),
            ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")),
)}
_IEMOCAP_KEEP = ("anger", "neutral", "sadness", "happiness", "excited")  # the class's filter (case as written)


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "+")


def sets_of_file(path: str | os.PathLike) -> list[str]:
    """The test sets an annotation file `<NAME>_merged.<ext>` holds (by its name), [] if none."""
    stem = Path(path).name
    m = re.match(r"(.+)_merged\.(csv|json|jsonl)$", stem, re.IGNORECASE)
    if not m:
        return []
    key = _norm(m.group(1))
    return [s.name for s in SPECS.values() if key in s.files]


def find_annotation_files(root: str | os.PathLike) -> list[tuple[Path, list[str]]]:
    """Every `*_merged.{csv,json,jsonl}` under `root` that names a benchmark source dataset."""
    out = []
    for path in sorted(Path(root).rglob("*_merged.*")):
        sets = sets_of_file(path)
        if sets and path.is_file():
            out.append((path, sets))
    return out


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def read_table(path: str | os.PathLike) -> list[dict]:
    """Rows of a .csv / .json (list of records or pandas' column orient) / .jsonl annotation file."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                return [dict(r) for r in csv.DictReader(f)]
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError) as err:
        raise AnnotationFileError(f"{path}: cannot read it ({err})") from err
    if isinstance(data, list):
        return [dict(r) for r in data]
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):  # {column: {row: value}}
        index = list(next(iter(data.values())).keys()) if data else []
        return [{col: data[col].get(i) for col in data} for i in index]
    raise AnnotationFileError(f"{path}: expected a list of rows or pandas' {{column: {{row: value}}}} layout")


def _label_space(spec: SetSpec, seen: list[str]) -> list[str]:
    """The instruction's labels, spelled as the file spells them where it uses them (the official
    accuracy compares the truth unchanged), then the file's labels the instruction does not list."""
    by_lower: dict[str, list[str]] = {}
    for lab in seen:
        by_lower.setdefault(lab.lower(), []).append(lab)
    labels = []
    for word in spec.vocabulary:
        labels += by_lower.pop(word.lower(), [word])
    for spellings in by_lower.values():
        labels += spellings
    return labels


def _as_score(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _ov_truth(annotation: Path) -> dict[str, list[str]]:
    path = annotation.parent / OV_TRUTH_FILE
    if not path.is_file():
        raise AnnotationFileError(f"{annotation}: OV-MERD+ needs the official {OV_TRUTH_FILE} beside it")
    out = {}
    for row in read_table(path):
        if "name" not in row or "openset" not in row:
            raise AnnotationFileError(f"{path}: needs columns 'name' and 'openset'")
        out[str(row["name"])] = [str(w).strip() for w in parse_list(row["openset"])]
    return out


def records_from_annotation(path: str | os.PathLike, set_name: str, rows: str = "scored",
                            check_media: bool = True) -> tuple[list[dict], Counter]:
    """Manifest-format record dicts of one test set from its annotation file, and the per-reason counts of
    rows that could not become records. rows: "scored" (what score.sh scores) or "eval" (the class's rows)."""
    if set_name not in SPECS:
        raise ValueError(f"unknown test set {set_name!r}; known: {list(SPECS)}")
    if rows not in ("scored", "eval"):
        raise ValueError("rows must be 'scored' or 'eval'")
    spec, path = SPECS[set_name], Path(path)
    table = read_table(path)
    needed = ["video_id", spec.text] + ([spec.label] if spec.label else [])
    for filt in (spec.eval_rows, spec.scored_rows):
        if filt:
            needed.append(filt[0])
    if set_name == "MOSEI":
        needed.append("clip_id")
    if table:
        absent = [c for c in dict.fromkeys(needed) if c not in table[0]]
        if absent:
            raise AnnotationFileError(f"{path}: {set_name} needs column(s) {absent}")
    ov = _ov_truth(path) if spec.label is None else None
    drops: Counter = Counter()
    staged = []
    for row in table:
        keep = [spec.eval_rows] + ([spec.scored_rows] if rows == "scored" else [])
        if any(f and str(row.get(f[0])) not in f[1] for f in keep):
            continue  # not a row of this test set (other split / other set of the same file)
        vid = str(row["video_id"])
        clip = f"{vid}_{row['clip_id']}" if set_name == "MOSEI" else vid
        valence = None
        if spec.label is None:
            labels = ov.get(clip)
            if labels is None:
                drops["no OV-MERD+ ground truth for the clip"] += 1
                continue
        else:
            raw = row.get(spec.label)
            if _missing(raw):
                drops[f"empty {spec.label}"] += 1
                continue
            if set_name == "IEMOCAP":
                if raw not in _IEMOCAP_KEEP:
                    continue  # the class keeps four emotions only
                raw = "happiness" if raw == "excited" else raw
            score = _as_score(raw) if spec.vocabulary == _SENT or set_name == "SIMS" else None
            if score is not None:  # a continuous sentiment score: its sign is the label, itself the valence
                valence, raw = score, ("Positive" if score > 0 else "Negative" if score < 0 else "Neutral")
            labels = ([s.strip().lower() for s in re.split(r"[;,]", str(raw)) if s.strip()] if spec.multi_label
                      else [str(raw)])
        labels = list(dict.fromkeys(labels))
        if not labels:
            drops["empty ground truth"] += 1
            continue
        video = path.parent / VIDEO_DIR / f"{clip}.mp4"
        if check_media and not video.is_file():
            drops["video file missing"] += 1
            continue
        text = row.get(spec.text)
        staged.append((clip, labels, str(video), None if _missing(text) else str(text), valence,
                       str(row.get(spec.mode_column, "test"))))
    seen = list(dict.fromkeys(lab for _c, labels, *_ in staged for lab in labels))
    space = {"name": set_name, "labels": _label_space(spec, seen), "multi_label": spec.multi_label}
    records, ids = [], set()
    for clip, labels, video, text, valence, mode in staged:
        if clip in ids:
            drops["duplicate video_id"] += 1
            continue
        ids.add(clip)
        records.append({
            "clip_id": f"{set_name}/{clip}", "dataset": set_name, "split": "test", "label_space": space,
            "labels": labels, "video_path": video, "audio_path": video, "subtitle": text, "valence": valence,
            "modalities": ["audio", "vision"] + (["text"] if text else []),
            "meta": {"video_id": clip, "mode": mode, "source": str(path)},
        })
    return records, drops
