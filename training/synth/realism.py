"""Realism check of the rendered faces: does the real-face expert see the expression we meant to draw?

The face stream of nano (emotion_ros/model/face_encoder.py) feeds the FER2013 expert's probabilities to the
LLM. It only helps on real people if, in training, those probabilities carry the rendered expression: a
renderer whose faces the expert does not recognise teaches the model to ignore the stream. This script renders
``--per-class`` clips per MER6 expression with the generator's own renderer (training/synth/face.py, talking
mouth off, full intensity), runs :class:`emotion_ros.backbones.fer.FaceExpert` on each clip's apex frame
(the frame of strongest expression), maps FER2013's classes onto MER6 (face_encoder.LABEL_MAPS: disgust -> angry,
fear -> worried) and reports, per expression, the agreement of the expert's top class with the rendered
label, the face detection rate and the mean probability of the intended class.

    python -m emotion_ros_training.synth.realism --per-class 24 --seed 99 [--out training/synth/REALISM.md]

Use a seed other than the training data's (2024, scripts/train_nano.sh): the renderer is tuned on this
check, the training data must not be the tuning set.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np

from emotion_ros.model.face_encoder import onto_labels
from emotion_ros_training.synth.face import APEX, render_clip

MER6 = ("neutral", "happy", "sad", "angry", "worried", "surprise")


def measure(per_class: int = 24, seed: int = 99, frames: int = 8, size=(224, 224), expert=None) -> dict:
    """{expression: {"n", "detected", "agree", "p_intended", "top": Counter}} over ``per_class`` clips each."""
    from emotion_ros.backbones.fer import FaceExpert

    expert = expert or FaceExpert(detect_every=1)
    rng = np.random.default_rng(seed)
    out = {}
    for emotion in MER6:
        if emotion not in APEX:
            continue
        n = det = agree = 0
        p_int, top = [], Counter()
        for _ in range(per_class):
            clip, info = render_clip(emotion, frames, rng, size=size)
            frame = clip[info["apex_frame"]]
            e = expert.predict(frame)
            n += 1
            if e.probs is None:
                top["<no face>"] += 1
                continue
            det += 1
            mer = onto_labels(e.probs, MER6)
            guess = max(mer, key=mer.get)
            top[guess] += 1
            agree += guess == emotion
            p_int.append(mer[emotion])
        out[emotion] = {"n": n, "detected": det, "agree": agree,
                        "p_intended": float(np.mean(p_int)) if p_int else 0.0, "top": top}
    return out


def table(res: dict) -> str:
    lines = ["| rendered | faces found | expert agrees | mean p(intended) | expert's top classes |",
             "|---|---|---|---|---|"]
    tot_n = tot_a = 0
    for emo, r in res.items():
        tops = ", ".join(f"{k} {v}" for k, v in r["top"].most_common(3))
        lines.append(f"| {emo} | {r['detected']}/{r['n']} | {r['agree']}/{r['n']} ({100 * r['agree'] / r['n']:.0f} %) "
                     f"| {r['p_intended']:.2f} | {tops} |")
        tot_n += r["n"]
        tot_a += r["agree"]
    lines.append(f"| **all** | | **{tot_a}/{tot_n} ({100 * tot_a / tot_n:.0f} %)** | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Agreement of the real-face expert with the rendered expression.")
    ap.add_argument("--per-class", type=int, default=24, help="clips rendered per MER6 expression")
    ap.add_argument("--seed", type=int, default=99, help="renderer seed (not the training data's 2024)")
    ap.add_argument("--size", type=int, default=224, help="frame size (square), as the generator renders")
    args = ap.parse_args(argv)
    res = measure(args.per_class, args.seed, size=(args.size, args.size))
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
