"""Evaluate a trained checkpoint on a manifest with the benchmark metrics (emotion_ros.evaluation.metrics).

    python -m emotion_ros_training.evaluate --checkpoint RUN/stage2/final --manifest M [--split test] [--out m.json]
                                [--cache DIR] [--modalities audio,vision,text] [--think N] [--wheels DIR] [--waf-variant affectgpt]

Labels come from the label path the node uses (the label set scored in one pass, argmax), on the cached
frozen-encoder features (emotion_ros_training.features), in each clip's native label space. Reported:
- overall and per label space: accuracy, weighted/macro F1, per-label precision/recall/F1/support,
  confusion matrix (emotion_ros.evaluation.metrics.classification_report);
- per source dataset: the official metric of that set (emotion_ros.evaluation.metrics.score_dataset: score.sh's
  protocol, the label path's label as the response; --wheels DIR for the hit rate and OV F, --waf-variant) and
  Avg over the sets where it is defined (an undefined one, e.g. WAF on an all-neutral set, says why);
- per synthetic subset (meta.kind: consistent / conflict / no_audio / no_video / no_face);
- on the conflict subset: how often the prediction equals the face's, the voice's, the words' emotion
  (which modality the model follows);
- chance levels: uniform 1/|labels| and the majority-class rate of the evaluated set;
- optionally (--think N) the reasoning path on N clips: generated <think>..</think><answer>..</answer>,
  share with a well-formed answer, the accuracy of the parsed answers, and the official metric of each set
  on the free-text answers (the text inside <answer>, the whole generation when the tags are missing),
  the teacher-forced loss per token of the reference reasoning (think.target_nll), and the cue metrics of
  training/cues.py (think.cues: facial / vocal cue accuracy, quoted words, instruction
  copying, distinct-2, answer vs label-path agreement).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import torch

from emotion_ros.evaluation import metrics as M
from emotion_ros.io import write_text
from emotion_ros_training.threads import torch_threads


@torch.no_grad()
def predict_cached(model, cache, records, task: str = "emotion", modalities=("audio", "vision", "text"),
                   progress: bool = False) -> list[dict]:
    """Label-path prediction per record from cached features: {"label", "probs"} in the record's label space."""
    from tqdm import tqdm

    from emotion_ros_training.features import keep_modalities

    was = model.training
    model.eval()
    out = []
    full = tuple(sorted(modalities)) == ("audio", "text", "vision")
    try:
        for rec in tqdm(records, desc="evaluate", unit="clip", disable=not progress, dynamic_ncols=True):
            enc = cache.load(rec)
            if not full:
                enc = keep_modalities(enc, modalities)
            labels = list(rec.label_space.labels)
            pred = model.prediction(model.llm.score_labels(model.prompts(enc, task, labels)[0], labels)[0], labels)
            out.append({"label": pred.label, "probs": list(pred.probs.values())})
    finally:
        model.train(was)
    return out


@torch.no_grad()
def think_cached(model, cache, records, max_new_tokens: int = 160, modalities=("audio", "vision", "text"),
                 progress: bool = False, priors: Sequence | None = None) -> list[dict]:
    """Reasoning path (task "think", greedy) per record: generated text and the parsed answer. ``priors``:
    per record the label path's probabilities, the answer prior of the engine's reasoning_answer "joint"
    (None: the answer from the reasoning alone)."""
    from tqdm import tqdm

    from emotion_ros.model.prompt import instruction as make_instruction
    from emotion_ros.model.prompt import parse_answer
    from emotion_ros_training.features import keep_modalities

    model.eval()
    out = []
    for i, rec in enumerate(tqdm(records, desc="think", unit="clip", disable=not progress, dynamic_ncols=True)):
        enc = keep_modalities(cache.load(rec), modalities)
        labels = list(rec.label_space.labels)
        prompt = model.prompts(enc, "think", labels)[0]
        prior = tuple(priors[i]) if priors is not None else ()
        text = "".join(model.llm.generate(prompt, model.reasoning_rules("think", labels, max_new_tokens,
                                                                        answer_prior=prior)))
        out.append({"clip_id": rec.clip_id, "text": text, "answer": parse_answer(text, labels),
                    "well_formed": "<think>" in text and "</answer>" in text,
                    "instruction": make_instruction("think", labels)})  # what model.prompt used (instruction=None)
    return out


@torch.no_grad()
def think_target_nll(model, cache, records, modalities=("audio", "vision", "text")) -> float | None:
    """Mean over the clips with a description of the teacher-forced loss per token of the clip's reference
    reasoning (``format_think_target(description, label)``) under the think prompt: how well the LLM can
    write the reasoning asked of it, whatever the decoder does (None: no clip has one). Why it is reported:
    on the nano adapters of 2026-12-03 it is 6.99 nats on 12 held-out clips, where plain Gemma-3-270M given
    the instruction alone scores 3.48 - the label-trained LoRA unlearned the language the texts need."""
    from emotion_ros.model.prompt import format_think_target
    from emotion_ros_training.curriculum import answer_text as target_answer
    from emotion_ros_training.features import keep_modalities

    model.eval()
    losses = [float(model.loss(keep_modalities(cache.load(r), modalities), "think", [list(r.label_space.labels)],
                               None, [format_think_target(r.description, target_answer(r))]))
              for r in records if r.description]
    return sum(losses) / len(losses) if losses else None


def _truth(record):
    """A record's ground truth as the official metric of its set takes it (label list for multi-label/OV)."""
    metric = M.dataset_metric(record.dataset)
    return list(record.labels) if metric in (M.MAP, M.OV_F) or record.label_space.multi_label else record.label


def score_sets(records: Sequence, responses: Sequence, wheels=None, waf_variant: str = M.WAF_EMOTION_LLAMA_V2,
               probs: Sequence[Sequence[float]] | None = None) -> dict:
    """The official metric per source data set: {dataset: metrics.score_dataset(...)}.

    responses: per record the label path's label or the generated answer text; probs (label path only):
    per-label scores, reported beside the binary mAP of multi-label sets as a non-paper extra."""
    groups = defaultdict(list)
    for i, r in enumerate(records):
        groups[r.dataset].append(i)
    out = {}
    for name, idx in groups.items():
        extra = {}
        spaces = {records[i].label_space.labels for i in idx}
        if probs is not None and len(spaces) == 1 and M.dataset_metric(name) == M.MAP:
            extra = {"scores": [probs[i] for i in idx], "labels": list(next(iter(spaces)))}
        out[name] = M.score_dataset(name, [_truth(records[i]) for i in idx], [responses[i] for i in idx],
                                    wheels=wheels, waf_variant=waf_variant,
                                    sentiment_scores=[records[i].valence for i in idx], **extra)
    return out


def compute_metrics(records: Sequence, preds: Sequence[dict], wheels=None,
                    waf_variant: str = M.WAF_EMOTION_LLAMA_V2) -> dict:
    """All the numbers of the module docstring from records + predictions."""
    if len(records) != len(preds) or not records:
        raise ValueError("need one prediction per record and at least one record")
    y_true = [r.label for r in records]
    y_pred = [p["label"] for p in preds]
    spaces = defaultdict(list)
    for i, r in enumerate(records):
        spaces[r.label_space.name].append(i)
    by_space = {}
    for name, idx in spaces.items():
        labels = list(records[idx[0]].label_space.labels)
        by_space[name] = M.classification_report([y_true[i] for i in idx], [y_pred[i] for i in idx], labels)
    per_dataset = score_sets(records, y_pred, wheels, waf_variant, [p["probs"] for p in preds])
    kinds = defaultdict(list)
    for i, r in enumerate(records):
        kinds[str(r.meta.get("kind", "unknown"))].append(i)
    per_kind = {k: {"n": len(idx), "accuracy": M.accuracy([y_true[i] for i in idx], [y_pred[i] for i in idx])}
                for k, idx in sorted(kinds.items())}
    n_labels = [len(r.label_space.labels) for r in records]
    majority = Counter(y_true).most_common(1)[0][1] / len(y_true)
    overall = {"n": len(records), "accuracy": M.accuracy(y_true, y_pred)}
    if len(spaces) == 1:
        rep = next(iter(by_space.values()))
        overall.update(weighted_f1=rep["weighted_f1"], macro_f1=rep["macro_f1"],
                       per_label_accuracy={lab: v["recall"] for lab, v in rep["per_class"].items()})
    return {
        "overall": overall,
        "by_label_space": by_space,
        "per_dataset": per_dataset,
        "avg": M.average_over_sets(per_dataset),
        "avg_over": [k for k, v in per_dataset.items() if M.is_defined(v)],
        "undefined": {k: v["undefined"] for k, v in per_dataset.items() if v.get("undefined")},
        "per_kind": per_kind,
        "conflict": conflict_analysis(records, y_pred),
        "chance": {"uniform": float(sum(1.0 / n for n in n_labels) / len(n_labels)), "majority": majority},
        "predictions": [{"clip_id": r.clip_id, "true": t, "pred": p["label"],
                         "probs": [round(x, 5) for x in p["probs"]]} for r, t, p in zip(records, y_true, preds)],
    }


def conflict_analysis(records: Sequence, y_pred: Sequence[str]) -> dict:
    """On clips whose face and voice show different emotions: which modality the prediction follows."""
    idx = [i for i, r in enumerate(records)
           if r.meta.get("kind") == "conflict" and r.meta.get("face_emotion") and r.meta.get("voice_emotion")]
    if not idx:
        return {"n": 0}
    counts = Counter()
    for i in idx:
        r, p = records[i], y_pred[i]
        face, voice, text = r.meta.get("face_emotion"), r.meta.get("voice_emotion"), r.meta.get("text_emotion")
        if p == face:
            counts["face"] += 1
        elif p == voice:
            counts["voice"] += 1
        elif text is not None and p == text:
            counts["text"] += 1
        else:
            counts["other"] += 1
    n = len(idx)
    return {"n": n, "follows": {k: counts[k] / n for k in ("face", "voice", "text", "other")},
            "accuracy_vs_label": M.accuracy([records[i].label for i in idx], [y_pred[i] for i in idx])}


_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)


def answer_text(text: str) -> str:
    """The free-text answer of a `think` generation: inside the last <answer>..</answer> (an unterminated
    final <answer> counts), else the whole text. This is the response the official metrics score."""
    found = _ANSWER.findall(text or "")
    return (found[-1] if found else (text or "")).strip()


def evaluate_cached(model, cache, records, modalities=("audio", "vision", "text"), think: int = 0,
                    progress: bool = False, wheels=None, waf_variant: str = M.WAF_EMOTION_LLAMA_V2,
                    think_answer: str = "joint") -> dict:
    """Label path on every record (+ the reasoning path on the first `think`, its answer chosen as the
    engine's ``reasoning_answer`` = ``think_answer`` does) and all their metrics."""
    preds = predict_cached(model, cache, records, modalities=modalities, progress=progress)
    out = compute_metrics(records, preds, wheels, waf_variant)
    out["modalities"] = list(modalities)
    if think:
        subset = list(records)[:think]
        priors = [p["probs"] for p in preds[:think]] if think_answer == "joint" else None
        gen = think_cached(model, cache, subset, modalities=modalities, progress=progress, priors=priors)
        answered = [g for g in gen if g["answer"] is not None]
        truth = {r.clip_id: r.label for r in records}
        answers = [answer_text(g["text"]) for g in gen]
        per_dataset = score_sets(subset, answers, wheels, waf_variant)
        out["think"] = {"n": len(gen), "answer_from": think_answer, "well_formed": sum(g["well_formed"] for g in gen) / len(gen),
                        "answered": len(answered) / len(gen),
                        "answer_accuracy": (sum(g["answer"] == truth[g["clip_id"]] for g in gen) / len(gen)),
                        "per_dataset": per_dataset, "avg": M.average_over_sets(per_dataset),
                        "responses": [{"clip_id": g["clip_id"], "response": a} for g, a in zip(gen, answers)],
                        "cues": think_cue_metrics(subset, gen, preds[:think]),
                        "target_nll": think_target_nll(model, cache, subset, modalities),
                        "samples": gen[:3]}
    return out


def think_cue_metrics(records: Sequence, gen: Sequence[dict], preds: Sequence[dict]) -> dict:
    """training/cues.py's metrics of the generated reasoning: named facial / vocal cues and quoted words vs the
    clip's recorded cues (meta["cues"]; clips without them count only for the text-level metrics), instruction
    copying, distinct-2, and the structured answer vs the label path's label of the same clip."""
    from emotion_ros_training.cues import cue_metrics

    items = [{"text": g["text"], "cues": r.meta.get("cues"), "instruction": g.get("instruction"),
              "answer": g["answer"], "label_path": p["label"]} for r, g, p in zip(records, gen, preds)]
    return cue_metrics(items)


def load_checkpoint_model(checkpoint: str, device: str = "cpu"):
    """Build the model a trainable checkpoint belongs to (its recorded config) with the weights loaded."""
    from emotion_ros.model.checkpoint import read_config
    from emotion_ros.model.config import ModelConfig
    from emotion_ros.model.emotion_llama import build_model

    meta = read_config(checkpoint)
    cfg = ModelConfig.from_dict(meta["model_config"])
    cfg.trainable_path = str(checkpoint)
    return build_model(cfg, device=device), meta


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emotion_ros_training.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="trainable checkpoint dir (e.g. RUN/stage2/final)")
    ap.add_argument("--manifest", required=True, help="MMEVerse-format JSONL manifest of the clips")
    ap.add_argument("--split", default="test", help="manifest split to evaluate (default test)")
    ap.add_argument("--cache", help="feature cache root (default: the cache training used for this checkpoint: "
                                    "recorded in it, or RUN/feature_cache of its run; else $EMOTION_ROS_CACHE/features)")
    ap.add_argument("--frame-size", type=int, nargs=2, metavar=("W", "H"),
                    help="decode size used when the features were cached (tiny recipe: 64 64)")
    ap.add_argument("--modalities", default="audio,vision,text",
                    help="inputs kept, comma list of audio, vision, text (the others are removed like a missing input)")
    ap.add_argument("--think", type=int, default=0, help="also generate reasoning for the first N clips")
    ap.add_argument("--think-answer", default="joint", choices=["joint", "reasoning"],
                    help="how the think answer is chosen (the engine's reasoning_answer; default joint)")
    ap.add_argument("--wheels", metavar="DIR",
                    help="the official emotion_wheel folder (format.csv, synonym.xlsx, wheel1..5.xlsx) for hit rate / OV F")
    ap.add_argument("--waf-variant", choices=list(M.WAF_VARIANTS), default=M.WAF_EMOTION_LLAMA_V2,
                    help="WAF of the sentiment sets: the paper's script (default) or AffectGPT's")
    ap.add_argument("--out", help="write the metrics JSON here")
    ap.add_argument("--threads", type=int, help="torch threads (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    ap = build_parser()
    ns = ap.parse_args(argv)
    with torch_threads(ns.threads):
        return _main(ns)


def open_cache(model, meta: dict, root: str | os.PathLike, frame_size: tuple | None = None):
    """The frozen-feature cache of `model` under `root`; the decode size defaults to the one of the recipe
    recorded in the checkpoint metadata (the tiny recipe decodes 64x64)."""
    from emotion_ros_training.features import FeatureCache

    if frame_size is None:
        from emotion_ros_training.recipes import RECIPES

        rname = (meta.get("metadata") or {}).get("recipe")
        if rname in RECIPES:
            frame_size = RECIPES[rname]().frame_size
    return FeatureCache(str(root), model.cfg, model.cfg.vision.num_frames, frame_size)


def load_wheels(path: str | None):
    """The official emotion-wheel folder as metrics.EmotionWheels (None without a path); SystemExit with the
    reason when the folder is not in the official format."""
    if not path:
        return None
    try:
        return M.EmotionWheels.load(path)
    except M.WheelError as err:
        raise SystemExit(str(err)) from None


def _main(ns) -> int:

    from emotion_ros_training.data.manifest import read_manifest

    t0 = time.time()
    wheels = load_wheels(ns.wheels)
    model, meta = load_checkpoint_model(ns.checkpoint)
    records = [r for r in read_manifest(ns.manifest) if r.split == ns.split]
    if not records:
        raise SystemExit(f"{ns.manifest}: no records in split {ns.split!r}")
    frame_size = tuple(ns.frame_size) if ns.frame_size else None
    from emotion_ros_training.features import default_cache_root

    cache_root = ns.cache or str(default_cache_root(ns.checkpoint, meta.get("metadata")))
    print(f"features: cache {cache_root}", file=sys.stderr)
    cache = open_cache(model, meta, cache_root, frame_size)
    records = cache.ensure(records, model, progress=not ns.no_progress)
    mods = tuple(m.strip() for m in ns.modalities.split(",") if m.strip())
    res = evaluate_cached(model, cache, records, mods, ns.think, progress=not ns.no_progress, wheels=wheels,
                          waf_variant=ns.waf_variant, think_answer=ns.think_answer)
    res["checkpoint"] = str(ns.checkpoint)
    res["manifest"] = str(ns.manifest)
    res["split"] = ns.split
    res["dropped"] = dict(cache.stats.drops)
    res["feature_cache"] = str(cache.dir)
    res["seconds"] = time.time() - t0
    text = json.dumps(res, indent=1)
    if ns.out:
        write_text(ns.out, text)
    summary = {k: res[k] for k in ("overall", "avg", "avg_over", "undefined", "per_kind", "conflict", "chance",
                                   "dropped", "seconds")}
    if res.get("think"):
        summary["think"] = {k: res["think"][k] for k in ("n", "well_formed", "answered", "answer_accuracy", "cues",
                                                          "target_nll")}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
