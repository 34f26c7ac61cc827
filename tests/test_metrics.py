"""emotion_ros.evaluation.metrics against scikit-learn (random inputs) and hand-computed small cases."""
import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from emotion_ros.evaluation import metrics as M

LABELS = ["neutral", "happy", "sad", "angry", "worried", "surprise"]


def _random_labels(rng, n, labels=LABELS):
    return list(rng.choice(labels, size=n))


@pytest.mark.parametrize("seed", range(8))
def test_single_label_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    # a skewed predictor, so some classes are never predicted (zero-division paths)
    y_true = _random_labels(rng, n)
    y_pred = [t if rng.random() < 0.4 else rng.choice(LABELS[:4]) for t in y_true]
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert M.weighted_f1(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="weighted", zero_division=0))
    assert M.macro_f1(y_true, y_pred, LABELS) == pytest.approx(
        skm.f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0))
    np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred, LABELS),
                                  skm.confusion_matrix(y_true, y_pred, labels=LABELS))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
    per = M.per_class_prf(y_true, y_pred, LABELS)
    for i, lab in enumerate(LABELS):
        assert per[lab]["precision"] == pytest.approx(p[i])
        assert per[lab]["recall"] == pytest.approx(r[i])
        assert per[lab]["f1"] == pytest.approx(f[i])
        assert per[lab]["support"] == s[i]


@pytest.mark.parametrize("seed", range(8))
def test_average_precision_and_map_match_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    n, k = int(rng.integers(10, 120)), 5
    y = (rng.random((n, k)) < 0.3).astype(int)
    y[0, :] = 1  # every class has a positive sample
    scores = rng.random((n, k))
    if seed % 2:
        scores = np.round(scores, 1)  # many ties: one threshold per distinct score
    for j in range(k):
        assert M.average_precision(y[:, j], scores[:, j]) == pytest.approx(
            skm.average_precision_score(y[:, j], scores[:, j]))
    assert M.mean_average_precision(y, scores) == pytest.approx(
        skm.average_precision_score(y, scores, average="macro"))


def test_map_skips_classes_without_positives():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.3]])
    assert M.mean_average_precision(y, s) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no positive"):
        M.average_precision([0, 0], [0.1, 0.2])


def test_hit_rate_hand_computed():
    y_true = ["happy", "sad", "angry", "neutral"]
    y_pred = ["happy", {"sad", "worried"}, "happy", []]
    assert M.hit_rate(y_true, y_pred) == pytest.approx(0.5)
    # top-1 predictions: hit rate == accuracy
    assert M.hit_rate(y_true, ["happy", "sad", "sad", "sad"]) == M.accuracy(y_true, ["happy", "sad", "sad", "sad"]) == 0.5
    # a synonym mapping makes a free word count
    assert M.hit_rate(["happy", "sad"], ["Joyful", "glad"], mapping={"joyful": "happy", "glad": "happy"}) == 0.5


def test_waf_excludes_neutral_ground_truth_hand_computed():
    y_true = ["positive", "positive", "negative", "neutral", "negative", "positive"]
    y_pred = ["positive", "negative", "negative", "positive", "neutral", "positive"]
    # without the neutral-truth sample: positive P=1 R=2/3 F=0.8 (support 3); negative P=.5 R=.5 F=.5 (support 2)
    assert M.waf(y_true, y_pred) == pytest.approx((3 * 0.8 + 2 * 0.5) / 5)
    assert M.waf(y_true, y_pred) != pytest.approx(M.weighted_f1(y_true, y_pred))
    keep = [i for i, t in enumerate(y_true) if t != "neutral"]
    assert M.waf(y_true, y_pred) == pytest.approx(skm.f1_score(
        [y_true[i] for i in keep], [y_pred[i] for i in keep], average="weighted", zero_division=0))
    with pytest.raises(ValueError, match="neutral"):
        M.waf(["neutral", "neutral"], ["positive", "neutral"])


def test_open_vocabulary_set_scores_with_wheels(tmp_path):
    path = tmp_path / "wheels.json"
    path.write_text(json.dumps({"wheels": {"w1": {"joyful": "happy", "Thrilled": "excited"},
                                           "w2": {"joyful": "happy", "excited": "happy"}}}))
    wheels = M.EmotionWheels.load(path)
    true, pred = [["happy", "excited"]], [["joyful", "sad"]]
    # w1: P=1/2, R=1/2 -> F=.5; w2: true {happy}, pred {happy, sad}: P=1/2, R=1 -> F=2/3
    ov = M.ov_scores(true, pred, wheels)
    assert ov["per_wheel"]["w1"]["f"] == pytest.approx(0.5)
    assert ov["per_wheel"]["w2"]["f"] == pytest.approx(2 / 3)
    assert ov["precision"] == pytest.approx(0.5) and ov["recall"] == pytest.approx(0.75)
    assert ov["f"] == pytest.approx((0.5 + 2 / 3) / 2)  # the paper: F-score averaged over wheels
    assert M.set_prf(true, pred)["f"] == 0.0  # no mapping: "joyful" is not "happy"
    res = M.score_dataset("OV-MERD+", true, pred, wheels=wheels)
    assert res["metric"] == M.OV_F and res["value"] == pytest.approx(ov["f"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"wheels": {"w": {"a": 3}}}))
    with pytest.raises(ValueError, match="wheel 'w'"):
        M.EmotionWheels.load(bad)


def test_dataset_metric_follows_the_paper():
    assert [M.dataset_metric(n) for n in ("MER2023", "MER2024", "MELD", "IEMOCAP")] == [M.HIT_RATE] * 4
    assert [M.dataset_metric(n) for n in ("MOSI", "CMU-MOSEI", "SIMS", "SIMS-v2")] == [M.WAF] * 4
    assert M.dataset_metric("OV-MERD+") == M.OV_F
    assert M.dataset_metric("MAFW-m") == M.MAP and M.dataset_metric("BOLD") == M.MAP
    assert M.dataset_metric("MAFW") == M.ACCURACY and M.dataset_metric("MELD-s") == M.ACCURACY
    assert M.dataset_metric("my-robot-lab") == M.ACCURACY


def test_score_dataset_and_average():
    a = M.score_dataset("MER2023", ["happy", "sad"], ["happy", "happy"])
    b = M.score_dataset("MOSI", ["positive", "neutral", "negative"], ["positive", "negative", "negative"])
    c = M.score_dataset("BOLD", [["happy"], ["sad", "happy"]], None, scores=np.array([[0.9, 0.1], [0.6, 0.4]]),
                        labels=["happy", "sad"])
    assert a["value"] == 0.5 and b["value"] == 1.0 and b["n"] == 2
    assert c["value"] == pytest.approx(skm.average_precision_score([[1, 0], [1, 1]], [[0.9, 0.1], [0.6, 0.4]]))
    assert M.average_over_sets([a, b, c]) == pytest.approx((0.5 + 1.0 + c["value"]) / 3)
    with pytest.raises(ValueError, match="mAP needs"):
        M.score_dataset("BOLD", [["happy"]], ["happy"])


def test_input_errors():
    with pytest.raises(ValueError, match="different lengths"):
        M.accuracy(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        M.weighted_f1([], [])


def test_timing_metrics_hand_computed():
    assert M.coverage([(0, 10)], [(1, 3), (2, 5), (8, 12)]) == pytest.approx(0.6)
    assert M.coverage([(0, 4), (6, 10)], [(3, 7)]) == pytest.approx(2 / 8)
    assert math.isnan(M.coverage([], [(0, 1)]))
    assert M.interval_union([(5, 6), (0, 2), (1, 3)]) == [(0, 3), (5, 6)]
    s = M.latency_stats([10, 20, 30, float("nan")])
    assert s["count"] == 3 and s["p50"] == 20 and s["max"] == 30 and s["mean"] == 20
