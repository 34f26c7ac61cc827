"""`python -m emotion_ros benchmark`: score a checkpoint on MMEVerse-Bench / MER-UniBench test sets.

    python -m emotion_ros benchmark --sets DIR|FILE|SET=FILE ... --checkpoint RUN/stage2/final \\
        --wheels .../Emotion-LLaMA-v2/evaluation/emotion_wheel --out OUT [--think all|N|0] [--rows scored|eval]
        [--split test] [--waf-variant emotion-llama-v2|affectgpt] [--cache DIR]

--sets takes, freely mixed: MMEVerse's released annotation files (`<NAME>_merged.csv|json|jsonl`, clips in
`video/` beside them; emotion_ros.evaluation.mmeverse), the project's MMEVerse-format manifests (JSONL of
emotion_ros_training.data.manifest; records of the --split splits, each grouped by its `dataset` into the
benchmark set of that name, other names scored as sets of their own with accuracy), folders holding either
(searched recursively), and SET=FILE to name the set of a file explicitly. The model runs through
training's evaluation (feature cache, label path on every clip, `think` reasoning on the first N clips of
each set); emotion_ros.evaluation.benchmark turns the results into OUT/summary.md and OUT/benchmark.json.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path


def add_benchmark_command(subparsers) -> None:
    p = subparsers.add_parser("benchmark", help="score a checkpoint on MMEVerse-Bench / MER-UniBench test sets "
                                                "(official protocol, paper's Table 4 beside it)")
    p.add_argument("--sets", nargs="+", required=True, metavar="PATH",
                   help="MMEVerse annotation files / project manifests / folders of them / SET=FILE")
    p.add_argument("--checkpoint", required=True, help="trainable checkpoint dir (e.g. RUN/stage2/final)")
    p.add_argument("--wheels", metavar="DIR",
                   help="the official emotion_wheel folder (format.csv, synonym.xlsx, wheel1..5.xlsx) of the "
                        "Emotion-LLaMA-v2 or AffectGPT repository; without it hit rate and OV F are undefined")
    p.add_argument("--out", required=True, help="output folder (summary.md, benchmark.json)")
    p.add_argument("--think", default="all", help="reasoning path on the first N clips of each set (all, N, 0)")
    p.add_argument("--rows", choices=["scored", "eval"], default="scored",
                   help="MMEVerse files: the rows score.sh scores (default) or all rows the eval dataset class loads")
    p.add_argument("--split", default="test", help="manifests: splits to score, comma separated (default test)")
    p.add_argument("--waf-variant", choices=["emotion-llama-v2", "affectgpt"], default="emotion-llama-v2",
                   help="WAF of the sentiment sets: the paper's script (default) or AffectGPT's")
    p.add_argument("--cache", help="feature cache folder (default OUT/feature_cache)")
    p.add_argument("--modalities", default="audio,vision,text",
                   help="inputs kept, comma list of audio, vision, text (the others are removed like a missing input)")
    p.add_argument("--frame-size", type=int, nargs=2, metavar=("W", "H"),
                   help="decode size (default: the recipe recorded in the checkpoint)")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--record-command", action="store_true", help="write the command into summary.md")
    p.set_defaults(func=cmd_benchmark)


def _is_manifest(path: Path) -> bool:
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.strip()
            if text and not text.startswith("#"):
                try:
                    return "clip_id" in json.loads(text)
                except json.JSONDecodeError:
                    return False
    return False


def gather_sets(items: list[str], splits: tuple[str, ...], rows: str):
    """SetInput per test set from the --sets items (see the module docstring), in Table 4's order."""
    from emotion_ros.evaluation import metrics as M
    from emotion_ros.evaluation.benchmark import SetInput
    from emotion_ros.evaluation.mmeverse import find_annotation_files, records_from_annotation, sets_of_file
    from emotion_ros_training.data.manifest import ClipRecord, read_manifest

    annotation: list[tuple[Path, str]] = []
    manifests: list[Path] = []
    for item in items:
        named = None
        if "=" in item and not Path(item).exists():
            named, item = item.split("=", 1)
            if M.canonical_set(named) is None:
                raise SystemExit(f"benchmark: {named!r} is not an MMEVerse-Bench test set ({', '.join(M.MMEVERSE_BENCH)})")
            named = M.canonical_set(named)
        path = Path(item)
        if path.is_dir() and named is None:
            annotation += [(p, s) for p, sets in find_annotation_files(path) for s in sets]
            manifests += [p for p in sorted(path.rglob("*.jsonl")) if not sets_of_file(p) and _is_manifest(p)]
        elif path.is_file():
            if named:
                annotation.append((path, named))
            elif sets_of_file(path):
                annotation += [(path, s) for s in sets_of_file(path)]
            elif path.suffix == ".jsonl" and _is_manifest(path):
                manifests.append(path)
            else:
                raise SystemExit(f"benchmark: {path} is neither an MMEVerse annotation file (<NAME>_merged.csv|json|"
                                 "jsonl) nor a project manifest (JSONL with clip_id); use SET=FILE to name its set")
        else:
            raise SystemExit(f"benchmark: {path} not found")
    records: dict[str, list] = defaultdict(list)
    sources: dict[str, list[str]] = defaultdict(list)
    drops: dict[str, Counter] = defaultdict(Counter)
    for path, name in annotation:
        dicts, dropped = records_from_annotation(path, name, rows=rows)
        records[name] += [ClipRecord.from_dict(d) for d in dicts]
        sources[name].append(str(path))
        drops[name].update(dropped)
    for path in manifests:
        for rec in read_manifest(path):
            if rec.split not in splits:
                continue
            name = M.canonical_set(rec.dataset) or rec.dataset
            records[name].append(dataclasses.replace(rec, dataset=name))
            if str(path) not in sources[name]:
                sources[name].append(str(path))
    order = {n: i for i, n in enumerate(M.MMEVERSE_BENCH)}
    names = sorted(set(records) | set(sources), key=lambda n: (order.get(n, len(order)), n))
    out = []
    for name in names:
        seen, unique = set(), []
        for rec in records[name]:
            if rec.clip_id in seen:
                drops[name]["duplicate clip_id across sources"] += 1
                continue
            seen.add(rec.clip_id)
            unique.append(rec)
        out.append(SetInput(name, unique, " + ".join(sources[name]), dict(drops[name])))
    return out


def cmd_benchmark(args) -> int:
    from emotion_ros.evaluation import metrics as M
    from emotion_ros.evaluation.benchmark import run_benchmark, write_summary
    from emotion_ros.evaluation.mmeverse import AnnotationFileError
    from emotion_ros_training import evaluate as E
    from emotion_ros_training.data.manifest import ManifestError
    from emotion_ros_training.threads import torch_threads

    think = args.think.strip().lower()
    if think != "all" and not think.isdigit():
        raise SystemExit("benchmark: --think takes all, 0 or a number of clips")
    splits = tuple(s.strip() for s in args.split.split(",") if s.strip())
    try:
        wheels = M.EmotionWheels.load(args.wheels) if args.wheels else None
    except M.WheelError as err:
        raise SystemExit(f"benchmark: {err}") from None
    try:
        sets = gather_sets(args.sets, splits, args.rows)
    except (AnnotationFileError, ManifestError, ValueError) as err:
        raise SystemExit(f"benchmark: {err}") from None
    if not sets:
        raise SystemExit("benchmark: no test set found in --sets")
    out = Path(args.out)
    progress = not args.no_progress
    t0 = time.time()
    with torch_threads(args.threads):
        model, meta = E.load_checkpoint_model(args.checkpoint)
        cache = E.open_cache(model, meta, args.cache or out / "feature_cache",
                             tuple(args.frame_size) if args.frame_size else None)
        mods = tuple(m.strip() for m in args.modalities.split(",") if m.strip())

        def evaluate_set(name, records):
            before = Counter(cache.stats.drops)
            usable = cache.ensure(records, model, progress=progress)
            dropped = dict(Counter(cache.stats.drops) - before)
            if not usable:
                return {"per_dataset": {}, "overall": {"accuracy": float("nan")}, "predictions": [], "dropped": dropped}
            n_think = len(usable) if think == "all" else min(int(think), len(usable))
            res = E.evaluate_cached(model, cache, usable, mods, n_think, progress=progress, wheels=wheels,
                                    waf_variant=args.waf_variant)
            res["dropped"] = dropped
            return res

        summary = run_benchmark(sets, evaluate_set, checkpoint=str(args.checkpoint), wheels_dir=args.wheels or "",
                                waf_variant=args.waf_variant, rows=args.rows,
                                progress=(lambda msg: print(msg, file=sys.stderr)) if progress else None)
    summary["seconds"] = time.time() - t0
    command = "python -m emotion_ros " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if args.record_command else ""
    path = write_summary(summary, out, command)
    lab = summary["averages"]["label"]
    print(f"{len(sets)} test set(s) scored; Avg-9 {_fmt(lab['Avg-9']['value'])}, Avg-18 {_fmt(lab['Avg-18']['value'])} "
          f"(label path); summary: {path}")
    for name, e in summary["sets"].items():
        if e["label"].get("undefined"):
            print(f"{name}: {e['label']['metric']} undefined: {e['label']['undefined']}", file=sys.stderr)
    return 0


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.2f}"
