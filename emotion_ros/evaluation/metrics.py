"""Emotion recognition metrics, and the official MMEVerse-Bench / MER-UniBench scoring protocol.

One module for training's evaluation (emotion_ros_training.evaluate), the bag evaluation
(emotion_ros.evaluation.evaluate) and the benchmark runner (emotion_ros.evaluation.benchmark).

General metrics, equal to scikit-learn's (the tests check them against it): accuracy, per-class
precision/recall/F1, confusion matrix, weighted and macro F1, average precision and mAP of scores.

The official protocol, as the paper's repository scores it (`score.sh` of github ooochen-30/Emotion-LLaMA-v2
and its `evaluation/score_*.py`; the hit-rate and OV functions are AffectGPT's MER-UniBench ones). Each
test set has one metric (`SETS`, `dataset_metric`); a model's output per sample is a *response*: free text
(the generated answer) or the label path's label(s):
- hit rate (MER2023, MER2024, MELD, IEMOCAP): the response is split into items at commas and quotes (not
  at spaces: "I feel happy" is one item), each item lower-cased and mapped on each of the 5 official
  emotion wheels to a level-1 emotion (surface form -> synonym -> wheel word; `wheels.EmotionWheels`);
  items that map to nothing are dropped. Samples whose ground truth maps to nothing are skipped — "neutral"
  is on no wheel, so every neutral ground truth is left out. Per sample |pred ∩ truth|; mean over the kept
  samples; then the mean over the 5 wheels. Needs the official wheel files (`--wheels DIR`).
- WAF (MOSI, MOSEI, SIMS, SIMS-v2), two variants: `emotion-llama-v2` (the paper's numbers, default): truth
  and response stripped and lower-cased, neutral-truth samples dropped, sklearn's weighted F1 over the
  labels seen on either side (any other response is a wrong class of its own); `affectgpt`: the truth is
  the sign of the continuous sentiment score (zero dropped), the response counts as positive only if it
  is "positive" (neutral or unparsable = negative), weighted F1 of the two classes.
- OV F-score (OV-MERD+): per wheel, truth and response mapped to level-1 sets; samples with an empty truth
  set skipped; an empty prediction set has precision = recall = 0; P and R are averaged over samples and
  F = 2PR/(P+R) of the averages; the result is the mean F over the 5 wheels.
- mAP (MAFW-m, BOLD): truth and response split at ";" and ",", stripped, lower-cased; classes = the labels
  seen in the ground truth (other predicted labels ignored); scores = the binary predicted label sets;
  mean over classes of average precision.
- accuracy (CAER, E3, DFEW, MAFW, MELD-s, MC-EIU-i, MC-EIU and any other set): the response stripped and
  lower-cased, the truth taken as it is (so a truth with capitals is never matched: reported as a note).
- Avg-9 = mean over the MER-UniBench sets, Avg-18 over all 18 sets (plain means, as in Table 4).
A metric that is undefined on a set (every truth neutral, no wheel files, ...) gives value NaN with the
reason in "undefined"; it never raises. Values are fractions in [0, 1]; reports print them x100.

Timing metrics for bag evaluation: label latency per window (ms stats) and coverage (share of the
annotated time covered by at least one published state).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from emotion_ros.evaluation.wheels import WHEEL_NAMES, EmotionWheels, WheelError, parse_list, response_items

__all__ = ["EmotionWheels", "WheelError", "WHEEL_NAMES", "parse_list", "response_items"]  # + the functions below

HIT_RATE = "hit_rate"
WAF = "waf"
ACCURACY = "accuracy"
MAP = "map"
OV_F = "ov_f"
WAF_EMOTION_LLAMA_V2 = "emotion-llama-v2"
WAF_AFFECTGPT = "affectgpt"
WAF_VARIANTS = (WAF_EMOTION_LLAMA_V2, WAF_AFFECTGPT)

# The 18 test sets of MMEVerse-Bench in Table 4's column order (the first nine are MER-UniBench), their
# metric (score.sh) and the spellings accepted for them (compared lower-case without separators).
SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "MER2023": (HIT_RATE, ("mer2023", "mer23")),
    "MER2024": (HIT_RATE, ("mer2024", "mer24", "mer2024semi")),
    "MELD": (HIT_RATE, ("meld", "melde", "meldemotion")),
    "IEMOCAP": (HIT_RATE, ("iemocap", "iemocapfour")),
    "MOSI": (WAF, ("mosi", "cmumosi")),
    "MOSEI": (WAF, ("mosei", "cmumosei")),
    "SIMS": (WAF, ("sims", "chsims")),
    "SIMS-v2": (WAF, ("simsv2", "chsimsv2", "chsimsv2s")),
    "OV-MERD+": (OV_F, ("ovmerd+", "ovmerdplus", "ovmerd")),
    "CAER": (ACCURACY, ("caer",)),
    "E3": (ACCURACY, ("e3",)),
    "DFEW": (ACCURACY, ("dfew",)),
    "MAFW": (ACCURACY, ("mafw",)),
    "MAFW-m": (MAP, ("mafwm", "mafwmulti")),
    "BOLD": (MAP, ("bold",)),
    "MELD-s": (ACCURACY, ("melds", "meldsentiment")),
    "MC-EIU-i": (ACCURACY, ("mceiui", "mceiuintent")),
    "MC-EIU": (ACCURACY, ("mceiu", "mceiuemotion")),
}
MER_UNIBENCH = tuple(list(SETS)[:9])
MMEVERSE_BENCH = tuple(SETS)
_ALIASES = {alias: name for name, (_m, aliases) in SETS.items() for alias in aliases}


class UndefinedMetric(ValueError):
    """The metric has no value on this input (e.g. every ground truth is neutral); the message says why."""


def _norm_name(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum() or ch == "+")


def canonical_set(name: str) -> str | None:
    """The Table-4 name of a test set ('cmu_mosi' -> 'MOSI'), or None for a set outside the benchmark."""
    key = _norm_name(name)
    return _ALIASES.get(key) or _ALIASES.get(key.replace("plus", "+"))


def dataset_metric(name: str) -> str:
    """The official metric of a test set (e.g. 'MER2023' -> 'hit_rate'); sets outside the benchmark -> accuracy."""
    canon = canonical_set(name)
    return SETS[canon][0] if canon else ACCURACY


def _labels(y) -> list[str]:
    return [str(v) for v in y]


def _check_same_length(a, b, what="y_true and y_pred"):
    if len(a) != len(b):
        raise ValueError(f"{what} have different lengths ({len(a)} != {len(b)})")
    if len(a) == 0:
        raise ValueError(f"{what} are empty: nothing to score")


# ---------------------------------------------------------------------------------------- single label
def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Share of samples whose predicted label equals the true one (exact strings)."""
    _check_same_length(y_true, y_pred)
    return float(np.mean([str(t) == str(p) for t, p in zip(y_true, y_pred)]))


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


# ---------------------------------------------------------------------------------------- official protocol
def _clean(text) -> str:
    return "" if text is None else str(text).strip().lower()


def _response_text(response) -> str:
    """A response as one string: free text as it is, the label path's label list joined by ', '."""
    if response is None:
        return ""
    if isinstance(response, (list, tuple)):
        return ", ".join(str(x) for x in response)
    return str(response)


def official_accuracy(y_true: Sequence, responses: Sequence) -> dict:
    """score_split.py: share of samples whose stripped, lower-cased response equals the truth as given."""
    _check_same_length(y_true, responses, "y_true and responses")
    truth = [str(t) for t in y_true]
    hits = [t == _clean(_response_text(r)) for t, r in zip(truth, responses)]
    out = {"value": float(np.mean(hits)), "n": len(hits)}
    unmatchable = sum(t != t.strip().lower() for t in truth)
    if unmatchable:
        out["note"] = (f"{unmatchable} ground-truth label(s) are not lower-case/stripped; the official accuracy "
                       "compares them unchanged with the lower-cased response, so they can never count")
    return out


def waf_emotion_llama_v2(y_true: Sequence, responses: Sequence) -> dict:
    """score_split_sentiment_no_neutral.py: weighted F1 (and accuracy) after dropping neutral truths."""
    _check_same_length(y_true, responses, "y_true and responses")
    pairs = [(_clean(t), _clean(_response_text(r))) for t, r in zip(y_true, responses)]
    kept = [(t, p) for t, p in pairs if t != "neutral"]
    if not kept:
        raise UndefinedMetric("every ground truth is neutral: WAF without neutral samples is undefined")
    t, p = [a for a, _ in kept], [b for _, b in kept]
    return {"value": weighted_f1(t, p, sorted(set(t) | set(p))), "accuracy": accuracy(t, p), "n": len(kept),
            "skipped_neutral": len(pairs) - len(kept)}


_SENTIMENT_SIGN = {"positive": 1, "negative": -1, "neutral": 0}


def waf_affectgpt(y_true: Sequence, responses: Sequence, scores: Sequence[float | None] | None = None) -> dict:
    """AffectGPT's MER-UniBench WAF: truth = sign of the continuous sentiment score (0 dropped), prediction
    positive only for a "positive" response (neutral or anything else = negative); weighted F1 of 2 classes.

    `scores` are the continuous ground-truth scores (valence); a sample without one takes the sign of its
    label (positive / negative / neutral), since MMEVerse annotations carry labels.
    """
    _check_same_length(y_true, responses, "y_true and responses")
    scores = list(scores) if scores is not None else [None] * len(y_true)
    if len(scores) != len(y_true):
        raise ValueError("scores and y_true have different lengths")
    truth, pred = [], []
    for t, r, s in zip(y_true, responses, scores):
        if s is None or (isinstance(s, float) and math.isnan(s)):
            label = _clean(t)
            if label not in _SENTIMENT_SIGN:
                raise UndefinedMetric(f"ground truth {t!r} has no sentiment score and is not positive/negative/neutral")
            s = _SENTIMENT_SIGN[label]
        if s == 0:
            continue
        truth.append(str(s > 0))
        pred.append(str(_SENTIMENT_SIGN.get(_clean(_response_text(r)), 0) > 0))
    if not truth:
        raise UndefinedMetric("every ground-truth sentiment score is 0: WAF is undefined")
    return {"value": weighted_f1(truth, pred, sorted(set(truth) | set(pred))), "accuracy": accuracy(truth, pred),
            "n": len(truth), "skipped_neutral": len(y_true) - len(truth)}


def _require_wheels(wheels: EmotionWheels | None, what: str) -> EmotionWheels:
    if wheels is None:
        raise UndefinedMetric(f"the {what} needs the official emotion-wheel files (give their folder: --wheels DIR)")
    return wheels


def _truth_items(truth) -> list[str]:
    return [str(item).lower().strip() for item in parse_list(truth)]


def hit_rate(y_true: Sequence, responses: Sequence, wheels: EmotionWheels | None) -> dict:
    """MER-UniBench hit rate over the 5 emotion wheels (see the module docstring)."""
    _check_same_length(y_true, responses, "y_true and responses")
    wheels = _require_wheels(wheels, "hit rate")
    truths = [_truth_items(t) for t in y_true]
    preds = [response_items(r) for r in responses]
    per_wheel, kept = {}, {}
    for wheel in WHEEL_NAMES:
        hits = []
        for t, p in zip(truths, preds):
            gt = wheels.map_items(t, wheel)
            if not gt:
                continue  # the truth maps to nothing on this wheel (e.g. neutral): not scored
            hits.append(len(wheels.map_items(p, wheel) & gt))
        if not hits:
            raise UndefinedMetric(f"no ground truth maps onto {wheel} (all neutral or out of vocabulary): hit rate undefined")
        per_wheel[wheel], kept[wheel] = float(np.mean(hits)), len(hits)
    return {"value": float(np.mean(list(per_wheel.values()))), "n": len(y_true), "scored": kept,
            "per_wheel": per_wheel}


def ov_fscore(y_true: Sequence, responses: Sequence, wheels: EmotionWheels | None) -> dict:
    """OV-MERD+: per-wheel set precision/recall (averaged over samples), F of the averages, mean over wheels."""
    _check_same_length(y_true, responses, "y_true and responses")
    wheels = _require_wheels(wheels, "OV F-score")
    truths = [_truth_items(t) for t in y_true]
    preds = [response_items(r) for r in responses]
    per_wheel = {}
    for wheel in WHEEL_NAMES:
        precision, recall = [], []
        for t, p in zip(truths, preds):
            gt = wheels.map_items(t, wheel)
            if not gt:
                continue
            pr = wheels.map_items(p, wheel)
            precision.append(len(gt & pr) / len(pr) if pr else 0.0)
            recall.append(len(gt & pr) / len(gt) if pr else 0.0)
        if not precision:
            raise UndefinedMetric(f"no ground truth maps onto {wheel}: OV F-score undefined")
        p_avg, r_avg = float(np.mean(precision)), float(np.mean(recall))
        if p_avg + r_avg == 0:
            # the official F = 2PR/(P+R) is 0/0 here (NaN in numpy): nothing predicted matched on this wheel
            raise UndefinedMetric(f"precision and recall are both 0 on {wheel}: the official F (2PR/(P+R)) is 0/0")
        per_wheel[wheel] = {"precision": p_avg, "recall": r_avg, "f": 2 * p_avg * r_avg / (p_avg + r_avg),
                            "scored": len(precision)}
    mean = lambda k: float(np.mean([v[k] for v in per_wheel.values()]))  # noqa: E731
    return {"value": mean("f"), "precision": mean("precision"), "recall": mean("recall"), "n": len(y_true),
            "per_wheel": per_wheel}


def split_multilabel(value) -> list[str]:
    """score_multilabel.py's split: at ';' and ',', stripped, lower-cased, empty pieces dropped."""
    items = value if isinstance(value, (list, tuple)) else re.split(r"[;,]", "" if value is None else str(value))
    return [str(x).strip().lower() for x in items if str(x).strip()]


def multilabel_map(y_true: Sequence, responses: Sequence) -> dict:
    """score_multilabel.py's mAP: classes = labels seen in the truth, scores = binary predicted sets."""
    _check_same_length(y_true, responses, "y_true and responses")
    truths = [split_multilabel(t) for t in y_true]
    preds = [split_multilabel(r) for r in responses]
    classes = sorted({lab for t in truths for lab in t})
    if not classes:
        raise UndefinedMetric("no ground-truth label at all: mAP undefined")
    y = multilabel_indicator(truths, classes)
    s = multilabel_indicator(preds, classes).astype(np.float64)
    per_class = {c: average_precision(y[:, k], s[:, k]) for k, c in enumerate(classes)}
    known = set(classes)
    outside = sum(1 for p in preds for lab in p if lab not in known)
    out = {"value": float(np.mean(list(per_class.values()))), "n": len(y_true), "classes": classes,
           "per_class": per_class}
    if outside:
        out["ignored_predicted_labels"] = outside
    return out


def score_dataset(name: str, y_true: Sequence, responses: Sequence, *, wheels: EmotionWheels | None = None,
                  metric: str | None = None, waf_variant: str = WAF_EMOTION_LLAMA_V2,
                  sentiment_scores: Sequence[float | None] | None = None,
                  scores: np.ndarray | None = None, labels: Sequence[str] | None = None) -> dict:
    """Score one test set with its official metric: {"dataset", "metric", "value", "n", ...extras}.

    y_true: per sample the truth — a label (single-label and sentiment sets), a label list or list-like
    string (OV-MERD+, multi-label sets). responses: per sample the model's free text, or its label / label
    list (label path). sentiment_scores: continuous truth for the AffectGPT WAF. `scores` + `labels`:
    optional per-label scores of multi-label sets, reported beside the official binary mAP as
    "map_from_scores" (not a paper number). Undefined metrics give value NaN and "undefined": reason.
    """
    metric = metric or dataset_metric(name)
    if waf_variant not in WAF_VARIANTS:
        raise ValueError(f"unknown WAF variant {waf_variant!r}; choose from {WAF_VARIANTS}")
    _check_same_length(y_true, responses, "y_true and responses")
    out: dict = {"dataset": name, "metric": metric, "n": len(y_true)}
    try:
        if metric == HIT_RATE:
            res = hit_rate(y_true, responses, wheels)
        elif metric == ACCURACY:
            res = official_accuracy(y_true, responses)
        elif metric == WAF:
            out["waf_variant"] = waf_variant
            res = (waf_emotion_llama_v2(y_true, responses) if waf_variant == WAF_EMOTION_LLAMA_V2
                   else waf_affectgpt(y_true, responses, sentiment_scores))
        elif metric == MAP:
            res = multilabel_map(y_true, responses)
        elif metric == OV_F:
            res = ov_fscore(y_true, responses, wheels)
        else:
            raise ValueError(f"unknown metric {metric!r}")
    except UndefinedMetric as err:
        res = {"value": math.nan, "undefined": str(err)}
    res = dict(res)
    res["scored_n"] = res.pop("n", len(y_true))
    out.update(res)
    if metric == MAP and scores is not None and labels is not None:
        try:
            truth = multilabel_indicator([split_multilabel(t) for t in y_true], [_clean(x) for x in labels])
            out["map_from_scores"] = mean_average_precision(truth, np.asarray(scores, dtype=np.float64))
        except ValueError as err:
            out["map_from_scores_undefined"] = str(err)
    return out


def is_defined(result: Mapping) -> bool:
    value = result.get("value")
    return isinstance(value, (int, float)) and not math.isnan(value)


def average_over_sets(results: Sequence[Mapping] | Mapping[str, Mapping]) -> float:
    """Plain mean of the defined per-set values (NaN when none is defined)."""
    values = [r["value"] for r in (results.values() if isinstance(results, Mapping) else results) if is_defined(r)]
    return float(np.mean(values)) if values else math.nan


def benchmark_averages(results: Mapping[str, Mapping]) -> dict:
    """Avg-9 (MER-UniBench) and Avg-18 (MMEVerse-Bench) of per-set results keyed by any set spelling.

    Each average exists only when every one of its sets is present and defined; otherwise it is NaN and
    "missing" names the sets that are absent or undefined.
    """
    by_canon = {}
    for name, res in results.items():
        canon = canonical_set(name)
        if canon:
            by_canon[canon] = res
    out = {}
    for key, names in (("Avg-9", MER_UNIBENCH), ("Avg-18", MMEVERSE_BENCH)):
        missing = [n for n in names if n not in by_canon or not is_defined(by_canon[n])]
        value = math.nan if missing else float(np.mean([by_canon[n]["value"] for n in names]))
        out[key] = {"value": value, "sets": list(names), "missing": missing}
    return out


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
