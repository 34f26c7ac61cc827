"""Adapters that build MMEVerse-format manifests from the on-disk layouts of public datasets.

Each adapter module documents the layout it expects and exposes `build(root, **options) -> AdapterResult`.
Clips whose media file is missing or whose label is outside the label space are skipped and counted
(never silently): `result.skipped` maps a reason to a count.

    python -m emotion_ros_training.data.adapters meld --root /data/MELD.Raw --out manifests/meld.jsonl
"""
from __future__ import annotations

import argparse
import csv
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from emotion_ros_training.data.manifest import ClipRecord, write_manifest

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm")


@dataclass
class AdapterResult:
    records: list[ClipRecord] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def write(self, path: str | os.PathLike) -> int:
        return write_manifest(path, self.records)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """CSV rows as dicts. UTF-8 (with or without BOM); falls back to cp1252, which some releases use."""
    for enc in ("utf-8-sig", "cp1252"):
        try:
            with open(path, newline="", encoding=enc) as f:
                return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
        except UnicodeDecodeError:
            continue
    with open(path, newline="", encoding="latin-1") as f:
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]


def column(row: dict[str, str], *names: str) -> str | None:
    """The first of `names` present in the row (case-insensitive), else None."""
    lower = {k.lower(): v for k, v in row.items()}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def find_media(dirs: Iterable[str | os.PathLike], stems: Sequence[str], exts: Sequence[str] = VIDEO_EXTS) -> str | None:
    """First existing dir/stem+ext (skips macOS '._' resource-fork files)."""
    for d in dirs:
        for stem in stems:
            for ext in exts:
                p = os.path.join(d, stem + ext)
                if os.path.isfile(p) and not os.path.basename(p).startswith("._"):
                    return p
    return None


def sentiment3(score: float, neutral_band: float = 0.0) -> str:
    """Three-way sentiment from a signed score: < -band negative, > band positive, else neutral."""
    if score < -neutral_band:
        return "negative"
    if score > neutral_band:
        return "positive"
    return "neutral"


ADAPTERS = ("mer2023", "meld", "iemocap", "mosi", "mosei", "sims")


def get_adapter(name: str):
    import importlib

    name = name.lower()
    module = {"mosi": "mmsa", "mosei": "mmsa", "sims": "mmsa"}.get(name, name)
    if name not in ADAPTERS:
        raise KeyError(f"unknown dataset {name!r}; have {ADAPTERS}")
    mod = importlib.import_module(f"emotion_ros_training.data.adapters.{module}")
    if module == "mmsa":
        return lambda root, **kw: mod.build(root, dataset={"mosi": "CMU-MOSI", "mosei": "CMU-MOSEI", "sims": "CH-SIMS"}[name], **kw)
    return mod.build


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build an MMEVerse-format manifest from a dataset on disk.")
    ap.add_argument("dataset", choices=ADAPTERS)
    ap.add_argument("--root", required=True, help="dataset root folder (layout: see the adapter's docstring)")
    ap.add_argument("--out", required=True, help="manifest .jsonl to write")
    ap.add_argument("--task", default=None, help="MELD only: 'emotion' (default) or 'sentiment'")
    args = ap.parse_args(argv)
    kw = {"task": args.task} if args.task else {}
    res = get_adapter(args.dataset)(args.root, **kw)
    n = res.write(args.out)
    print(f"wrote {n} records to {args.out}; skipped: {dict(res.skipped) or 'none'}")
    return 0
