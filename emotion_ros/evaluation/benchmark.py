"""The benchmark runner's scoring side: a checkpoint's results per test set -> a Table-4-shaped summary.

`python -m emotion_ros benchmark --sets ... --checkpoint ... --wheels DIR --out DIR` (emotion_ros.app.
benchmark_command) gathers the test sets (project manifests, or MMEVerse's annotation files read by
emotion_ros.evaluation.mmeverse), runs the model on each through training's evaluation
(emotion_ros_training.evaluate.evaluate_cached, label path on every clip and the `think` reasoning path on
the first N) and hands the results to `run_benchmark` here, which scores nothing itself: every number is
metrics.score_dataset's (the official protocol of each set). Written to OUT: `benchmark.json` (everything,
with each clip's responses so any number can be re-derived) and `summary.md`: the paper's Table 4 (its
rows as printed in the paper) with this checkpoint's label-path and `think` rows beside them, Avg-9 and
Avg-18 where all their sets are present and defined, and per set the metric, the rows scored and the
Table-2 count, and why a metric is undefined where it is.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emotion_ros.evaluation import metrics as M
from emotion_ros.io import write_json, write_text

# Table 4 of the paper (x100), in its column order (metrics.MMEVERSE_BENCH) then Avg-9 and Avg-18 as printed.
_T4_COLUMNS = M.MMEVERSE_BENCH[:9] + ("Avg-9",) + M.MMEVERSE_BENCH[9:] + ("Avg-18",)
_T4_ROWS = {
    "Video-LLaMA": "38.65 44.40 31.60 20.36 69.19 36.75 31.16 31.21 49.91 39.25 37.62 32.47 37.59 24.36 22.53 7.58 51.84 22.62 44.83 35.26",
    "Video-LLaMA2": "47.56 54.59 19.58 59.41 58.06 44.08 63.15 70.63 52.32 52.15 21.73 30.44 38.53 27.51 25.37 7.68 57.62 25.62 13.02 39.83",
    "Video-LLaVA": "54.82 43.31 35.96 37.17 71.31 40.81 61.20 57.17 52.50 50.47 27.87 31.24 37.29 22.57 22.03 7.07 43.14 22.02 30.61 38.78",
    "LLaMA3.2-90B-Vision": "58.49 62.72 48.82 57.71 82.06 65.74 77.65 80.26 54.09 65.28 37.92 33.09 46.90 32.46 21.56 7.17 63.83 37.86 43.49 50.66",
    "Qwen2.5-VL-72B": "47.84 40.43 46.81 34.86 85.81 70.80 72.00 72.85 47.02 57.60 32.61 33.33 31.95 21.75 11.67 7.32 65.13 56.23 48.85 45.96",
    "Qwen2.5-Omni-7B": "72.84 80.44 43.72 61.53 78.86 61.84 75.44 76.67 53.13 67.16 40.80 45.02 50.23 32.30 7.70 7.70 65.67 48.29 46.91 52.73",
    "HumanOmni-7B": "63.36 76.64 37.05 52.52 7.37 7.33 43.87 35.35 59.03 42.50 62.12 41.33 74.33 75.42 44.07 8.45 38.77 30.42 52.54 45.00",
    "HumanOmniV2-9B": "68.59 57.41 42.74 60.95 76.56 75.44 83.58 81.65 61.62 67.62 36.52 42.13 44.13 20.01 28.67 8.36 42.22 33.80 36.70 50.06",
    "AffectGPT": "78.54 78.80 55.65 60.54 81.30 80.90 88.49 86.18 62.52 74.77 30.45 27.61 43.61 26.26 23.18 7.22 58.93 37.95 46.35 54.11",
    "Emotion-LLaMA": "59.38 73.62 46.76 55.47 66.13 67.66 78.32 77.23 52.97 64.17 40.54 35.42 46.86 30.67 26.11 7.67 59.54 38.09 48.11 50.59",
    "Emotion-LLaMAv2 (Stage 1)": "77.28 86.90 51.32 84.05 86.28 87.69 87.72 86.02 62.90 78.91 58.10 58.61 70.87 49.65 34.06 9.21 73.22 63.43 61.50 66.05",
    "Emotion-LLaMAv2 (Stage 2)": "76.72 86.90 48.61 83.60 86.96 86.15 86.35 87.42 64.00 78.52 58.21 63.35 70.70 50.73 35.88 9.10 74.71 65.60 64.36 66.63",
}
TABLE4: dict[str, dict[str, float]] = {
    model: dict(zip(_T4_COLUMNS, (float(x) for x in row.split()))) for model, row in _T4_ROWS.items()}
# Table 2 of the paper: the clips of each test set.
TABLE2_COUNTS = {"MER2023": 411, "MER2024": 1169, "MELD": 2610, "IEMOCAP": 1241, "MOSI": 686, "MOSEI": 4659,
                 "SIMS": 457, "SIMS-v2": 1034, "OV-MERD+": 532, "CAER": 3953, "E3": 3288, "DFEW": 2341,
                 "MAFW": 1839, "MAFW-m": 580, "BOLD": 1116, "MELD-s": 3719, "MC-EIU-i": 3249, "MC-EIU": 3249}


@dataclass
class SetInput:
    """One test set to run: its records (ClipRecord-like: clip_id, dataset, labels...), where they came from,
    and the rows dropped while reading them (reason -> count)."""

    name: str
    records: list
    source: str
    drops: dict[str, int] = field(default_factory=dict)


# evaluate_set(name, records) -> training's evaluation result of those records (evaluate_cached's dict),
# plus "dropped" (reason -> count of clips the feature cache could not encode).
EvaluateSet = Callable[[str, list], dict]


def _pick(per_dataset: Mapping, name: str) -> dict | None:
    if name in per_dataset:
        return dict(per_dataset[name])
    return None


def run_benchmark(sets: Sequence[SetInput], evaluate_set: EvaluateSet, *, checkpoint: str = "",
                  wheels_dir: str = "", waf_variant: str = M.WAF_EMOTION_LLAMA_V2, rows: str = "",
                  progress: Callable[[str], None] | None = None) -> dict:
    """Run every set through `evaluate_set` and summarise (see the module docstring). A set whose model
    run fails is reported with the error and the others go on."""
    results = {}
    for s in sets:
        if progress:
            progress(f"{s.name}: {len(s.records)} clips from {s.source}")
        entry: dict = {"source": s.source, "records": len(s.records), "read_drops": dict(s.drops),
                       "table2_count": TABLE2_COUNTS.get(M.canonical_set(s.name) or "", None),
                       "metric": M.dataset_metric(s.name)}
        if not s.records:
            entry["label"] = {"metric": entry["metric"], "value": math.nan, "undefined": "no usable clip"}
        else:
            try:
                res = evaluate_set(s.name, s.records)
            except (ValueError, OSError, RuntimeError) as err:
                entry["label"] = {"metric": entry["metric"], "value": math.nan, "undefined": f"model run failed: {err}"}
                results[s.name] = entry
                continue
            entry["encode_drops"] = dict(res.get("dropped") or {})
            entry["label"] = _pick(res["per_dataset"], s.name) or {
                "metric": entry["metric"], "value": math.nan, "undefined": "no clip left after encoding"}
            entry["label_accuracy"] = res["overall"]["accuracy"]
            entry["predictions"] = [{"clip_id": p["clip_id"], "true": p["true"], "response": p["pred"]}
                                    for p in res["predictions"]]
            think = res.get("think")
            if think:
                entry["think"] = _pick(think["per_dataset"], s.name)
                entry["think_clips"] = think["n"]
                entry["think_well_formed"] = think["well_formed"]
                entry["think_responses"] = think.get("responses", [])
        results[s.name] = entry
    label = {n: e["label"] for n, e in results.items()}
    think = {n: e["think"] for n, e in results.items() if e.get("think")}
    return {
        "checkpoint": checkpoint, "wheels": wheels_dir, "waf_variant": waf_variant, "rows": rows,
        "sets": results,
        "set_order": list(results),  # benchmark.json sorts its keys; this is Table 4's order
        "averages": {"label": M.benchmark_averages(label), "think": M.benchmark_averages(think) if think else None},
        "avg_defined": {"label": M.average_over_sets(label), "think": M.average_over_sets(think) if think else math.nan},
        "paper_table4": TABLE4,
    }


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "undef."
    return f"{value:.2f}"


def _row_values(per_set: Mapping[str, Mapping], averages: Mapping | None) -> dict[str, float | None]:
    """Table-4 cells (x100) of one result row: None = set absent, NaN = present but undefined."""
    out: dict[str, float | None] = {}
    canon = {M.canonical_set(n): r for n, r in per_set.items() if M.canonical_set(n)}
    for name in M.MMEVERSE_BENCH:
        r = canon.get(name)
        out[name] = None if r is None else (r["value"] * 100 if M.is_defined(r) else math.nan)
    for key in ("Avg-9", "Avg-18"):
        avg = (averages or {}).get(key)
        out[key] = None if not avg or math.isnan(avg["value"]) else avg["value"] * 100
    return out


def render_markdown(summary: Mapping, command: str = "") -> str:
    sets = {n: summary["sets"][n] for n in summary.get("set_order", summary["sets"])}
    label = {n: e["label"] for n, e in sets.items()}
    think = {n: e["think"] for n, e in sets.items() if e.get("think")}
    rows = [(m, dict(v)) for m, v in summary["paper_table4"].items()]
    ours = [("**this checkpoint, label path**", _row_values(label, summary["averages"]["label"]))]
    if think:
        every = all(e.get("think_clips") == e["records"] for e in sets.values() if e.get("think"))
        most = max(e.get("think_clips") or 0 for e in sets.values())
        which = "all clips" if every else f"first {most} clip(s) of each set"
        ours.append((f"**this checkpoint, `think` answers** ({which})",
                     _row_values(think, summary["averages"]["think"])))
    lines = ["# Benchmark: MMEVerse-Bench / MER-UniBench (official protocol, x100)", ""]
    if command:
        lines += ["Regenerate with:", "", "```", command, "```", ""]
    lines += [f"Checkpoint `{summary['checkpoint']}`; emotion wheels: `{summary['wheels'] or 'not given'}`; "
              f"WAF variant `{summary['waf_variant']}`" + (f"; rows: {summary['rows']}" if summary.get("rows") else "")
              + ".", "",
              "Paper rows: Table 4 of the paper as printed. `—` = test set not given; `undef.` = the metric is "
              "undefined on the given clips (reason below); an Avg needs all its sets.", ""]
    for title, cols in (("MER-UniBench", M.MMEVERSE_BENCH[:9] + ("Avg-9",)),
                        ("MMEVerse-Bench (the other nine sets)", M.MMEVERSE_BENCH[9:] + ("Avg-18",))):
        lines += [f"## {title}", "", "| Model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for model, vals in rows + ours:
            lines.append(f"| {model} | " + " | ".join(_cell(vals.get(c)) for c in cols) + " |")
        lines.append("")
    lines += ["## Per test set", "",
              "| set | metric | source | clips read | dropped | scored | Table 2 | label path | `think` |",
              "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for name, e in sets.items():
        drops = sum(e.get("read_drops", {}).values()) + sum(e.get("encode_drops", {}).values())
        lab, th = e["label"], e.get("think")
        scored = lab.get("scored_n", "")
        if isinstance(lab.get("scored"), Mapping):  # per wheel (hit rate)
            scored = "/".join(str(v) for v in lab["scored"].values())
        elif isinstance(lab.get("per_wheel"), Mapping):
            scored = "/".join(str(v["scored"]) for v in lab["per_wheel"].values())
        lines.append(f"| {name} | {lab.get('metric')} | `{Path(e['source']).name}` | {e['records']} | {drops} | "
                     f"{scored} | {e.get('table2_count') or ''} | {_cell(lab['value'] * 100)} | "
                     f"{_cell(th['value'] * 100) if th else '—'} |")
        for what, r in (("label path", lab), ("think", th)):
            if r and r.get("undefined"):
                notes.append(f"- {name} ({what}): undefined: {r['undefined']}")
            if r and r.get("note"):
                notes.append(f"- {name} ({what}): {r['note']}")
        for reason, n in {**e.get("read_drops", {}), **e.get("encode_drops", {})}.items():
            notes.append(f"- {name}: {n} clip(s) dropped: {reason}")
    lines.append("")
    if notes:
        lines += ["Notes:", ""] + notes + [""]
    for which in ("label", "think"):
        avg = (summary["averages"] or {}).get(which)
        if avg:
            for key, a in avg.items():
                if a["missing"] and len(a["missing"]) < len(a["sets"]):
                    lines.append(f"- {key} ({which}) not computed: missing or undefined {', '.join(a['missing'])}")
    lines.append("")
    return "\n".join(lines)


def _jsonable(x):
    """NaN -> null (strict JSON), recursively."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def write_summary(summary: Mapping, out: str | Path, command: str = "") -> Path:
    """benchmark.json (NaN written as null) + summary.md into `out`; returns the summary path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = _jsonable(summary)
    if command:
        data["command"] = command
    write_json(out / "benchmark.json", data)
    path = out / "summary.md"
    write_text(path, render_markdown(summary, command))
    return path
