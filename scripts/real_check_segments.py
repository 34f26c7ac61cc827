"""Per-segment view of an evaluation report on the real-data check (issue 14 item 5), with its checks.

    python scripts/real_check_segments.py out/real_check_heldout [--inventory data/real_check/inventory.json] [--md F]

Reads REPORT/windows.json (written by `python -m emotion_ros evaluate ... --out REPORT`: one row per window
with label, confidence, every score, modalities, the annotated label) and prints:
- one line per annotated segment (the real-check bags hold one clip each, so a segment is a bag; a bag
  with several segments is split where the annotated label changes): annotated label, windows,
  modalities, the segment label (argmax of the mean scores over its windows) with that mean score, the
  window labels, and the highest confidence of a wrong window label;
- the predicted-label distribution (segments and windows) next to the annotated one;
- the checks of issue 14:
  1. no wrong label above 0.8 confidence (every window);
  2. neutral real speech is never labelled a non-neutral emotion above 0.5 (every window of a neutral
     segment that has audio; with --inventory only the clips of kind `calm read`: JFK's oratory is
     reported beside it, not counted).
Exit status 0 whatever the checks say (it is a report, not a gate); `--strict` exits 1 on a failed check.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

WRONG_MAX = 0.8
NEUTRAL_SPEECH_MAX = 0.5


def load_rows(report: Path) -> list[dict]:
    path = report / "windows.json" if report.is_dir() else report
    if not path.is_file():
        raise SystemExit(f"real_check_segments: no windows.json in {report} (run `python -m emotion_ros evaluate ... --out {report}`)")
    return json.loads(path.read_text())


def segments(rows: list[dict]) -> list[dict]:
    by_bag = defaultdict(list)
    for r in rows:
        if r.get("annotated"):
            by_bag[r["bag"]].append(r)
    out = []
    for bag, ws in by_bag.items():
        ws.sort(key=lambda r: r["start_ns"])
        run: list[dict] = []
        for r in ws + [None]:
            if run and (r is None or r["annotated"] != run[-1]["annotated"]):
                out.append(_segment(bag, run))
                run = []
            if r is not None:
                run.append(r)
    return out


def _segment(bag: str, ws: list[dict]) -> dict:
    labels = list(ws[0]["scores"])
    mean = {lab: sum(w["scores"][lab] for w in ws) / len(ws) for lab in labels}
    label = max(mean, key=mean.get)
    truth = ws[0]["annotated"]
    wrong = [w["confidence"] for w in ws if w["label"] != truth]
    return {"bag": bag, "annotated": truth, "windows": len(ws), "modalities": sorted({w["modalities"] for w in ws}),
            "label": label, "confidence": mean[label], "mean_scores": mean,
            "window_labels": dict(Counter(w["label"] for w in ws)), "max_wrong_confidence": max(wrong, default=0.0),
            "rows": ws}


def checks(segs: list[dict], kinds: dict[str, str]) -> dict:
    wrong_high = [(s["bag"], w["window"], w["label"], w["confidence"]) for s in segs for w in s["rows"]
                  if w["label"] != s["annotated"] and w["confidence"] > WRONG_MAX]
    speech, other_speech = [], []
    for s in segs:
        if s["annotated"] != "neutral" or not any("audio" in m for m in s["modalities"]):
            continue
        kind = kinds.get(s["bag"], "calm read")
        for w in s["rows"]:
            if "audio" not in w["modalities"]:
                continue
            (speech if kind == "calm read" else other_speech).append((s["bag"], w, kind))
    bad = [(b, w["window"], w["label"], w["confidence"]) for b, w, _ in speech
           if w["label"] != "neutral" and w["confidence"] > NEUTRAL_SPEECH_MAX]
    bad_other = [(b, w["window"], w["label"], w["confidence"], k) for b, w, k in other_speech
                 if w["label"] != "neutral" and w["confidence"] > NEUTRAL_SPEECH_MAX]
    windows = sum(s["windows"] for s in segs)
    return {"wrong_above_0.8": {"windows": windows, "failures": wrong_high, "pass": not wrong_high},
            "neutral_speech_above_0.5": {"windows": len(speech), "failures": bad, "pass": not bad,
                                         "not_counted": {"windows": len(other_speech), "failures": bad_other}}}


def render(segs: list[dict], chk: dict, title: str) -> str:
    lines = [f"### {title}", "", "| segment (bag) | annotated | windows | modalities | segment label (mean score) | "
             "window labels | max wrong conf |", "|---|---|---|---|---|---|---|"]
    for s in segs:
        wl = ", ".join(f"{k} {v}" for k, v in sorted(s["window_labels"].items(), key=lambda kv: -kv[1]))
        mark = "" if s["label"] == s["annotated"] else " ✗"
        lines.append(f"| {s['bag']} | {s['annotated']} | {s['windows']} | {', '.join(s['modalities'])} | "
                     f"{s['label']} ({s['confidence']:.2f}){mark} | {wl} | {s['max_wrong_confidence']:.2f} |")
    labels = list(segs[0]["mean_scores"]) if segs else []
    ann_seg = Counter(s["annotated"] for s in segs)
    pred_seg = Counter(s["label"] for s in segs)
    ann_win = Counter(s["annotated"] for s in segs for _ in s["rows"])
    pred_win = Counter(w["label"] for s in segs for w in s["rows"])
    right_seg = sum(s["label"] == s["annotated"] for s in segs)
    right_win = sum(w["label"] == s["annotated"] for s in segs for w in s["rows"])
    nwin = sum(s["windows"] for s in segs)
    lines += ["", "| label | annotated segments | predicted segments | annotated windows | predicted windows |",
              "|---|---|---|---|---|"]
    for lab in labels:
        lines.append(f"| {lab} | {ann_seg[lab]} | {pred_seg[lab]} | {ann_win[lab]} | {pred_win[lab]} |")
    lines += ["", f"Segments right: {right_seg}/{len(segs)}; windows right: {right_win}/{nwin}.", ""]
    c1, c2 = chk["wrong_above_0.8"], chk["neutral_speech_above_0.5"]
    lines.append(f"- Check 1, no wrong label above {WRONG_MAX} confidence: **{'PASS' if c1['pass'] else 'FAIL'}** "
                 f"({len(c1['failures'])} of {c1['windows']} windows wrong above {WRONG_MAX}"
                 + (": " + ", ".join(f"{b}#{i} {lab} {c:.2f}" for b, i, lab, c in c1["failures"][:12])
                    + (" ..." if len(c1["failures"]) > 12 else "") if c1["failures"] else "") + ")")
    lines.append(f"- Check 2, neutral calm speech never a non-neutral label above {NEUTRAL_SPEECH_MAX}: "
                 f"**{'PASS' if c2['pass'] else 'FAIL'}** ({len(c2['failures'])} of {c2['windows']} speech windows"
                 + (": " + ", ".join(f"{b}#{i} {lab} {c:.2f}" for b, i, lab, c in c2["failures"][:12])
                    + (" ..." if len(c2["failures"]) > 12 else "") if c2["failures"] else "") + ")")
    nc = c2["not_counted"]
    if nc["windows"]:
        lines.append(f"- Not counted in check 2 (neutral, not calm read speech): {len(nc['failures'])} of "
                     f"{nc['windows']} windows non-neutral above {NEUTRAL_SPEECH_MAX}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", type=Path, help="evaluation report folder(s) (with windows.json)")
    ap.add_argument("--inventory", type=Path, help="inventory.json of make_real_check.sh (voice kinds)")
    ap.add_argument("--md", type=Path, help="also write the Markdown here")
    ap.add_argument("--json", type=Path, help="also write segments + checks as JSON here")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a check fails")
    args = ap.parse_args(argv)
    kinds = {}
    if args.inventory:
        inv = json.loads(args.inventory.read_text())
        kinds = {c["clip_id"]: c["voice"]["kind"] for c in inv["clips"] if c.get("voice")}
    text, failed, dump = "", False, {}
    for rep in args.reports:
        segs = segments(load_rows(rep))
        chk = checks(segs, kinds)
        failed |= not (chk["wrong_above_0.8"]["pass"] and chk["neutral_speech_above_0.5"]["pass"])
        text += render(segs, chk, str(rep)) + "\n"
        dump[str(rep)] = {"segments": [{k: v for k, v in s.items() if k != "rows"} for s in segs], "checks": chk}
    print(text, end="")
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1) + "\n")
    return 1 if (failed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
