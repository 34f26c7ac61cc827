"""The ablation report: the paper's Tables 8-11 in miniature, on a held-out synthetic test set.

    python -m emotion_ros_training.report --recipe tiny|nano --manifest M --out DIR [--variants ...] [--steps-scale F]
                              [--reuse RUN]

Trains (or reuses) one model per variant with emotion_ros_training.train and scores the test split with
emotion_ros_training.evaluate (labels from the label path, emotion_ros.evaluation.metrics):
- ``stage1``        Stage 1 only (perception)                          Table 10 row 1 / Table 8 ✓
- ``stage2``        Stage 1 + Stage 2 (perception-to-cognition)         Table 10 row 3
- ``joint``         single joint training from scratch (Stage-2 mixture, steps of both stages)  Table 10 row 2
- ``no_prefusion``  Stage 1 without the Conv-Attention pre-fusion (both branches off: the fusion
                    stream carries no input information)                Table 8 ✗
- ``audio_only`` / ``vision_only`` / ``text_only``: Stage 1 trained and tested with one input
                    modality (the others are removed exactly like a missing input)  Table 11 in spirit
Plus a reference row that trains nothing of the model: logistic regression on the pooled frozen audio +
vision features (training/probe.py), the yardstick for how much the trained path extracts.
Writes ``DIR/report.md`` and ``DIR/report.json``: accuracy, weighted F1 and per-label accuracy per
variant, accuracy per subset (consistent / conflict / missing modality), which modality the model
follows on the conflict subset, and the chance levels (uniform 1/|labels|, majority class).
Each variant's evaluation is kept beside its weights (``report_eval_<split>.json``, keyed by the SHA-256 of
the weights and the manifest), so report invocations can run side by side and a last one only collects.
Variants trained with reasoning data (stage2, joint) also get the ``think`` path scored (``--think N``).
``--reuse RUN`` takes ``RUN/stage1/final`` and ``RUN/stage2/final`` (e.g. the shipped nano training)
instead of training stage1/stage2 again. Variants whose final weights already exist are not retrained.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from emotion_ros.io import sha256_file, write_text

VARIANTS = {
    # name: (stage, init-from variant, modalities, model overrides, description)
    "stage1": ("1", None, ("audio", "vision", "text"), {}, "Stage 1 only (perception)"),
    "stage2": ("2", "stage1", ("audio", "vision", "text"), {}, "Stage 1 + 2 (perception-to-cognition)"),
    "joint": ("joint", None, ("audio", "vision", "text"), {}, "single joint training"),
    "no_prefusion": ("1", None, ("audio", "vision", "text"),
                     {"fusion__use_attention": False, "fusion__use_conv": False}, "Stage 1, no Conv-Attention"),
    "audio_only": ("1", None, ("audio",), {}, "Stage 1, audio only"),
    "vision_only": ("1", None, ("vision",), {}, "Stage 1, vision only"),
    "text_only": ("1", None, ("text",), {}, "Stage 1, text only"),
}


def run_variant(name: str, ns, out: Path, cache: str) -> dict:
    from emotion_ros_training.evaluate import evaluate_cached
    from emotion_ros_training.features import FeatureCache
    from emotion_ros_training.data.manifest import read_manifest
    from emotion_ros_training.recipes import get_recipe
    from emotion_ros_training.train import TrainArgs, Trainer
    from emotion_ros_training import distributed as D

    stage, init_from, mods, overrides, desc = VARIANTS[name]
    run_dir = out / "runs" / name
    final = run_dir / f"stage{stage}" / "final"
    reuse = ns.reuse and name in ("stage1", "stage2")
    if reuse:
        final = Path(ns.reuse) / f"stage{stage}" / "final"
        if not final.is_dir():
            raise FileNotFoundError(f"--reuse: {final} does not exist")
    recipe = get_recipe(ns.recipe)
    t0 = time.time()
    train_result = None
    if not final.is_dir():
        steps = max(1, int(round(recipe.stage(stage).steps * ns.steps_scale)))
        init = None
        if init_from:
            init = str(_final_of(init_from, ns, out))
        args = TrainArgs(recipe=ns.recipe, manifest=ns.manifest, stage=stage, out=str(run_dir), resume=True,
                         init=init, cache=cache, steps=steps, modalities=mods, model_overrides=dict(overrides),
                         progress=not ns.no_progress, seed=ns.seed, threads=ns.threads)
        train_result = Trainer(args, D.DistInfo()).run()
    train_seconds = time.time() - t0
    # evaluate the final weights on the held-out split (once: the result is kept beside the weights)
    from emotion_ros.model.checkpoint import load_trainable, read_config
    from emotion_ros.model.emotion_llama import build_model

    think = ns.think if stage in ("2", "joint") else 0  # the reasoning path exists only after reasoning data
    key = {"weights": sha256_file(final / "config.json"), "manifest": sha256_file(ns.manifest),
           "split": ns.split, "modalities": list(mods), "think": think}
    saved = final.parent / f"report_eval_{ns.split}.json"
    try:
        done = json.loads(saved.read_text()) if saved.is_file() else {}
    except ValueError:  # a file cut by an interruption: evaluate again
        done = {}
    if isinstance(done, dict) and done.get("key") == key:
        metrics, eval_seconds = done["metrics"], done["eval_seconds"]
    else:
        cfg = recipe.model_config(**overrides)
        model = build_model(cfg)
        load_trainable(model, final)
        fc = FeatureCache(cache, cfg, cfg.vision.num_frames, recipe.frame_size)
        records = [r for r in read_manifest(ns.manifest) if r.split == ns.split]
        records = fc.ensure(records, model, recipe.encode_batch, progress=not ns.no_progress)
        t1 = time.time()
        metrics = evaluate_cached(model, fc, records, modalities=mods, think=think, progress=not ns.no_progress)
        eval_seconds = time.time() - t1
        write_text(saved, json.dumps({"key": key, "metrics": metrics, "eval_seconds": eval_seconds}, indent=1))
    md = read_config(final).get("metadata") or {}
    return {"variant": name, "description": desc, "stage": stage, "modalities": list(mods),
            "overrides": overrides, "final": str(final), "reused": bool(reuse),
            "train_steps": md.get("steps"), "train_seconds": train_seconds if train_result else None,
            "eval_seconds": eval_seconds, "metrics": metrics}


def run_probe(ns, cache: str) -> dict:
    """The frozen-feature reference (training/probe.py) on the same train/test split and feature cache."""
    from emotion_ros_training.data.manifest import read_manifest
    from emotion_ros_training.evaluate import compute_metrics
    from emotion_ros_training.features import FeatureCache
    from emotion_ros_training.probe import probe_predictions
    from emotion_ros_training.recipes import get_recipe
    from emotion_ros.model.emotion_llama import build_model

    recipe = get_recipe(ns.recipe)
    cfg = recipe.model_config()
    fc = FeatureCache(cache, cfg, cfg.vision.num_frames, recipe.frame_size)
    records = read_manifest(ns.manifest)
    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == ns.split]
    missing = [r for r in train + test if not fc.has(r)]
    if missing:  # encoders needed only for clips not cached yet
        fc.ensure(missing, build_model(cfg), recipe.encode_batch, progress=not ns.no_progress)
    train = [r for r in train if fc.has(r)]
    test = [r for r in test if fc.has(r)]
    metrics = compute_metrics(test, probe_predictions(fc, train, test, seed=ns.seed or 0))
    return {"variant": "feature_probe", "description": "logistic regression on pooled frozen audio+vision "
            "features (no fusion, no LLM, no text)", "n_train": len(train), "metrics": metrics}


def _final_of(variant: str, ns, out: Path) -> Path:
    stage = VARIANTS[variant][0]
    if ns.reuse and variant in ("stage1", "stage2"):
        return Path(ns.reuse) / f"stage{stage}" / "final"
    return out / "runs" / variant / f"stage{stage}" / "final"


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _pct_n(x, n) -> str:
    return "—" if x is None else f"{100 * x:.1f} (n={n})"


def _num(x) -> str:
    return "—" if x is None else f"{x:.2f}"


def render_markdown(report: dict) -> str:
    res = report["results"]
    labels = report["labels"]
    chance = report["chance"]
    lines = [f"# Ablation report ({report['recipe']} recipe, held-out synthetic test set)", ""]
    lines += [f"Manifest `{report['manifest']}`, split `{report['split']}`: {report['n_test']} clips "
              f"({', '.join(f'{k} {v}' for k, v in report['test_kinds'].items())}). Labels: {', '.join(labels)}.",
              f"Chance: uniform {_pct(chance['uniform'])} % (1/{len(labels)}), majority class "
              f"{_pct(chance['majority'])} %. All numbers are percentages; label path (label set scored, argmax).",
              f"Command: `{report['command']}`", ""]
    if report.get("steps_scale", 1.0) != 1.0:
        lines[-1:-1] = ["", f"Budget: every variant trained at {report['steps_scale']}x its recipe's steps "
                            "(a controlled comparison at a smaller budget)."]

    def row(v):
        r = res.get(v)
        if r is None:
            return None
        m = r["metrics"]
        return m["overall"]["accuracy"], m["overall"].get("weighted_f1")

    def table(title, rows):
        out = [f"## {title}", "", "| variant | accuracy | weighted F1 |", "|---|---|---|"]
        for label, v in rows:
            x = row(v)
            if x is not None:
                out.append(f"| {label} | {_pct(x[0])} | {_pct(x[1])} |")
        return out + [""]

    lines += table("Training scheme (Table 10 in miniature)",
                   [("Perception (Stage 1)", "stage1"), ("Single joint training", "joint"),
                    ("P-to-C (Stage 1 + 2)", "stage2")])
    thinking = [(v, r["metrics"]["think"]) for v, r in res.items() if r["metrics"].get("think")]
    if thinking:
        lines += ["Reasoning path (task `think`, greedy) on the first test clips: share of outputs in the "
                  "`<think>..</think><answer>..</answer>` format, with a parsable answer, and with the right one.",
                  "", "| variant | clips | well-formed | answered | answer correct |", "|---|---|---|---|---|"]
        lines += [f"| {v} | {t['n']} | {_pct(t['well_formed'])} | {_pct(t['answered'])} | "
                  f"{_pct(t['answer_accuracy'])} |" for v, t in thinking]
        lines.append("")
        with_cues = [(v, t["cues"]) for v, t in thinking if t.get("cues")]
        if with_cues:
            lines += ["Does the reasoning describe the clip? (training/cues.py) Facial / vocal cue accuracy: texts whose "
                      "named cues all match the clip's recorded cues; words: the transcript quoted; copying: texts "
                      "with an 8-token span of the instruction; distinct-2 over all texts; agreement: the structured "
                      "answer equals the label path's label.", "",
                      "| variant | facial cues | vocal cues | words | instruction copied | distinct-2 | answer = label path |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {v} | {_pct_n(c['face_cue_accuracy'], c['face_cue_n'])} | "
                      f"{_pct_n(c['voice_cue_accuracy'], c['voice_cue_n'])} | {_pct_n(c['words_accuracy'], c['words_n'])} | "
                      f"{_pct_n(c['instruction_copy_rate'], c['instruction_n'])} | "
                      f"{_num(c['distinct_2'])} | "
                      f"{_pct_n(c['answer_label_agreement'], c['agreement_n'])} |" for v, c in with_cues]
            lines.append("")
    lines += table("Conv-Attention pre-fusion (Table 8 in miniature, Stage 1)",
                   [("without pre-fusion", "no_prefusion"), ("with Conv-Attention", "stage1")])
    lines += table("Input modalities (Table 11 in spirit, Stage 1)",
                   [("audio only", "audio_only"), ("vision only", "vision_only"), ("text only", "text_only"),
                    ("audio + vision + text", "stage1")])
    probe = report.get("feature_probe")
    if probe:
        m = probe["metrics"]
        lines += ["## Reference: frozen features without the LLM", "",
                  f"Logistic regression (scikit-learn, C=0.1) on the pooled frozen audio + vision features of the "
                  f"{probe['n_train']} training clips (training/probe.py): accuracy {_pct(m['overall']['accuracy'])}, "
                  f"weighted F1 {_pct(m['overall'].get('weighted_f1'))}. It cannot read the words and trains "
                  "nothing of the model: how much label information the frozen encoders give at this data size.",
                  ""]
    lines += ["## Per-label accuracy (recall)", "", "| variant | " + " | ".join(labels) + " |",
              "|---|" + "---|" * len(labels)]
    for v, r in res.items():
        per = r["metrics"]["overall"].get("per_label_accuracy", {})
        lines.append(f"| {v} | " + " | ".join(_pct(per.get(lab)) for lab in labels) + " |")
    kinds = report["test_kinds"]
    lines += ["", "## Accuracy per subset", "", "| variant | " + " | ".join(f"{k} (n={n})" for k, n in kinds.items())
              + " |", "|---|" + "---|" * len(kinds)]
    for v, r in res.items():
        pk = r["metrics"]["per_kind"]
        lines.append(f"| {v} | " + " | ".join(_pct(pk.get(k, {}).get("accuracy")) for k in kinds) + " |")
    lines += ["", "## Conflict subset: which modality the prediction follows", "",
              "Face and voice show different emotions and the words are neutral; the label is the emotion of "
              "one of them (meta.conflict). Shares of the conflict clips whose prediction equals the face's, "
              "the voice's, the words' emotion, or none of them.", "",
              "| variant | n | face | voice | text | other | accuracy vs label |", "|---|---|---|---|---|---|---|"]
    for v, r in res.items():
        c = r["metrics"]["conflict"]
        if c.get("n"):
            f = c["follows"]
            lines.append(f"| {v} | {c['n']} | {_pct(f['face'])} | {_pct(f['voice'])} | {_pct(f['text'])} | "
                         f"{_pct(f['other'])} | {_pct(c['accuracy_vs_label'])} |")
    lines += ["", "## Runs", "", "| variant | stage | modalities | steps | train s | eval s | weights |",
              "|---|---|---|---|---|---|---|"]
    for v, r in res.items():
        ts = "reused" if r["reused"] else ("existing" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}")
        lines.append(f"| {v} | {r['stage']} | {'+'.join(r['modalities'])} | {r['train_steps']} | {ts} | "
                     f"{r['eval_seconds']:.0f} | `{r['final']}` |")
    lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emotion_ros_training.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", required=True, choices=["tiny", "nano", "paper"], help="training recipe of every variant")
    ap.add_argument("--manifest", required=True, help="MMEVerse-format JSONL manifest (train + held-out split)")
    ap.add_argument("--out", required=True, help="report folder: report.md, report.json and one run folder per variant")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {list(VARIANTS)}")
    ap.add_argument("--split", default="test", help="held-out split the variants are scored on (default test)")
    ap.add_argument("--cache", help="feature cache root (default OUT/feature_cache)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every variant's recipe steps")
    ap.add_argument("--reuse", help="run dir whose stage1/final and stage2/final are used as is")
    ap.add_argument("--seed", type=int, help="training seed of every variant (default: the recipe's)")
    ap.add_argument("--think", type=int, default=6,
                    help="also generate the reasoning (think task) for the first N test clips of the variants "
                         "trained with reasoning data (stage2, joint)")
    ap.add_argument("--threads", type=int, help="torch threads (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    ap = build_parser()
    ns = ap.parse_args(argv)
    from emotion_ros_training.threads import torch_threads

    with torch_threads(ns.threads):
        return _main(ns, argv)


def _main(ns, argv) -> int:
    names = [v.strip() for v in ns.variants.split(",") if v.strip()]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    if "stage2" in names and "stage1" not in names and not ns.reuse:
        names.insert(0, "stage1")
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = ns.cache or str(out / "feature_cache")
    results = {}
    t0 = time.time()
    for name in names:
        print(f"[report] variant {name}", file=sys.stderr, flush=True)
        results[name] = run_variant(name, ns, out, cache)
    first = next(iter(results.values()))["metrics"]
    from emotion_ros_training.data.manifest import read_manifest

    test = [r for r in read_manifest(ns.manifest) if r.split == ns.split]
    kinds: dict[str, int] = {}
    for r in test:
        k = str(r.meta.get("kind", "unknown"))
        kinds[k] = kinds.get(k, 0) + 1
    report = {
        "recipe": ns.recipe, "manifest": str(ns.manifest), "split": ns.split, "n_test": first["overall"]["n"],
        "test_kinds": dict(sorted(kinds.items())), "labels": first["by_label_space"][next(iter(first["by_label_space"]))]["labels"],
        "chance": first["chance"], "steps_scale": ns.steps_scale, "seconds": time.time() - t0,
        "command": "python -m emotion_ros_training.report " + " ".join(sys.argv[1:] if argv is None else argv),
        "results": results,
        "feature_probe": run_probe(ns, cache),
    }
    write_text(out / "report.json", json.dumps(report, indent=1))
    write_text(out / "report.md", render_markdown(report))
    print((out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
