"""ROS4HRI (REP-155) output: our labels as hri_msgs/Expression values, plain Python (testable without ROS).

hri_msgs/Expression (ROS 2, hri_msgs 2.x) carries `expression` as one of its string constants (neutral,
angry, sad, happy, surprised, disgusted, scared, ... 25 in all), `valence` and `arousal` in [-1, 1], and a
`confidence` in [0, 1], with a header. REP-155 publishes a face's expression on
`/humans/faces/<faceID>/expression`. This node looks at the whole camera frame and identifies no face, so
its default topic uses the face ID `anonymous` (an unidentified person: `hri_topic`,
/humans/faces/anonymous/expression); with a face detector running, point `hri_topic` at that face's ID.

Mapping: each label of the project's label sets (MER6, MELD7, IEMOCAP4, SENTIMENT3) goes to the closest
Expression constant (`worried` -> `scared`, sentiment `positive` -> `happy`, `negative` -> `sad`); a label
with no counterpart gives `neutral` with the confidence of that label kept, so a consumer never gets a
value outside the constants. Valence/arousal: the model's own values when it gives them, otherwise the
score-weighted mean of each label's position on Russell's circumplex (our approximate placement below,
not a measured calibration).
"""
from __future__ import annotations

import math
from typing import Sequence

# every string constant of hri_msgs/msg/Expression (emotion_ros/bags/interfaces/hri_msgs/msg/Expression.msg)
EXPRESSIONS = ("neutral", "angry", "sad", "happy", "surprised", "disgusted", "scared", "pleading", "vulnerable",
               "despaired", "guilty", "disappointed", "embarrassed", "horrified", "skeptical", "annoyed", "furious",
               "suspicious", "rejected", "bored", "tired", "asleep", "confused", "amazed", "excited")

LABEL_TO_EXPRESSION = {
    "neutral": "neutral", "happy": "happy", "joy": "happy", "sad": "sad", "sadness": "sad", "angry": "angry",
    "anger": "angry", "surprise": "surprised", "surprised": "surprised", "fear": "scared", "worried": "scared",
    "disgust": "disgusted", "frustrated": "annoyed", "excited": "excited", "positive": "happy",
    "negative": "sad",
}

# (valence, arousal) of each label, approximate positions on Russell's circumplex of affect
CIRCUMPLEX = {
    "neutral": (0.0, 0.0), "happy": (0.8, 0.5), "joy": (0.8, 0.5), "excited": (0.7, 0.8),
    "surprise": (0.3, 0.8), "surprised": (0.3, 0.8), "sad": (-0.7, -0.4), "sadness": (-0.7, -0.4),
    "angry": (-0.6, 0.8), "anger": (-0.6, 0.8), "frustrated": (-0.5, 0.5), "fear": (-0.6, 0.7),
    "worried": (-0.5, 0.5), "disgust": (-0.7, 0.3), "positive": (0.6, 0.2), "negative": (-0.6, 0.2),
}


def expression_for(label: str) -> str:
    """The hri_msgs/Expression constant for one of our labels ('neutral' when there is none)."""
    return LABEL_TO_EXPRESSION.get(str(label).strip().lower(), "neutral")


def valence_arousal(labels: Sequence[str], scores: Sequence[float], valence: float = math.nan,
                    arousal: float = math.nan) -> tuple[float, float]:
    """The model's valence/arousal where finite, else the score-weighted circumplex position, in [-1, 1]."""
    v = a = 0.0
    total = 0.0
    for lab, sc in zip(labels, scores):
        pos = CIRCUMPLEX.get(str(lab).strip().lower())
        if pos is None or not math.isfinite(float(sc)):
            continue
        v, a, total = v + float(sc) * pos[0], a + float(sc) * pos[1], total + float(sc)
    if total > 0:
        v, a = v / total, a / total
    v = float(valence) if math.isfinite(float(valence)) else v
    a = float(arousal) if math.isfinite(float(arousal)) else a
    return max(-1.0, min(1.0, v)), max(-1.0, min(1.0, a))
