"""Evaluation report: metrics.json, summary.md, windows.csv + windows.json and plots (matplotlib, Agg) in one
directory.

windows.csv / windows.json: one row per state window of every bag (bag, window index, start/end in s from
the bag start and in ns, label, confidence, the score of every label, modalities used, transcript,
latency, the annotated label it was scored against and whether it agrees). summary.md repeats that
table per bag (up to MAX_WINDOW_ROWS rows each; the files always have all) and, for offline runs, the
input account: messages read / accepted / dropped per bag topic, drops by reason, the windower's
accounting (lost must be 0) and the bag topics that fed nothing, with the reason.

Plots: confusion matrix (segment level), per-class F1, label latency histogram, and per bag a timeline
of annotated vs predicted emotion with the confidence of each state.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from emotion_ros.io import write_text

MAX_TIMELINES = 12
MAX_WINDOW_ROWS = 400
WINDOW_COLUMNS = ("bag", "window", "start_s", "end_s", "label", "confidence", "unsure", "modalities", "latency_ms",
                  "annotated", "correct", "transcript", "start_ns", "end_ns")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _ms(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "bag"


def write_report(result: dict, out_dir: str | Path, command: str = "", plots: bool = True) -> Path:
    """Write metrics.json, summary.md and the plots; returns the summary path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = _jsonable(result)
    if command:
        metrics["command"] = command
    write_text(out / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    windows = all_window_rows(result)
    write_window_table(windows, out)
    figures = make_plots(result, out) if plots else {}
    summary = out / "summary.md"
    write_text(summary, render_markdown(metrics, figures, command, windows))
    return summary


def all_window_rows(result: dict) -> list[dict]:
    """The per-window rows of every evaluated bag, each with its bag's report name."""
    rows = []
    for r in result.get("_results", []):
        rows += [{"bag": r.job.name, **row} for row in getattr(r, "windows", [])]
    return rows


def write_window_table(rows: list[dict], out: Path) -> None:
    """windows.json (rows as they are) and windows.csv (one score column per label, `score_<label>`)."""
    import csv
    import io

    write_text(out / "windows.json", json.dumps(_jsonable(rows), indent=1, ensure_ascii=False) + "\n")
    labels: list[str] = []
    for row in rows:
        labels += [lab for lab in row["scores"] if lab not in labels]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(list(WINDOW_COLUMNS) + [f"score_{lab}" for lab in labels])
    for row in rows:
        cells = ["" if row.get(c) is None else row.get(c) for c in WINDOW_COLUMNS]
        writer.writerow(cells + [f"{row['scores'][lab]:.4f}" if lab in row["scores"] else "" for lab in labels])
    write_text(out / "windows.csv", buf.getvalue())


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(metrics: dict, figures: dict[str, str], command: str = "", windows: list[dict] = ()) -> str:
    s = metrics["summary"]
    lines = ["# Emotion evaluation report", ""]
    if command:
        lines += ["Regenerate with:", "", "```", command, "```", ""]
    lines += [f"Bags: {s['bags_evaluated']} evaluated, {s['bags_failed']} failed; {s['segments']} annotated "
              f"segments, {s['states']} states, {s['scored_windows']} scored windows.", ""]
    if s.get("inputs_counted"):
        reasons = ", ".join(f"{k}: {v}" for k, v in s.get("dropped", {}).items()) or "none"
        lines += [f"Inputs dropped: {s.get('dropped_total', 0)} ({reasons}); accepted but unaccounted (lost): "
                  f"{s.get('lost', 0)}. Per bag: see Inputs below.", ""]
    if metrics.get("datasets"):
        lines += ["## Benchmark metrics (paper protocol, x100)", "", "| data set | metric | n | score |",
                  "|---|---|---|---|"]
        for name, d in metrics["datasets"].items():
            why = d.get("undefined") or d.get("error")
            note = f" (undefined: {why})" if why else (f" ({d['note']})" if d.get("note") else "")
            lines.append(f"| {name} | {d['metric']} | {d['n']} | {_pct(d.get('value'))}{note} |")
        over = metrics.get("avg_over")
        label = "Avg" if over is None or len(over) == len(metrics["datasets"]) else f"Avg over {len(over)} defined set(s)"
        lines += [f"| **{label}** | | | **{_pct(metrics.get('avg'))}** |", ""]
    ov = metrics.get("overall", {})
    for level in ("segment", "window"):
        rep = ov.get(level)
        if not rep:
            continue
        lines += [f"## {level.capitalize()} level", "",
                  f"accuracy {_pct(rep['accuracy'])}, weighted F1 {_pct(rep['weighted_f1'])}, "
                  f"macro F1 {_pct(rep['macro_f1'])} over {rep['n']} {level}s.", "",
                  "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for lab, v in rep["per_class"].items():
            lines.append(f"| {lab} | {_pct(v['precision'])} | {_pct(v['recall'])} | {_pct(v['f1'])} | {v['support']} |")
        lines.append("")
    lat, onset = ov.get("latency_ms", {}), ov.get("onset_delay_s", {})
    lines += ["## Timing", "",
              f"- label latency per window (ms): p50 {_ms(lat.get('p50'))}, p95 {_ms(lat.get('p95'))}, "
              f"mean {_ms(lat.get('mean'))}, max {_ms(lat.get('max'))} ({lat.get('count', 0)} windows)",
              f"- coverage (share of annotated time with a state): {_pct(ov.get('coverage'))} %",
              f"- onset delay (segment start -> first window end with the right label, ms): "
              f"p50 {_ms(onset.get('p50'))}, p95 {_ms(onset.get('p95'))} ({onset.get('count', 0)} segments)", ""]
    if metrics.get("bags"):
        lines += ["## Bags", "", "| bag | data set | segments | states | segment acc. | window acc. | coverage |",
                  "|---|---|---|---|---|---|---|"]
        for name, b in metrics["bags"].items():
            lines.append(f"| {name} | {b['dataset']} | {b['segments']} | {b['states']} | "
                         f"{_pct(b['segment_accuracy'])} | {_pct(b['window_accuracy'])} | {_pct(b['coverage'])} |")
        lines.append("")
    lines += _inputs_markdown(metrics)
    lines += _windows_markdown(windows)
    if metrics.get("errors"):
        lines += ["## Errors (bags not evaluated)", ""]
        lines += [f"- `{e['bag']}` ({e['reason']}): {e['error']}" for e in metrics["errors"]]
        lines.append("")
    if figures:
        lines += ["## Plots", ""]
        lines += [f"![{title}]({fname})" for title, fname in figures.items()]
        lines.append("")
    return "\n".join(lines)


def _inputs_markdown(metrics: dict) -> list[str]:
    """Per bag: topic mapping, messages per topic, drops by reason, the accounting, unused topics."""
    lines = []
    for name, b in (metrics.get("bags") or {}).items():
        inp = b.get("inputs")
        if not inp:
            continue
        lines += [f"## Inputs of {name}", "", "| bag topic | type | feeds | read | accepted | dropped |",
                  "|---|---|---|---|---|---|"]
        for topic, t in inp["topics"].items():
            feeds = t.get("input") or f"nothing: {inp['unused'].get(topic, '')}"
            lines.append(f"| `{topic}` | {t['type']} | {_md(feeds)} | {t['read']} | {t['accepted']} | {t['dropped']} |")
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(inp["dropped"].items())) or "none"
        lines += ["", f"- dropped by reason: {reasons}"]
        if inp.get("evicted"):
            lines.append("- evicted: " + ", ".join(f"{k}: {v}" for k, v in sorted(inp["evicted"].items())))
        if inp.get("events"):
            lines.append("- events: " + ", ".join(f"{k}: {v}" for k, v in sorted(inp["events"].items())))
        if inp.get("accounting"):
            acc = "; ".join(f"{k} {v['accepted']} = used {v['used']} + evicted {v['evicted']} + buffered "
                            f"{v['buffered']} + lost {v['lost']}" for k, v in inp["accounting"].items())
            lines.append(f"- accounting (accepted = used + evicted + buffered + lost): {acc}")
        lines += [f"- warning: {w}" for w in inp.get("warnings", [])]
        lines.append("")
    return lines


def _windows_markdown(windows: list[dict]) -> list[str]:
    if not windows:
        return []
    lines = []
    by_bag: dict[str, list[dict]] = {}
    for row in windows:
        by_bag.setdefault(row["bag"], []).append(row)
    for name, rows in by_bag.items():
        lines += [f"## Windows of {name}", "",
                  "| # | window (s) | label | conf. | scores | modalities | latency ms | annotated | transcript |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in rows[:MAX_WINDOW_ROWS]:
            top = sorted(row["scores"].items(), key=lambda kv: -kv[1])[:3]
            scores = " ".join(f"{k} {v:.2f}" for k, v in top)
            mark = "" if row["correct"] is None else (" ✓" if row["correct"] else " ✗")
            lines.append(f"| {row['window']} | {row['start_s']:.2f}-{row['end_s']:.2f} | {row['label']} | "
                         f"{row['confidence']:.2f} | {scores} | {row['modalities']} | {_ms(row['latency_ms'])} | "
                         f"{row['annotated'] or '-'}{mark} | {_md(row['transcript'][:80])} |")
        if len(rows) > MAX_WINDOW_ROWS:
            lines.append(f"| ... | {len(rows) - MAX_WINDOW_ROWS} more rows in windows.csv | | | | | | | |")
        lines.append("")
    return lines


def make_plots(result: dict, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: dict[str, str] = {}
    ov = result.get("overall", {})
    seg = ov.get("segment")
    if seg:
        cm = np.asarray(seg["confusion_matrix"])
        labels = seg["labels"] + (["<none>"] if cm.shape[0] > len(seg["labels"]) else [])
        n = len(labels)
        fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("annotated")
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                            color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
        ax.set_title("Confusion matrix (segments)")
        fig.tight_layout()
        fig.savefig(out / "confusion_matrix.png", dpi=100)
        plt.close(fig)
        figures["confusion matrix"] = "confusion_matrix.png"

        per = seg["per_class"]
        fig, ax = plt.subplots(figsize=(max(4, 0.7 * len(per)), 3))
        ax.bar(list(per), [v["f1"] for v in per.values()], color="tab:blue")
        ax.set_ylim(0, 1)
        ax.set_ylabel("F1")
        ax.set_title("Per-class F1 (segments)")
        ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        fig.savefig(out / "per_class_f1.png", dpi=100)
        plt.close(fig)
        figures["per-class F1"] = "per_class_f1.png"

    results = result.get("_results", [])
    lat = [s.latency_ms for r in results for s in r.states if not math.isnan(s.latency_ms)]
    if lat:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(lat, bins=min(40, max(5, len(lat) // 3)), color="tab:orange")
        ax.set_xlabel("label latency per window (ms)")
        ax.set_ylabel("windows")
        ax.set_title("Latency")
        fig.tight_layout()
        fig.savefig(out / "latency_hist.png", dpi=100)
        plt.close(fig)
        figures["latency histogram"] = "latency_hist.png"

    for r in results[:MAX_TIMELINES]:
        fname = f"timeline_{_safe(r.job.name)}.png"
        plot_timeline(r, out / fname)
        figures[f"timeline {r.job.name}"] = fname
    return figures


def plot_timeline(r, path: Path) -> None:
    """Annotated segments (top band) vs predicted labels of each state window, with confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(r.labels)
    y = {lab: i for i, lab in enumerate(labels)}
    t0 = r.bag_start_ns
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(9, 1.5 + 0.35 * len(labels)), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    for a, b, lab in r.annotated:
        if lab in y:
            ax.barh(y[lab], (b - a) / 1e9, left=(a - t0) / 1e9, height=0.8, color="tab:green", alpha=0.35,
                    label="annotated")
    for st in r.states:
        if st.label in y:
            mid = ((st.start_ns + st.end_ns) / 2 - t0) / 1e9
            ax.plot([(st.start_ns - t0) / 1e9, (st.end_ns - t0) / 1e9], [y[st.label]] * 2, color="tab:blue",
                    alpha=0.25 + 0.75 * float(st.confidence), lw=2)
            ax.plot(mid, y[st.label], "o", color="tab:blue", ms=3, label="predicted")
    handles, names = ax.get_legend_handles_labels()
    uniq = dict(zip(names, handles))
    if uniq:
        ax.legend(uniq.values(), uniq.keys(), loc="upper right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_title(f"{r.job.name}: annotated vs predicted")
    ends = [(st.end_ns - t0) / 1e9 for st in r.states]
    axc.plot(ends, [st.confidence for st in r.states], ".-", color="tab:blue", ms=3)
    axc.set_ylim(0, 1)
    axc.set_ylabel("conf.")
    axc.set_xlabel("bag time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
