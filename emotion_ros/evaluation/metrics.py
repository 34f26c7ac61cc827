"""Emotion recognition metrics with the MMEVerse-Bench / MER-UniBench protocol (paper section 5.2).

One module for training (validation scores) and evaluation (bag reports). Plain numpy, no sklearn at
run time; the tests check every metric that sklearn also has against sklearn.

Protocol (which metric a test set is scored with, `DATASET_METRIC`):
- hit rate: MER2023, MER2024, MELD (emotion), IEMOCAP. MER-UniBench defines a hit as "the ground-truth
  label is among the labels the model predicted" (free-form MLLM output can name several emotions).
  With one top-1 label per sample, as the node produces, hit rate == accuracy. `hit_rate` accepts a
  label or a set of labels per sample, and an optional synonym mapping applied to both sides.
- WAF (weighted-average F1): CMU-MOSI, CMU-MOSEI, CH-SIMS, CH-SIMS v2. Samples whose ground truth is
  neutral are removed first (MER-UniBench scores these sets as positive vs negative); a prediction of
  "neutral" on a remaining sample simply counts as wrong. Weights = class support in the ground truth.
- OV F-score: OV-MERD+ (open vocabulary). Predicted and true emotion words are mapped to a canonical
  word by each "emotion wheel" (a JSON mapping file); per sample precision = |P & G| / |P| and
  recall = |P & G| / |G|, averaged over samples; F = 2PR / (P + R); the result is the mean over wheels.
- mAP: multi-label sets MAFW-m and BOLD: mean over classes of average precision of the scores
  (classes with no positive sample are skipped: their AP is undefined).
- accuracy: every other set (CAER, E3, DFEW, MAFW, MC-EIU, MELD-s, MC-EIU-i, ...).
- Avg: plain mean of the per-set scores (the paper's Avg-9 / Avg-18).
All values are fractions in [0, 1]; reports print them x100 like the paper.

Timing metrics for bag evaluation: label latency per window (ms stats) and coverage (share of the
annotated time covered by at least one published state).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

HIT_RATE = "hit_rate"
WAF = "waf"
ACCURACY = "accuracy"
MAP = "map"
OV_F = "ov_f"

# Test sets of MMEVerse-Bench (MER-UniBench is the first nine) and their metric, keyed by a normalised
# name (lower case, no separators): see dataset_metric().
DATASET_METRIC = {
    "mer2023": HIT_RATE, "mer23": HIT_RATE, "mer2024": HIT_RATE, "mer24": HIT_RATE,
    "meld": HIT_RATE, "melde": HIT_RATE, "iemocap": HIT_RATE,
    "mosi": WAF, "cmumosi": WAF, "mosei": WAF, "cmumosei": WAF,
    "sims": WAF, "chsims": WAF, "simsv2": WAF, "chsimsv2": WAF,
    "ovmerd": OV_F, "ovmerdplus": OV_F, "ovmerd+": OV_F,
    "mafwm": MAP, "bold": MAP,
    "caer": ACCURACY, "e3": ACCURACY, "dfew": ACCURACY, "mafw": ACCURACY, "mceiu": ACCURACY,
    "melds": ACCURACY, "mceiui": ACCURACY,
}
MER_UNIBENCH = ("MER2023", "MER2024", "MELD", "IEMOCAP", "MOSI", "MOSEI", "SIMS", "SIMS-v2", "OV-MERD+")
MMEVERSE_BENCH = MER_UNIBENCH + ("CAER", "E3", "DFEW", "MAFW", "MAFW-m", "BOLD", "MELD-s", "MC-EIU-i", "MC-EIU")


def _norm_name(name: str) -> str:
    keep = "".join(ch for ch in name.lower() if ch.isalnum() or ch == "+")
    return keep


def dataset_metric(name: str) -> str:
    """The paper's metric for a test set name (e.g. 'MER2023' -> 'hit_rate'); unknown sets -> accuracy."""
    key = _norm_name(name)
    if key in DATASET_METRIC:
        return DATASET_METRIC[key]
    return DATASET_METRIC.get(key.replace("+", "plus"), ACCURACY)


def _labels(y) -> list[str]:
    return [str(v) for v in y]


def _check_same_length(a, b, what="y_true and y_pred"):
    if len(a) != len(b):
        raise ValueError(f"{what} have different lengths ({len(a)} != {len(b)})")
    if len(a) == 0:
        raise ValueError(f"{what} are empty: nothing to score")


# ---------------------------------------------------------------------------------------- single label
def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Share of samples whose predicted label equals the true one."""
    _check_same_length(y_true, y_pred)
    return float(np.mean([str(t) == str(p) for t, p in zip(y_true, y_pred)]))


def _as_set(pred, mapping: Mapping[str, str] | None) -> set[str]:
    items = [pred] if isinstance(pred, str) else list(pred)
    out = set()
    for item in items:
        word = normalise_word(item)
        out.add(mapping.get(word, word) if mapping else word)
    return out


def hit_rate(y_true: Sequence[str], y_pred: Sequence, mapping: Mapping[str, str] | None = None) -> float:
    """MER-UniBench hit rate: share of samples whose true label is among the predicted label(s).

    y_pred items are one label or an iterable of labels; `mapping` (synonym -> canonical word, lower
    case) is applied to both sides, so "joyful" can hit "happy". Top-1 predictions: equals accuracy.
    """
    _check_same_length(y_true, y_pred)
    hits = []
    for t, p in zip(y_true, y_pred):
        truth = _as_set(t, mapping)
        hits.append(bool(truth & _as_set(p, mapping)))
    return float(np.mean(hits))


def confusion_matrix(y_true: Sequence, y_pred: Sequence, labels: Sequence[str] | None = None) -> np.ndarray:
    """counts[i, j] = samples with true label labels[i] predicted as labels[j] (sklearn's convention).

    Pairs with a label outside `labels` are left out, as in sklearn.
    """
    _check_same_length(y_true, y_pred)
    t, p = _labels(y_true), _labels(y_pred)
    labels = list(labels) if labels is not None else sorted(set(t) | set(p))
    index = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for a, b in zip(t, p):
        if a in index and b in index:
            cm[index[a], index[b]] += 1
    return cm


def per_class_prf(y_true: Sequence, y_pred: Sequence, labels: Sequence[str] | None = None) -> dict[str, dict]:
    """Per label: precision, recall, f1 (0 where undefined, like sklearn's zero_division=0), support."""
    _check_same_length(y_true, y_pred)
    t, p = np.array(_labels(y_true), dtype=object), np.array(_labels(y_pred), dtype=object)
    labels = list(labels) if labels is not None else sorted(set(t) | set(p))
    out = {}
    for lab in labels:
        tp = int(np.sum((t == lab) & (p == lab)))
        pred_pos = int(np.sum(p == lab))
        support = int(np.sum(t == lab))
        prec = tp / pred_pos if pred_pos else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        out[lab] = {"precision": prec, "recall": rec, "f1": f1, "support": support}
    return out


def weighted_f1(y_true: Sequence, y_pred: Sequence, labels: Sequence[str] | None = None) -> float:
    """F1 per class averaged with weights = true support (sklearn f1_score(average='weighted'))."""
    prf = per_class_prf(y_true, y_pred, labels)
    total = sum(v["support"] for v in prf.values())
    if total == 0:
        return 0.0
    return float(sum(v["f1"] * v["support"] for v in prf.values()) / total)


def macro_f1(y_true: Sequence, y_pred: Sequence, labels: Sequence[str] | None = None) -> float:
    prf = per_class_prf(y_true, y_pred, labels)
    return float(np.mean([v["f1"] for v in prf.values()])) if prf else 0.0


def waf(y_true: Sequence, y_pred: Sequence, neutral: str | Iterable[str] = "neutral") -> float:
    """MER-UniBench WAF for sentiment sets: weighted-average F1 after removing neutral-truth samples."""
    _check_same_length(y_true, y_pred)
    neutral_set = {normalise_word(neutral)} if isinstance(neutral, str) else {normalise_word(n) for n in neutral}
    keep = [(str(t), str(p)) for t, p in zip(y_true, y_pred) if normalise_word(t) not in neutral_set]
    if not keep:
        raise ValueError("every ground-truth sample is neutral: WAF is undefined")
    t, p = zip(*keep)
    return weighted_f1(list(t), list(p), labels=sorted(set(t) | set(p)))


# ---------------------------------------------------------------------------------------- multi-label
def average_precision(y_true: Sequence[int], y_score: Sequence[float]) -> float:
    """AP of one class = sum over thresholds of (R_n - R_{n-1}) P_n (sklearn's step definition).

    Tied scores are one threshold. Raises when there is no positive sample (AP undefined).
    """
    y = np.asarray(y_true, dtype=np.int64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError("y_true and y_score have different shapes")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("no positive sample: average precision is undefined")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    # keep the last index of each run of equal scores (one threshold per distinct score)
    last = np.r_[np.diff(s) != 0, True]
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / n_pos
    prev_recall = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev_recall) * precision))


def mean_average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """mAP over classes (columns) of a multi-label indicator matrix; classes without positives skipped."""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score must be 2-D of one shape, got {y_true.shape} and {y_score.shape}")
    aps = [average_precision(y_true[:, k], y_score[:, k]) for k in range(y_true.shape[1]) if y_true[:, k].any()]
    if not aps:
        raise ValueError("no class has a positive sample: mAP is undefined")
    return float(np.mean(aps))


def multilabel_indicator(label_sets: Sequence[Iterable[str]], labels: Sequence[str]) -> np.ndarray:
    """(n, len(labels)) 0/1 matrix from per-sample label sets."""
    index = {lab: i for i, lab in enumerate(labels)}
    out = np.zeros((len(label_sets), len(labels)), dtype=np.int64)
    for row, items in enumerate(label_sets):
        for lab in ([items] if isinstance(items, str) else items):
            if lab in index:
                out[row, index[lab]] = 1
    return out


# ---------------------------------------------------------------------------------------- open vocabulary
def normalise_word(word: str) -> str:
    return " ".join(str(word).strip().lower().split())


@dataclass
class EmotionWheels:
    """Synonym / emotion-wheel mappings for open-vocabulary scoring, loaded from a JSON file.

    File format (either form):
      {"wheels": {"wheel1": {"joyful": "happy", "glad": "happy", ...}, "wheel2": {...}}}
      {"synonyms": {"joyful": "happy", ...}}                  (one mapping = one wheel)
    Keys and values are matched case-insensitively; a word missing from a wheel maps to itself.
    """

    wheels: dict[str, dict[str, str]] = field(default_factory=lambda: {"identity": {}})

    @classmethod
    def from_dict(cls, data: Mapping) -> "EmotionWheels":
        if not isinstance(data, Mapping):
            raise ValueError("an emotion-wheel file must hold a JSON object")
        if "wheels" in data:
            raw = data["wheels"]
        elif "synonyms" in data:
            raw = {"synonyms": data["synonyms"]}
        else:
            raise ValueError("an emotion-wheel file needs a 'wheels' or a 'synonyms' object")
        if not isinstance(raw, Mapping) or not raw:
            raise ValueError("'wheels' must be a non-empty object of {word: canonical word} objects")
        wheels = {}
        for name, mapping in raw.items():
            if not isinstance(mapping, Mapping) or not all(isinstance(v, str) for v in mapping.values()):
                raise ValueError(f"wheel {name!r} must map words to canonical words (strings)")
            wheels[str(name)] = {normalise_word(k): normalise_word(v) for k, v in mapping.items()}
        return cls(wheels)

    @classmethod
    def load(cls, path: str | Path) -> "EmotionWheels":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read emotion-wheel file {path}: {err}") from err
        return cls.from_dict(data)

    def synonyms(self) -> dict[str, str]:
        """The first wheel (used for hit-rate matching of free words)."""
        return next(iter(self.wheels.values()))


def set_prf(true_sets: Sequence[Iterable[str]], pred_sets: Sequence[Iterable[str]],
            mapping: Mapping[str, str] | None = None) -> dict[str, float]:
    """Sample-averaged set precision/recall and F = 2PR/(P+R) after mapping words to canonical ones.

    An empty prediction has precision 0 (it names nothing right).
    """
    _check_same_length(true_sets, pred_sets, "true_sets and pred_sets")
    precisions, recalls = [], []
    for t, p in zip(true_sets, pred_sets):
        ts, ps = _as_set(t, mapping), _as_set(p, mapping)
        inter = len(ts & ps)
        precisions.append(inter / len(ps) if ps else 0.0)
        recalls.append(inter / len(ts) if ts else 0.0)
    prec, rec = float(np.mean(precisions)), float(np.mean(recalls))
    f = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return {"precision": prec, "recall": rec, "f": f}


def ov_scores(true_sets, pred_sets, wheels: EmotionWheels | None = None) -> dict[str, float]:
    """OV-MERD+ protocol: set P/R/F per emotion wheel, then the mean over wheels."""
    wheels = wheels or EmotionWheels()
    per = {name: set_prf(true_sets, pred_sets, mapping) for name, mapping in wheels.wheels.items()}
    out = {k: float(np.mean([v[k] for v in per.values()])) for k in ("precision", "recall", "f")}
    out["per_wheel"] = per
    return out


# ---------------------------------------------------------------------------------------- per data set
def score_dataset(name: str, y_true: Sequence, y_pred: Sequence, *, scores: np.ndarray | None = None,
                  labels: Sequence[str] | None = None, wheels: EmotionWheels | None = None,
                  metric: str | None = None, neutral: str = "neutral") -> dict:
    """Score one test set with its paper metric. Returns {"metric", "value", "n", ...extras}.

    y_true: labels (single-label sets) or label sets (multi-label / OV sets).
    y_pred: labels or label sets; for mAP `scores` (n, len(labels)) is required instead.
    """
    metric = metric or dataset_metric(name)
    n = len(y_true)
    out: dict = {"dataset": name, "metric": metric, "n": n}
    if metric == HIT_RATE:
        out["value"] = hit_rate(y_true, y_pred, wheels.synonyms() if wheels else None)
    elif metric == ACCURACY:
        out["value"] = accuracy(y_true, y_pred)
    elif metric == WAF:
        out["value"] = waf(y_true, y_pred, neutral=neutral)
        out["n"] = sum(normalise_word(t) != normalise_word(neutral) for t in y_true)
    elif metric == MAP:
        if scores is None or labels is None:
            raise ValueError(f"{name}: mAP needs per-label scores and the label list")
        out["value"] = mean_average_precision(multilabel_indicator(y_true, labels), scores)
    elif metric == OV_F:
        ov = ov_scores(y_true, y_pred, wheels)
        out.update(value=ov["f"], precision=ov["precision"], recall=ov["recall"])
    else:
        raise ValueError(f"unknown metric {metric!r}")
    return out


def average_over_sets(results: Sequence[Mapping] | Mapping[str, Mapping]) -> float:
    """The paper's Avg: plain mean of the per-set metric values."""
    values = [r["value"] for r in (results.values() if isinstance(results, Mapping) else results)]
    if not values:
        raise ValueError("no per-set results to average")
    return float(np.mean(values))


def classification_report(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Everything a single-label report shows: accuracy, weighted/macro F1, per class, confusion matrix."""
    return {
        "n": len(y_true),
        "accuracy": accuracy(y_true, y_pred),
        "weighted_f1": weighted_f1(y_true, y_pred, labels),
        "macro_f1": macro_f1(y_true, y_pred, labels),
        "per_class": per_class_prf(y_true, y_pred, labels),
        "labels": list(labels),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels).tolist(),
    }


# ---------------------------------------------------------------------------------------- timing
def latency_stats(latencies_ms: Sequence[float]) -> dict[str, float]:
    """Label latency per window (ms): count, mean, p50, p95, max (NaN-free input expected)."""
    x = np.asarray([v for v in latencies_ms if v is not None and not math.isnan(v)], dtype=np.float64)
    if x.size == 0:
        return {"count": 0, "mean": math.nan, "p50": math.nan, "p95": math.nan, "max": math.nan}
    return {"count": int(x.size), "mean": float(x.mean()), "p50": float(np.percentile(x, 50)),
            "p95": float(np.percentile(x, 95)), "max": float(x.max())}


def interval_union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge overlapping [start, end) intervals; empty/negative ones are ignored."""
    merged: list[list[float]] = []
    for s, e in sorted((float(s), float(e)) for s, e in intervals if e > s):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def _total(intervals) -> float:
    return float(sum(e - s for s, e in intervals))


def coverage(annotated: Iterable[tuple[float, float]], states: Iterable[tuple[float, float]]) -> float:
    """Share of the annotated time covered by at least one state window (1.0 = every instant scored)."""
    ann = interval_union(annotated)
    total = _total(ann)
    if total <= 0:
        return math.nan
    cov = interval_union(states)
    covered = 0.0
    for s, e in ann:
        for cs, ce in cov:
            lo, hi = max(s, cs), min(e, ce)
            if hi > lo:
                covered += hi - lo
    return covered / total
