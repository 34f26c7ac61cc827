"""The MMEVerse record format: one `ClipRecord` per clip, stored one JSON object per line (JSONL).

Why a flat JSONL: the paper aggregates 12 source datasets, each keeping its native label space and its
own train/val/test partition (section 3.3); one line per clip with explicit label space keeps that
information next to every sample, diffs well, and streams without loading everything.

Paths inside a manifest file are relative to the manifest's directory (absolute paths are accepted on
read); in memory, records hold absolute paths.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emotion_ros.ingest.errors import InputError
from emotion_ros.io import atomic_file
from emotion_ros.model.prompt import LABEL_SETS

SPLITS = ("train", "val", "test")
MODALITIES = ("audio", "vision", "text")  # same names as emotion_ros.ingest.window.modality_names


@dataclass(frozen=True)
class LabelSpace:
    """A dataset's native label set (MMEVerse-Bench evaluates each set in its own label space)."""

    name: str
    labels: tuple[str, ...]
    multi_label: bool = False

    def __post_init__(self):
        object.__setattr__(self, "labels", tuple(self.labels))
        if not self.name or not self.labels:
            raise ValueError("a label space needs a name and at least one label")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"label space {self.name!r} has duplicate labels")

    def to_dict(self) -> dict:
        d = {"name": self.name, "labels": list(self.labels)}
        if self.multi_label:
            d["multi_label"] = True
        return d

    def index(self, label: str) -> int:
        return self.labels.index(label)


# The label sets are defined once, in emotion_ros.model.prompt.LABEL_SETS (what the model scores).
MER6 = LabelSpace("MER6", tuple(LABEL_SETS["MER6"]))
MELD7 = LabelSpace("MELD7", tuple(LABEL_SETS["MELD7"]))
SENTIMENT3 = LabelSpace("SENTIMENT3", tuple(LABEL_SETS["SENTIMENT3"]))
IEMOCAP4 = LabelSpace("IEMOCAP4", tuple(LABEL_SETS["IEMOCAP4"]))
LABEL_SPACES: dict[str, LabelSpace] = {s.name: s for s in (MER6, MELD7, SENTIMENT3, IEMOCAP4)}


def label_space(name: str) -> LabelSpace:
    """A named label space (MER6, MELD7, SENTIMENT3, IEMOCAP4)."""
    try:
        return LABEL_SPACES[name]
    except KeyError:
        raise KeyError(f"unknown label space {name!r}; known: {sorted(LABEL_SPACES)}") from None


def think_target(description: str, label: str | Sequence[str]) -> str:
    """The Stage-2 `think` target: `<think>description</think><answer>label</answer>`."""
    answer = label if isinstance(label, str) else ", ".join(label)
    return f"<think>{description.strip()}</think><answer>{answer}</answer>"


@dataclass
class ClipRecord:
    """One clip of MMEVerse: media, subtitle, source dataset, native label space, label(s), description.

    `start_s`/`end_s` select a segment of `video_path` (IEMOCAP keeps one video per dialogue); they apply
    to `audio_path` only when it is the same file. A separate audio file always holds exactly the clip.
    """

    clip_id: str
    dataset: str
    split: str
    label_space: LabelSpace
    labels: list[str]
    video_path: str | None = None
    audio_path: str | None = None
    subtitle: str | None = None
    valence: float | None = None
    arousal: float | None = None
    description: str | None = None
    modalities: list[str] = field(default_factory=list)
    start_s: float | None = None
    end_s: float | None = None
    meta: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The single label (first one for multi-label records)."""
        return self.labels[0]

    @property
    def think_target(self) -> str | None:
        if not self.description:
            return None
        return think_target(self.description, self.labels if self.label_space.multi_label else self.label)

    def validate(self) -> None:
        """Raise ValueError describing the first problem found."""
        if not isinstance(self.clip_id, str) or not self.clip_id:
            raise ValueError("clip_id must be a non-empty string")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError("dataset must be a non-empty string")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if not isinstance(self.labels, list) or not self.labels:
            raise ValueError("labels must be a non-empty list")
        for lab in self.labels:
            if lab not in self.label_space.labels:
                raise ValueError(f"label {lab!r} not in label space {self.label_space.name} {list(self.label_space.labels)}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels contain duplicates")
        if not self.label_space.multi_label and len(self.labels) != 1:
            raise ValueError(f"label space {self.label_space.name} is single-label but got {self.labels}")
        for name in ("valence", "arousal", "start_s", "end_s"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number or null, got {v!r}")
        if self.start_s is not None and self.start_s < 0:
            raise ValueError("start_s must be >= 0")
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        for name in ("video_path", "audio_path", "subtitle", "description"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{name} must be a string or null")
        if not isinstance(self.modalities, list) or any(m not in MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be a list drawn from {MODALITIES}, got {self.modalities!r}")
        if "vision" in self.modalities and not self.video_path:
            raise ValueError("modality 'vision' listed but video_path is empty")
        if "audio" in self.modalities and not self.audio_path:
            raise ValueError("modality 'audio' listed but audio_path is empty")
        if "text" in self.modalities and not self.subtitle:
            raise ValueError("modality 'text' listed but subtitle is empty")
        if not isinstance(self.meta, dict):
            raise ValueError("meta must be an object")

    def to_dict(self, base_dir: str | os.PathLike | None = None) -> dict:
        """JSON-ready dict; media paths made relative to `base_dir` when given."""
        d = {
            "clip_id": self.clip_id,
            "dataset": self.dataset,
            "split": self.split,
            "video_path": _rel(self.video_path, base_dir),
            "audio_path": _rel(self.audio_path, base_dir),
            "subtitle": self.subtitle,
            "label_space": self.label_space.to_dict(),
            "labels": list(self.labels),
            "valence": self.valence,
            "arousal": self.arousal,
            "description": self.description,
            "modalities": list(self.modalities),
            "start_s": self.start_s,
            "end_s": self.end_s,
            "meta": self.meta,
        }
        return d

    @classmethod
    def from_dict(cls, d: dict, base_dir: str | os.PathLike | None = None) -> ClipRecord:
        """Build and validate a record; raises ValueError naming the problem."""
        if not isinstance(d, dict):
            raise ValueError(f"a record must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - _FIELDS
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise ValueError(f"missing field(s) {missing}")
        ls = d["label_space"]
        if isinstance(ls, str):
            space = label_space(ls)
        elif isinstance(ls, dict) and set(ls) <= {"name", "labels", "multi_label"}:
            if not isinstance(ls.get("labels"), list) or not all(isinstance(x, str) for x in ls["labels"]):
                raise ValueError("label_space.labels must be a list of strings")
            space = LabelSpace(str(ls.get("name", "")), tuple(ls["labels"]), bool(ls.get("multi_label", False)))
        else:
            raise ValueError("label_space must be a name or {name, labels[, multi_label]}")
        labels = d["labels"]
        if isinstance(labels, str):
            labels = [labels]
        rec = cls(
            clip_id=d["clip_id"],
            dataset=d["dataset"],
            split=d["split"],
            label_space=space,
            labels=labels,
            video_path=_abs(d.get("video_path"), base_dir),
            audio_path=_abs(d.get("audio_path"), base_dir),
            subtitle=d.get("subtitle"),
            valence=d.get("valence"),
            arousal=d.get("arousal"),
            description=d.get("description"),
            modalities=d.get("modalities", []),
            start_s=d.get("start_s"),
            end_s=d.get("end_s"),
            meta=d.get("meta") or {},
        )
        rec.validate()
        return rec


_FIELDS = {
    "clip_id", "dataset", "split", "video_path", "audio_path", "subtitle", "label_space", "labels",
    "valence", "arousal", "description", "modalities", "start_s", "end_s", "meta",
}
_REQUIRED = ("clip_id", "dataset", "split", "label_space", "labels")


class ManifestError(InputError):
    """A malformed manifest; the message names the file and line."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__("manifest_malformed", f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem}" if self.line is not None else f"{self.path}: {self.problem}"


def _rel(path: str | None, base_dir) -> str | None:
    if path is None or base_dir is None:
        return path
    try:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(base_dir))
    except ValueError:  # another drive on Windows
        return os.path.abspath(path)


def _abs(path, base_dir) -> str | None:
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ValueError(f"media path must be a non-empty string or null, got {path!r}")
    if base_dir is None or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


def read_manifest(path: str | os.PathLike, *, check_files: bool = False) -> list[ClipRecord]:
    """Read and validate a JSONL manifest. Blank lines and lines starting with '#' are skipped.

    Raises ManifestError (an InputError, reason 'manifest_malformed') naming file and line for bad JSON,
    bad fields, duplicate clip ids, and (with check_files) media files that do not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, None, "manifest file not found")
    base = path.parent.resolve()
    records: list[ClipRecord] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise ManifestError(path, lineno, f"invalid JSON ({e.msg} at column {e.colno})") from None
            try:
                rec = ClipRecord.from_dict(obj, base)
            except (ValueError, KeyError, TypeError) as e:
                cid = obj.get("clip_id") if isinstance(obj, dict) else None
                who = f" (clip {cid!r})" if cid else ""
                raise ManifestError(path, lineno, f"{e}{who}") from None
            if rec.clip_id in seen:
                raise ManifestError(path, lineno, f"duplicate clip_id {rec.clip_id!r} (first on line {seen[rec.clip_id]})")
            seen[rec.clip_id] = lineno
            if check_files:
                for p in {rec.video_path, rec.audio_path} - {None}:
                    if not os.path.isfile(p):
                        raise ManifestError(path, lineno, f"media file not found: {p}")
            records.append(rec)
    return records


def write_manifest(path: str | os.PathLike, records: Iterable[ClipRecord]) -> int:
    """Validate and write records as JSONL (media paths relative to the manifest dir). Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    seen: set[str] = set()
    n = 0
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:  # a failed write keeps the old file
        for rec in records:
            try:
                rec.validate()
            except ValueError as e:
                raise ManifestError(path, n + 1, f"{e} (clip {rec.clip_id!r})") from None
            if rec.clip_id in seen:
                raise ManifestError(path, n + 1, f"duplicate clip_id {rec.clip_id!r}")
            seen.add(rec.clip_id)
            f.write(json.dumps(rec.to_dict(base), ensure_ascii=False, allow_nan=False) + "\n")
            n += 1
    return n
