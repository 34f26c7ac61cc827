"""Ground-truth annotations of a bag: what emotion the person shows, when.

A bag's annotation file sits next to it (`<bag>/annotations.json`, or `<bag>.annotations.json|.csv`)
or is passed explicitly. Two record kinds, freely mixed:

* time range:    {"start": 1.5, "end": 4.0, "label": "happy"}
* utterance:     {"id": "utt_03", "label": "sad", "start": 4.0, "end": 6.2, "transcript": "..."}
                 An utterance without start/end covers the whole bag (one clip = one bag).

Optional fields of any record: "labels" (list: multi-label sets such as MAFW-m/BOLD, or free
open-vocabulary words for OV-MERD+; defaults to [label]), "reasoning" (reference explanation text),
"transcript", "id". A record needs "label" or a non-empty "labels".

JSON file:
    {"version": 1,
     "t0_ns": 1700000000000000000,      # absolute time (ns) of start=0; default: the bag's first message
     "dataset": "MER2023",              # test-set name: picks the paper metric (emotion_ros.evaluation.metrics)
     "label_space": ["neutral", "happy", ...],   # optional; labels outside it are an error
     "records": [ ... ]}
A bare JSON list of records is accepted too.

CSV file: a header row with at least start,end,label (columns id, labels, reasoning, transcript
optional; "labels" separated by ";"), and optional leading comment lines "# key=value" for t0_ns,
dataset and label_space (";"-separated).

Times are seconds relative to t0_ns, so files stay readable; absolute_ranges() gives integer ns.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from emotion_ros.io import write_text

SCHEMA_VERSION = 1
_RECORD_KEYS = {"start", "end", "label", "labels", "reasoning", "transcript", "id"}


class AnnotationError(ValueError):
    """An annotation file does not follow the schema; the message names the file, record and field."""


@dataclass
class Segment:
    label: str
    start: float | None = None   # seconds from t0; None = whole bag
    end: float | None = None
    labels: list[str] = field(default_factory=list)
    reasoning: str = ""
    transcript: str = ""
    id: str = ""

    @property
    def label_set(self) -> list[str]:
        return self.labels or [self.label]


@dataclass
class Annotations:
    segments: list[Segment]
    t0_ns: int | None = None
    dataset: str = ""
    label_space: list[str] = field(default_factory=list)
    source: str = ""

    def resolve(self, bag_start_ns: int, bag_end_ns: int) -> list[tuple[int, int, Segment]]:
        """Absolute (start_ns, end_ns, segment) for every segment; utterances without times span the bag."""
        t0 = self.t0_ns if self.t0_ns is not None else bag_start_ns
        out = []
        for seg in self.segments:
            if seg.start is None:
                out.append((bag_start_ns, bag_end_ns, seg))
            else:
                out.append((t0 + round(seg.start * 1e9), t0 + round(seg.end * 1e9), seg))
        return out

    def to_dict(self) -> dict:
        recs = []
        for seg in self.segments:
            rec = {k: v for k, v in asdict(seg).items() if v not in (None, "", [])}
            if rec.get("labels") == [seg.label]:
                rec.pop("labels")
            recs.append(rec)
        out: dict[str, Any] = {"version": SCHEMA_VERSION}
        if self.t0_ns is not None:
            out["t0_ns"] = int(self.t0_ns)
        if self.dataset:
            out["dataset"] = self.dataset
        if self.label_space:
            out["label_space"] = list(self.label_space)
        out["records"] = recs
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix == ".csv":
            write_text(path, self.to_csv())
        else:
            write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return path

    def to_csv(self) -> str:
        buf = io.StringIO()
        if self.t0_ns is not None:
            buf.write(f"# t0_ns={int(self.t0_ns)}\n")
        if self.dataset:
            buf.write(f"# dataset={self.dataset}\n")
        if self.label_space:
            buf.write(f"# label_space={';'.join(self.label_space)}\n")
        writer = csv.DictWriter(buf, fieldnames=["start", "end", "label", "labels", "reasoning", "transcript", "id"])
        writer.writeheader()
        for s in self.segments:
            writer.writerow({"start": "" if s.start is None else s.start, "end": "" if s.end is None else s.end,
                             "label": s.label, "labels": ";".join(s.labels), "reasoning": s.reasoning,
                             "transcript": s.transcript, "id": s.id})
        return buf.getvalue()


def _fail(source: str, where: str, message: str):
    raise AnnotationError(f"{source}: {where}: {message}")


def _number(value, source, where, name):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        _fail(source, where, f"'{name}' must be a number of seconds, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        _fail(source, where, f"'{name}' must be a number of seconds, not {value!r}")
    if number != number:
        _fail(source, where, f"'{name}' is NaN")
    return number


def parse_records(records: Sequence[Mapping], *, source: str = "<annotations>", t0_ns=None, dataset: str = "",
                  label_space: Sequence[str] = ()) -> Annotations:
    """Validate records against the schema and build Annotations (errors name the record and field)."""
    if not isinstance(records, Sequence) or isinstance(records, (str, bytes)):
        _fail(source, "records", "must be a list of objects")
    if t0_ns is not None:
        try:
            t0_ns = int(t0_ns)
        except (TypeError, ValueError):
            _fail(source, "t0_ns", f"must be an integer of nanoseconds, not {t0_ns!r}")
    space = [str(x) for x in (label_space or [])]
    segments = []
    for i, rec in enumerate(records):
        where = f"record {i}"
        if not isinstance(rec, Mapping):
            _fail(source, where, f"must be an object, not {type(rec).__name__}")
        unknown = set(rec) - _RECORD_KEYS
        if unknown:
            _fail(source, where, f"unknown field(s) {sorted(unknown)} (allowed: {sorted(_RECORD_KEYS)})")
        labels = rec.get("labels") or []
        if isinstance(labels, str):
            labels = [x for x in labels.split(";") if x.strip()]
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            _fail(source, where, "'labels' must be a list of strings")
        labels = [x.strip() for x in labels]
        label = rec.get("label") or (labels[0] if labels else "")
        if not isinstance(label, str) or not label.strip():
            _fail(source, where, "needs a non-empty 'label' (or 'labels')")
        label = label.strip()
        start = _number(rec.get("start"), source, where, "start")
        end = _number(rec.get("end"), source, where, "end")
        if (start is None) != (end is None):
            _fail(source, where, "give both 'start' and 'end', or neither (= the whole bag)")
        if start is not None and end <= start:
            _fail(source, where, f"'end' ({end}) must be after 'start' ({start})")
        if space:
            bad = [x for x in [label, *labels] if x not in space]
            if bad:
                _fail(source, where, f"label(s) {bad} are not in label_space {space}")
        segments.append(Segment(label=label, start=start, end=end, labels=labels,
                                reasoning=str(rec.get("reasoning") or ""),
                                transcript=str(rec.get("transcript") or ""), id=str(rec.get("id") or "")))
    if not segments:
        _fail(source, "records", "no records: an annotation file must label at least one segment")
    return Annotations(segments=segments, t0_ns=t0_ns, dataset=str(dataset or ""), label_space=space, source=source)


def parse_json(data: Any, source: str = "<annotations>") -> Annotations:
    if isinstance(data, list):
        return parse_records(data, source=source)
    if not isinstance(data, Mapping):
        _fail(source, "top level", "must be an object with 'records' or a list of records")
    version = data.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        _fail(source, "version", f"unsupported version {version!r} (this code reads {SCHEMA_VERSION})")
    unknown = set(data) - {"version", "t0_ns", "dataset", "label_space", "records", "bag"}
    if unknown:
        _fail(source, "top level", f"unknown field(s) {sorted(unknown)}")
    if "records" not in data:
        _fail(source, "top level", "missing 'records'")
    space = data.get("label_space") or []
    if not isinstance(space, list) or not all(isinstance(x, str) for x in space):
        _fail(source, "label_space", "must be a list of strings")
    return parse_records(data["records"], source=source, t0_ns=data.get("t0_ns"),
                         dataset=data.get("dataset", ""), label_space=space)


def parse_csv(text: str, source: str = "<annotations>") -> Annotations:
    meta: dict[str, str] = {}
    lines = text.splitlines()
    body = []
    for line in lines:
        if line.startswith("#") and not body:
            key, _, value = line[1:].strip().partition("=")
            if key.strip():
                meta[key.strip()] = value.strip()
        elif line.strip():
            body.append(line)
    if not body:
        _fail(source, "csv", "no header row")
    reader = csv.DictReader(io.StringIO("\n".join(body)))
    missing = {"start", "end", "label"} - set(reader.fieldnames or [])
    if missing:
        _fail(source, "csv header", f"missing column(s) {sorted(missing)}")
    records = [{k: v for k, v in row.items() if k and v not in (None, "")} for row in reader]
    space = [x for x in meta.get("label_space", "").split(";") if x]
    return parse_records(records, source=source, t0_ns=meta.get("t0_ns"), dataset=meta.get("dataset", ""),
                         label_space=space)


def load(path: str | Path) -> Annotations:
    """Read a JSON or CSV annotation file (by extension), validating it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise AnnotationError(f"{path}: cannot read the annotation file ({err.strerror or err})") from err
    if path.suffix.lower() == ".csv":
        return parse_csv(text, source=str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from err
    return parse_json(data, source=str(path))


def candidates_for_bag(bag: str | Path) -> list[Path]:
    """The annotation files a bag may have by naming convention, in the order they are looked for:
    `<folder>/annotations.json|.csv` for a bag folder, `<stem>.annotations.json|.csv` beside it (a bare
    `rec.mcap` -> `rec.annotations.json`)."""
    bag = Path(bag)
    candidates = []
    if bag.is_dir():
        candidates += [bag / "annotations.json", bag / "annotations.csv"]
    stem = bag.with_suffix("") if bag.suffix in (".mcap", ".db3") else bag
    candidates += [Path(f"{stem}.annotations.json"), Path(f"{stem}.annotations.csv")]
    return candidates


def find_for_bag(bag: str | Path) -> Path | None:
    """The annotation file that belongs to a bag by naming convention, or None."""
    return next((c for c in candidates_for_bag(bag) if c.is_file()), None)


# ---------------------------------------------------------------------------------------- MMEVerse clips
def _field(record, name, default=None):
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


def from_clip_record(record, t0_ns: int, duration_s: float) -> Annotations:
    """Annotations of a bag made from one MMEVerse-format clip (emotion_ros_training.data.manifest.ClipRecord shape:
    video_path, audio_path, subtitle, dataset, label_space, labels, description, split).

    One utterance record spans the clip; `labels` keeps every label (multi-label / OV sets) and the
    clip's multimodal description becomes the reference reasoning.
    """
    labels = _field(record, "labels") or []
    if isinstance(labels, str):
        labels = [labels]
    labels = [str(x) for x in labels]
    if not labels:
        raise AnnotationError(f"clip {_field(record, 'video_path')}: has no labels")
    space = _field(record, "label_space") or []
    if hasattr(space, "labels"):  # emotion_ros_training.data.manifest.LabelSpace
        space = list(space.labels)
    elif isinstance(space, Mapping):
        space = list(space.get("labels") or [])
    elif isinstance(space, str):  # a bare label-space name: no label list to check against
        space = []
    seg = Segment(label=labels[0], start=0.0, end=float(duration_s), labels=labels if len(labels) > 1 else [],
                  reasoning=str(_field(record, "description") or ""),
                  transcript=str(_field(record, "subtitle") or ""),
                  id=str(_field(record, "clip_id") or _field(record, "id") or Path(str(_field(record, "video_path") or "clip")).stem))
    return Annotations(segments=[seg], t0_ns=int(t0_ns), dataset=str(_field(record, "dataset") or ""),
                       label_space=[str(x) for x in space])


def merge(parts: Iterable[Annotations]) -> Annotations:
    """Concatenate annotations of consecutive clips written into one bag (all must share t0_ns)."""
    parts = list(parts)
    if not parts:
        raise AnnotationError("nothing to merge")
    t0s = {p.t0_ns for p in parts}
    if len(t0s) != 1:
        raise AnnotationError("cannot merge annotations with different t0_ns")
    space: list[str] = []
    for p in parts:
        space += [x for x in p.label_space if x not in space]
    return Annotations(segments=[s for p in parts for s in p.segments], t0_ns=parts[0].t0_ns,
                       dataset=parts[0].dataset, label_space=space)
