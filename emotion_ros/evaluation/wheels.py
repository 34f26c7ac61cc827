"""The official emotion-wheel assets of MER-UniBench / MMEVerse-Bench, read from a user-given directory.

The files come with the official repositories (Emotion-LLaMA-v2 `evaluation/emotion_wheel/`, AffectGPT
`emotion_wheel/`); the project ships none of them. Formats, and the reading rules of the official scoring
code (`evaluation/score_hit_ov.py`) that this module follows:

- ``wheel1.xlsx`` .. ``wheel5.xlsx``: first sheet, header row with columns ``level1``, ``level2``,
  ``level3``; empty (merged) cells repeat the previous row's value of that column.
- ``synonym.xlsx``: first sheet, columns ``word_run1..word_run8`` (a wheel word) and
  ``synonym_run1..synonym_run8`` (a list-like string of its synonyms, e.g. ``"['glad', 'cheerful']"``).
- ``format.csv``: columns ``name`` (a word of the synonym table) and ``format`` (its surface variants,
  comma separated).

A predicted or true emotion word maps, on one wheel, to a level-1 emotion of that wheel (or to nothing):
surface form -> names (format.csv) -> wheel words (synonym.xlsx) -> the alphabetically first of them that
is on the wheel -> its level-1 emotion. Words that map to nothing are dropped; "neutral" is on no wheel.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

WHEEL_NAMES = ("wheel1", "wheel2", "wheel3", "wheel4", "wheel5")
SYNONYM_RUNS = 8

# pandas' default NA strings: the official code reads these files with pandas, which turns such cells
# into NaN (= empty). Matching it keeps a cell like "None" from becoming a word here but not there.
_NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})


class WheelError(ValueError):
    """An emotion-wheel asset is missing or not in the official format; the message names file and row."""


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and value in _NA_STRINGS


def parse_list(value) -> list[str]:
    """The official list parser: a list stays a list; a string loses one leading '[' and one trailing ']'
    and is split on quotes and commas (not on spaces); pieces are stripped, empty ones dropped."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if _is_missing(value):
        return []
    text = str(value)
    if text[:1] == "[":
        text = text[1:]
    if text[-1:] == "]":
        text = text[:-1]
    return [piece.strip() for piece in re.split(r"['\",]", text) if piece.strip()]


def response_items(response) -> list[str]:
    """The items of a model response as the official hit-rate/OV scoring sees them: the text is wrapped
    in brackets and split by parse_list (so "happy, sad" -> two items, "I feel happy" -> one item); a
    list of labels (the label path) is taken as it is. Items are lower-cased and stripped."""
    if isinstance(response, (list, tuple)):
        items = list(response)
    elif response is None:
        items = []
    else:
        items = parse_list(f"[{response}]")
    return [str(item).lower().strip() for item in items]


def _read_xlsx(path: Path) -> tuple[list[str], list[list]]:
    try:
        import openpyxl
    except ImportError as err:  # pinned in requirements/core.txt
        raise WheelError("reading the emotion-wheel .xlsx files needs openpyxl (pip install openpyxl)") from err
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises several types for a damaged or non-xlsx file
        raise WheelError(f"{path}: cannot read it as an .xlsx workbook ({err})") from err
    try:
        rows = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()
    if not rows:
        raise WheelError(f"{path}: the first sheet is empty")
    header = ["" if h is None else str(h) for h in rows[0]]
    return header, rows[1:]


def _columns(path: Path, header: Sequence[str], wanted: Iterable[str]) -> dict[str, int]:
    index = {}
    for name in wanted:
        if name not in header:
            raise WheelError(f"{path}: no column {name!r} (columns: {[h for h in header if h]})")
        index[name] = list(header).index(name)
    return index


def _cell(row: Sequence, i: int):
    return row[i] if i < len(row) else None


def _text(path: Path, rownum: int, column: str, value) -> str:
    if not isinstance(value, str):
        raise WheelError(f"{path} row {rownum}: {column} must be text, got {value!r}")
    return value


def read_wheel(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """level1 -> level2 -> [level3, ...] of one wheel file (first-seen order, lower-cased, stripped)."""
    path = Path(path)
    header, rows = _read_xlsx(path)
    col = _columns(path, header, ("level1", "level2", "level3"))
    current = {"level1": None, "level2": None, "level3": None}
    tree: dict[str, dict[str, list[str]]] = {}
    for rownum, row in enumerate(rows, start=2):
        if all(_is_missing(v) for v in row):
            continue  # pandas drops fully blank trailing rows; nothing to forward-fill from them
        for name, i in col.items():
            value = _cell(row, i)
            if not _is_missing(value):
                current[name] = _text(path, rownum, name, value)
        if any(v is None for v in current.values()):
            raise WheelError(f"{path} row {rownum}: level1/level2/level3 must be filled on the first row")
        l1, l2, l3 = (current[k].lower().strip() for k in ("level1", "level2", "level3"))
        tree.setdefault(l1, {}).setdefault(l2, []).append(l3)
    if not tree:
        raise WheelError(f"{path}: no emotion rows")
    return tree


def wheel_to_level1(tree: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    """Every word of a wheel -> its level-1 emotion (later groups overwrite earlier ones, as officially)."""
    out: dict[str, str] = {}
    for l1, level2 in tree.items():
        out[l1] = l1
        for l2, level3 in level2.items():
            out[l2] = l1
            for l3 in level3:
                out[l3] = l1
    return out


@dataclass
class EmotionWheels:
    """The official wheel assets: format map, merged synonym map and the level-1 map of each wheel."""

    formats: dict[str, list[str]]
    synonyms: dict[str, list[str]]
    wheels: dict[str, dict[str, str]]
    source: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, directory: str | Path) -> "EmotionWheels":
        """Read format.csv, synonym.xlsx and wheel1..5.xlsx from `directory`; WheelError if any is bad."""
        root = Path(directory)
        if not root.is_dir():
            raise WheelError(f"emotion-wheel directory {root} not found (give the official evaluation/emotion_wheel folder)")
        missing = [n for n in ("format.csv", "synonym.xlsx", *(f"{w}.xlsx" for w in WHEEL_NAMES))
                   if not (root / n).is_file()]
        if missing:
            raise WheelError(f"{root}: missing {', '.join(missing)} (the official emotion_wheel folder has all seven files)")
        trees = {w: read_wheel(root / f"{w}.xlsx") for w in WHEEL_NAMES}
        # The official candidate-label check reads every wheel*.xlsx of the folder (glob), not only 1..5.
        vocabulary: set[str] = set()
        for extra in sorted(root.glob("wheel*.xlsx")):
            tree = trees.get(extra.stem) or read_wheel(extra)
            for l1, level2 in tree.items():
                vocabulary.add(l1)
                for l2, level3 in level2.items():
                    vocabulary.add(l2)
                    vocabulary.update(level3)
        synonyms = read_synonyms(root / "synonym.xlsx", vocabulary)
        formats = read_formats(root / "format.csv")
        return cls(formats, synonyms, {w: wheel_to_level1(t) for w, t in trees.items()}, str(root))

    def map_word(self, word: str, wheel: str) -> str:
        """Level-1 emotion of `wheel` for one (lower-cased, stripped) word; "" when it maps to nothing."""
        key = (word, wheel)
        if key in self._cache:
            return self._cache[key]
        result = ""
        if word in self.formats:
            candidates = [w for name in self.formats[word] for w in self.synonyms.get(name, ())]
            level1 = self.wheels[wheel]
            for cand in sorted(candidates):
                if cand in level1:
                    result = level1[cand]
                    break
        self._cache[key] = result
        return result

    def map_items(self, items: Iterable[str], wheel: str) -> set[str]:
        """The set of level-1 emotions of `wheel` that the items map to (unknown items dropped)."""
        out = set()
        for item in items:
            mapped = self.map_word(item, wheel)
            if mapped:
                out.add(mapped)
        return out


def read_synonyms(path: Path, vocabulary: set[str]) -> dict[str, list[str]]:
    """synonym.xlsx -> {word or synonym: [wheel words]} merged over the 8 runs."""
    header, rows = _read_xlsx(path)
    names = [f"{kind}_run{k}" for k in range(1, SYNONYM_RUNS + 1) for kind in ("word", "synonym")]
    col = _columns(path, header, names)
    merged: dict[str, set[str]] = {}
    for k in range(1, SYNONYM_RUNS + 1):
        for rownum, row in enumerate(rows, start=2):
            if all(_is_missing(v) for v in row):
                continue
            raw_cell = _cell(row, col[f"word_run{k}"])
            if _is_missing(raw_cell):
                raise WheelError(f"{path} row {rownum}: word_run{k} is empty")
            raw = _text(path, rownum, f"word_run{k}", raw_cell).strip().lower()
            if raw not in vocabulary:
                raise WheelError(f"{path} row {rownum}: word_run{k} {raw!r} is on no wheel*.xlsx")
            merged.setdefault(raw, set()).add(raw)
            for syn in parse_list(_cell(row, col[f"synonym_run{k}"])):
                merged.setdefault(str(syn).strip().lower(), set()).add(raw)
    return {k: sorted(v) for k, v in merged.items()}


def read_formats(path: Path) -> dict[str, list[str]]:
    """format.csv -> {surface form: [names]} (forms as written, names map to themselves)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise WheelError(f"{path}: cannot read it as CSV ({err})") from err
    for name in ("name", "format"):
        if name not in fields:
            raise WheelError(f"{path}: no column {name!r} (columns: {fields})")
    out: dict[str, list[str]] = {}
    for row in rows:
        name = row.get("name")
        name = "" if _is_missing(name) else name
        for form in parse_list(row.get("format")):
            out.setdefault(form, []).append(name)
        out.setdefault(name, []).append(name)
    return out
