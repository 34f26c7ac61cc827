"""A small hand-made set of emotion-wheel files in exactly the official layout (format.csv, synonym.xlsx,
wheel1..5.xlsx), written by the tests; the real files come with the official repositories.

What the files say (the expected values in the tests are worked out by hand from this):
- wheels 1-3: happy{joy: delight}, sad{sorrow: grief}, angry{rage: fury}, worried{anxious: nervous},
  surprise{amazed: astonished}.
- wheel 4: like 1-3 but "worried" (with "anxious") is a level-2 emotion under sad, written with an empty
  level1 cell (forward fill).
- wheel 5: no surprise group; one row "sad | glum | <empty>" whose level3 is forward-filled from the row
  above ("grief").
- synonyms (run 1 unless said): happy <- glad, cheerful; sad <- unhappy; angry <- mad; worried <-
  concerned, stunned; joy <- joyful; run 2: surprise <- stunned. Every run lists the same six words.
- format.csv: happy: happier, happily, Happiest (capital: never matched, since only the lower-cased
  response is looked up); sad: sadly, sadness; angry: anger, angrily; worried: worry, worries; concerned:
  concern; surprise: surprised; plus self rows for glad, cheerful, unhappy, mad, stunned, joy, joyful.
So on wheels 1-4 "stunned" -> {surprise, worried} sorted -> surprise; on wheel 5 (no surprise) -> worried.
"neutral" is in no file.
"""
from __future__ import annotations

import csv
from pathlib import Path

BASE = [("happy", "joy", "delight"), ("sad", "sorrow", "grief"), ("angry", "rage", "fury"),
        ("worried", "anxious", "nervous"), ("surprise", "amazed", "astonished")]
WHEEL4 = [("happy", "joy", "delight"), ("sad", "sorrow", "grief"), (None, "worried", "anxious"),
          ("angry", "rage", "fury"), ("surprise", "amazed", "astonished")]
WHEEL5 = [("happy", "joy", "delight"), ("sad", "sorrow", "grief"), (None, "glum", None),
          ("angry", "rage", "fury"), ("worried", "anxious", "nervous")]
WORDS = ["happy", "sad", "angry", "worried", "surprise", "joy"]
SYNONYMS = {1: {"happy": "['glad', 'cheerful']", "sad": "['unhappy']", "angry": "['mad']",
                "worried": "['concerned', 'stunned']", "joy": "['joyful']"},
            2: {"surprise": "['stunned']"}}
FORMATS = [("happy", "happier,happily,Happiest"), ("glad", ""), ("cheerful", ""), ("sad", "sadly,sadness"),
           ("unhappy", ""), ("angry", "anger,angrily"), ("mad", ""), ("worried", "worry,worries"),
           ("concerned", "concern"), ("stunned", ""), ("surprise", "surprised"), ("joy", ""), ("joyful", "")]


def _xlsx(path: Path, header: list[str], rows: list[list]) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(list(row))
    book.save(path)


def write_official_wheels(root: Path) -> Path:
    """Write the seven files into `root` (created) and return it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for k, rows in zip(range(1, 6), (BASE, BASE, BASE, WHEEL4, WHEEL5)):
        _xlsx(root / f"wheel{k}.xlsx", ["level1", "level2", "level3"], rows)
    header = [f"{kind}_run{k}" for k in range(1, 9) for kind in ("word", "synonym")]
    rows = []
    for word in WORDS:
        row = []
        for k in range(1, 9):
            row += [word, SYNONYMS.get(k, {}).get(word)]
        rows.append(row)
    _xlsx(root / "synonym.xlsx", header, rows)
    with open(root / "format.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "format"])
        w.writerows(FORMATS)
    return root
