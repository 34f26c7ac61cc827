"""emotion_ros.evaluation.metrics against scikit-learn (random inputs) and hand-computed small cases."""
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


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """The hand-made official-format wheel files of tests/helpers/official_wheels.py (read its docstring)."""
    from tests.helpers.official_wheels import write_official_wheels

    return M.EmotionWheels.load(write_official_wheels(tmp_path_factory.mktemp("wheels")))


def test_wheel_files_are_read_like_the_official_code(wheels, tmp_path):
    from emotion_ros.evaluation.wheels import read_wheel
    from tests.helpers.official_wheels import write_official_wheels

    root = write_official_wheels(tmp_path / "w")
    # forward fill per column: level1 of wheel4's third row is the "sad" above it; wheel5's "glum" row
    # takes level3 "grief" from the row above (the official reader fills level3 too)
    assert read_wheel(root / "wheel4.xlsx")["sad"] == {"sorrow": ["grief"], "worried": ["anxious"]}
    assert read_wheel(root / "wheel5.xlsx")["sad"] == {"sorrow": ["grief"], "glum": ["grief"]}
    # format -> synonym -> alphabetically first wheel word on the wheel -> its level-1 emotion
    assert [wheels.map_word("stunned", w) for w in M.WHEEL_NAMES] == ["surprise"] * 4 + ["worried"]
    assert [wheels.map_word("concern", w) for w in M.WHEEL_NAMES] == ["worried"] * 3 + ["sad", "worried"]
    assert wheels.map_word("joyful", "wheel1") == "happy"          # synonym of a level-2 word
    assert wheels.map_word("happiest", "wheel1") == ""             # format.csv items are not lower-cased
    assert wheels.map_word("neutral", "wheel1") == ""              # neutral is on no wheel
    # response items: split at commas and quotes, not at spaces; brackets the model writes stay
    assert M.response_items("Happy, 'sad'") == ["happy", "sad"]
    assert M.response_items("I feel happy.") == ["i feel happy."]
    assert M.response_items("[happy]") == ["[happy]"] and M.response_items("") == []
    # bad asset folders: one sentence naming the problem
    (root / "format.csv").unlink()
    with pytest.raises(M.WheelError, match="missing format.csv"):
        M.EmotionWheels.load(root)
    root = write_official_wheels(tmp_path / "w2")
    import openpyxl

    book = openpyxl.load_workbook(root / "synonym.xlsx")
    book.active["A2"] = "elated"  # word_run1 of the first row: a word on no wheel
    book.save(root / "synonym.xlsx")
    with pytest.raises(M.WheelError, match="'elated' is on no wheel"):
        M.EmotionWheels.load(root)


HIT_TRUTH = ["happy", "sad", "neutral", "worried", "surprise", "angry", "happy"]
HIT_RESPONSES = ["happier", "I am sad", "neutral", "sadness", "surprised, happy", "MAD", ""]


def test_hit_rate_hand_computed(wheels):
    # wheel 1-3: kept 6 (neutral skipped); hits: happier 1, "i am sad" (one unknown item) 0, sadness vs
    #            worried 0, surprised 1, MAD (case-insensitive) 1, empty 0 -> 3/6
    # wheel 4:   worried and sadness both -> sad: 4/6
    # wheel 5:   no surprise on it: that sample is skipped too -> kept 5, hits 1,0,0,1,0 -> 2/5
    res = M.hit_rate(HIT_TRUTH, HIT_RESPONSES, wheels)
    assert res["per_wheel"] == pytest.approx({"wheel1": 0.5, "wheel2": 0.5, "wheel3": 0.5, "wheel4": 4 / 6,
                                              "wheel5": 0.4})
    assert res["scored"] == {"wheel1": 6, "wheel2": 6, "wheel3": 6, "wheel4": 6, "wheel5": 5}
    assert res["value"] == pytest.approx((3 * 0.5 + 4 / 6 + 0.4) / 5)
    # the label path's labels (lists) go through the same mapping: all right but the empty one ->
    # wheels 1-4: 5/6; wheel 5 (surprise skipped): 4/5
    labels = [["happy"], ["sad"], ["neutral"], ["worried"], ["surprise"], ["angry"], []]
    assert M.hit_rate(HIT_TRUTH, labels, wheels)["value"] == pytest.approx((4 * 5 / 6 + 4 / 5) / 5)
    # an "always neutral" predictor scores 0 (the MELD example), not its share of neutral truths
    assert M.hit_rate(HIT_TRUTH, ["neutral"] * 7, wheels)["value"] == 0.0
    res = M.score_dataset("MER2023", HIT_TRUTH, HIT_RESPONSES)  # without the wheel files: undefined, said why
    assert math.isnan(res["value"]) and "--wheels" in res["undefined"]
    res = M.score_dataset("MELD", ["neutral", ""], ["happy", "sad"], wheels=wheels)  # empty truth skipped too
    assert math.isnan(res["value"]) and "no ground truth maps onto wheel1" in res["undefined"]


def test_ov_fscore_hand_computed(wheels):
    truth = ["['happy', 'joyful']", "['worried', 'concerned']", "['neutral']", "['sadness', 'surprised']"]
    responses = ["happy, sad", "", "neutral", "stunned"]
    # wheels 1-4: neutral truth skipped; P = (1/2 + 0 + 1)/3, R = (1 + 0 + 1/2)/3 -> F = 1/2
    #   (the empty prediction counts P = R = 0; on wheel 4 worried -> sad, same numbers)
    # wheel 5: truth 4 -> {sad} (no surprise), stunned -> worried: P = (1/2+0+0)/3, R = (1+0+0)/3 -> F = 2/9
    res = M.ov_fscore(truth, responses, wheels)
    assert [res["per_wheel"][w]["f"] for w in M.WHEEL_NAMES] == pytest.approx([0.5] * 4 + [2 / 9])
    assert res["per_wheel"]["wheel5"]["precision"] == pytest.approx(1 / 6)
    assert res["value"] == pytest.approx((4 * 0.5 + 2 / 9) / 5)
    assert M.score_dataset("OV-MERD+", truth, responses, wheels=wheels)["value"] == pytest.approx(4 / 9)
    res = M.score_dataset("OV-MERD+", truth, ["", "", "", ""], wheels=wheels)  # P = R = 0: F is 0/0
    assert math.isnan(res["value"]) and "0/0" in res["undefined"]
    res = M.score_dataset("OV-MERD+", ["", "[]"], ["happy", "sad"], wheels=wheels)  # empty ground truth
    assert math.isnan(res["value"]) and "no ground truth" in res["undefined"]


SENT_TRUTH = ["Positive", "negative ", "neutral", "positive", "negative", "positive"]
SENT_RESPONSES = ["positive", "NEGATIVE", "positive", "neutral", "positive", "The sentiment is positive"]


def test_waf_both_variants_hand_computed():
    # Emotion-LLaMA-v2 (default): neutral truth dropped; classes negative, neutral, positive, "the sentiment
    # is positive"; positive P=1/2 R=1/3 F=0.4 (support 3), negative P=1 R=1/2 F=2/3 (support 2)
    res = M.score_dataset("MOSI", SENT_TRUTH, SENT_RESPONSES)
    assert res["waf_variant"] == M.WAF_EMOTION_LLAMA_V2 and res["scored_n"] == 5 and res["skipped_neutral"] == 1
    assert res["value"] == pytest.approx((3 * 0.4 + 2 * 2 / 3) / 5) and res["accuracy"] == pytest.approx(2 / 5)
    kept = [i for i, t in enumerate(SENT_TRUTH) if t.strip().lower() != "neutral"]
    assert res["value"] == pytest.approx(skm.f1_score([SENT_TRUTH[i].strip().lower() for i in kept],
                                                      [SENT_RESPONSES[i].strip().lower() for i in kept],
                                                      average="weighted", zero_division=0))
    # AffectGPT: truth = sign of the score (0 dropped); prediction positive only for "positive":
    # truth T F T F T, pred T F F T F -> True P=1/2 R=1/3 F=.4, False P=1/3 R=1/2 F=.4 -> WAF .4
    scores = [1.2, -0.4, 0.0, 2.0, -1.8, 0.6]
    res = M.score_dataset("SIMS", SENT_TRUTH, SENT_RESPONSES, waf_variant=M.WAF_AFFECTGPT, sentiment_scores=scores)
    assert res["value"] == pytest.approx(0.4) and res["scored_n"] == 5
    # without scores the label's sign is used (same samples here)
    assert M.waf_affectgpt(SENT_TRUTH, SENT_RESPONSES)["value"] == pytest.approx(0.4)
    # all-neutral truth: reported as undefined, no exception (issue 17's crash)
    res = M.score_dataset("MOSEI", ["neutral", "Neutral"], ["positive", "neutral"])
    assert math.isnan(res["value"]) and "every ground truth is neutral" in res["undefined"]
    with pytest.raises(ValueError, match="unknown WAF variant"):
        M.score_dataset("MOSI", ["positive"], ["positive"], waf_variant="mine")


def test_accuracy_and_map_hand_computed():
    # the response is stripped and lower-cased, the truth is not: "Sad" can never be matched
    res = M.score_dataset("CAER", ["happy", "Sad", "angry"], [" HAPPY ", "sad", "angry."])
    assert res["metric"] == M.ACCURACY and res["value"] == pytest.approx(1 / 3) and "1 ground-truth" in res["note"]
    assert M.score_dataset("my-robot-lab", ["happy"], [["happy"]])["value"] == 1.0  # label path, unknown set
    # mAP on binary predicted sets, classes = labels seen in the truth (anger, fear, sadness; "joy" ignored)
    # anger: truth {0,1}, predicted {0,2}: P1=R1=1/2 -> 1/2*1/2 + 1/2*2/4 = 1/2
    # fear: truth {0,3}, predicted {3}: P1=1, R1=1/2 -> 1/2 + 1/2*2/4 = 3/4
    # sadness: truth {2}, predicted {3}: P1=R1=0 -> its prevalence 1/4
    truth = ["Anger; Fear", "anger", "sadness", "fear"]
    responses = ["anger", "", "Anger, joy", "fear;sadness"]
    res = M.score_dataset("BOLD", truth, responses)
    assert res["classes"] == ["anger", "fear", "sadness"] and res["ignored_predicted_labels"] == 1
    assert res["per_class"] == pytest.approx({"anger": 0.5, "fear": 0.75, "sadness": 0.25})
    assert res["value"] == pytest.approx(0.5)
    y = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]])
    p = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 1]], dtype=float)
    assert res["value"] == pytest.approx(skm.average_precision_score(y, p, average="macro"))
    # the label path's scores give an extra, non-official score-based mAP
    res = M.score_dataset("MAFW-m", [["happy"], ["sad", "happy"]], ["happy", "happy"],
                          scores=np.array([[0.9, 0.1], [0.6, 0.4]]), labels=["happy", "sad"])
    assert res["value"] == pytest.approx(0.75)  # happy AP 1; sad never predicted: prevalence 1/2
    assert res["map_from_scores"] == pytest.approx(skm.average_precision_score([[1, 0], [1, 1]],
                                                                               [[0.9, 0.1], [0.6, 0.4]]))
    res = M.score_dataset("MAFW-m", ["", ""], ["happy", ""])  # empty ground truth everywhere
    assert math.isnan(res["value"]) and "no ground-truth label" in res["undefined"]


def test_dataset_metric_follows_score_sh():
    assert [M.dataset_metric(n) for n in ("MER2023", "mer2024_semi", "MELD", "IEMOCAP")] == [M.HIT_RATE] * 4
    assert [M.dataset_metric(n) for n in ("cmu_mosi", "CMU-MOSEI", "SIMS", "ch_sims_v2_s")] == [M.WAF] * 4
    assert M.dataset_metric("OV-MERD+") == M.OV_F and M.dataset_metric("ov_merd+") == M.OV_F
    assert M.dataset_metric("mafw_multi") == M.MAP and M.dataset_metric("BOLD") == M.MAP
    assert M.dataset_metric("MAFW") == M.ACCURACY and M.dataset_metric("meld_sentiment") == M.ACCURACY
    assert M.dataset_metric("mc_eiu_intent") == M.ACCURACY and M.canonical_set("mc_eiu_intent") == "MC-EIU-i"
    assert M.dataset_metric("my-robot-lab") == M.ACCURACY and M.canonical_set("my-robot-lab") is None
    assert len(M.MER_UNIBENCH) == 9 and len(M.MMEVERSE_BENCH) == 18


def test_averages():
    a = {"value": 0.5}
    b = {"value": 1.0}
    nan = {"value": math.nan, "undefined": "x"}
    assert M.average_over_sets([a, b, nan]) == pytest.approx(0.75)
    assert math.isnan(M.average_over_sets([nan]))
    full = {name: {"value": (i + 1) / 100} for i, name in enumerate(M.MMEVERSE_BENCH)}
    avg = M.benchmark_averages(full)
    assert avg["Avg-9"]["value"] == pytest.approx(0.05) and avg["Avg-18"]["value"] == pytest.approx(0.095)
    full["BOLD"] = nan
    avg = M.benchmark_averages(full)
    assert avg["Avg-9"]["value"] == pytest.approx(0.05)
    assert math.isnan(avg["Avg-18"]["value"]) and avg["Avg-18"]["missing"] == ["BOLD"]


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
