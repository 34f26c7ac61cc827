"""Calibration stage (emotion_ros/model/calibration.py): temperature fit, ECE, the unsure rule, its storage
in the checkpoint folder and its use by the engine."""
import json
import math

import pytest
import torch

from emotion_ros.model.calibration import (Calibration, StreamStats, expected_calibration_error, expert_log_scores,
                                           fit_pooling, fit_temperature, nll, stream_stats, temper)


def test_fit_recovers_the_temperature_that_generated_the_labels():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4000, 6, generator=g)
    truth = torch.multinomial(torch.softmax(logits / 2.5, -1), 1, generator=g)[:, 0]  # the data's true T = 2.5
    probs = torch.softmax(logits, -1)  # an over-confident model (T = 1)
    t = fit_temperature(probs, truth)
    assert abs(t - 2.5) < 0.2
    assert nll(probs, truth, t) < nll(probs, truth, 1.0)
    assert expected_calibration_error(torch.stack([temper(p, t) for p in probs]),
                                      truth) < expected_calibration_error(probs, truth)


def test_ece_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right): bins (0.8667, 0.9333] and (0.5333, 0.6]
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    truth = torch.tensor([0, 1, 1])
    expected = (2 / 3) * abs(0.5 - 0.9) + (1 / 3) * abs(1.0 - 0.6)
    assert expected_calibration_error(probs, truth) == pytest.approx(expected)


def test_unsure_rule():
    stats = {"audio": StreamStats([0.0, 0.0], [1.0, 1.0], threshold=4.0)}
    cal = Calibration(temperature=2.0, ood_temperature=10.0, min_confidence=0.5, stats=stats, conflict_expert_min=0.7)
    labels = ["neutral", "happy", "sad"]
    probs = torch.tensor([0.1, 0.85, 0.05])
    near, far = {"audio": torch.tensor([1.0, -1.0])}, {"audio": torch.tensor([5.0, 5.0])}
    out, why = cal.apply(probs, labels, near)
    assert why == "" and torch.allclose(out, temper(probs, 2.0)) and float(out.max()) < 0.85
    out, why = cal.apply(probs, labels, far)
    assert why == "far_from_training_data" and torch.allclose(out, temper(probs, 10.0))
    out, why = cal.apply(torch.tensor([0.4, 0.35, 0.25]), labels, near)
    assert why == "low_confidence"
    _, why = cal.apply(probs, labels, near, expert={"sad": 0.9, "happy": 0.1})
    assert why == "modality_conflict"
    _, why = cal.apply(probs, labels, near, expert={"happy": 0.9})
    assert why == ""
    assert Calibration.from_json(cal.to_json()) == cal


def test_expert_vote_is_a_product_of_experts_by_hand():
    labels = ["neutral", "happy", "sad"]
    cal = Calibration(temperature=2.0, expert_weight=1.0, expert_smoothing=0.1)
    probs = torch.tensor([0.5, 0.2, 0.3])
    expert = {"neutral": 0.0, "happy": 1.0, "sad": 0.0}
    out, _ = cal.apply(probs, labels, {}, expert)
    q = torch.tensor([0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3])
    want = probs.double() ** 0.5 * q
    assert torch.allclose(out.double(), want / want.sum(), atol=1e-6) and labels[int(out.argmax())] == "happy"
    assert torch.allclose(cal.apply(probs, labels, {}, None)[0], temper(probs, 2.0))  # no face: no vote


def test_fit_pooling_recovers_temperature_and_expert_weight():
    g = torch.Generator().manual_seed(2)
    n, labels = 6000, ["a", "b", "c", "d"]
    logits = 2 * torch.randn(n, 4, generator=g)
    expert = torch.softmax(2 * torch.randn(n, 4, generator=g), -1)
    experts = [dict(zip(labels, e.tolist())) for e in expert]
    logq = expert_log_scores(experts, labels, 0.05)
    truth = torch.multinomial(torch.softmax(logits / 2.0 + 1.5 * logq, -1), 1, generator=g)[:, 0]
    probs = torch.softmax(logits, -1)
    t, w = fit_pooling(probs, truth, logq)
    assert abs(w - 1.5) <= 0.25 and abs(t - 2.0) < 0.3
    assert fit_pooling(probs[:4], truth[:4], logq[:4]) == (1.0, 0.0)  # too few windows to fit


def test_fit_pooling_can_be_kept_from_sharpening():
    """Under-confident scores (truth drawn at T 0.5) fit T ~0.5; with min_temperature 1 the fit stops at 1
    (what calibrate asks for the windows far from the training data) and the weight stays 0 when the expert
    is noise."""
    g = torch.Generator().manual_seed(3)
    n, labels = 4000, ["a", "b", "c"]
    logits = torch.randn(n, 3, generator=g)
    truth = torch.multinomial(torch.softmax(logits / 0.5, -1), 1, generator=g)[:, 0]
    logq = expert_log_scores([dict(zip(labels, torch.rand(3, generator=g).tolist())) for _ in range(n)], labels, 0.05)
    probs = torch.softmax(logits, -1)
    t, _ = fit_pooling(probs, truth, logq, weights=(0.0,))
    assert abs(t - 0.5) < 0.08
    t, w = fit_pooling(probs, truth, logq, min_temperature=1.0)
    assert t == pytest.approx(1.0, abs=1e-3) and w <= 0.2


def test_far_streams_are_left_out_and_only_with_the_rule():
    stats = {"audio": StreamStats([0.0], [1.0], threshold=4.0), "vision": StreamStats([0.0], [1.0], threshold=4.0)}
    feats = {"audio": torch.tensor([3.0]), "vision": torch.tensor([1.0]), "face": None}
    assert Calibration(stats=stats).far_streams(feats) == ["audio"]
    assert Calibration(stats=stats).streams_to_drop(feats) == []
    assert Calibration(stats=stats, drop_far_streams=True).streams_to_drop(feats) == ["audio"]


def test_stream_stats_threshold_is_the_training_quantile():
    g = torch.Generator().manual_seed(1)
    vecs = [torch.randn(8, generator=g) for _ in range(500)]
    st = stream_stats(vecs, quantile=0.99)
    cal = Calibration(stats={"vision": st})
    d = [cal.distances({"vision": v})["vision"] for v in vecs]
    assert sum(x > st.threshold for x in d) == pytest.approx(5, abs=2)


def test_calibration_travels_with_the_checkpoint_and_the_engine_applies_it(tmp_path):
    from emotion_ros.inference.engine import EngineConfig, InferenceEngine
    from emotion_ros.model.checkpoint import CheckpointError, attach_file, read_calibration, save_trainable
    from emotion_ros.model.config import get_profile
    from emotion_ros.model.emotion_llama import build_model
    from tests.helpers.synthetic import synthetic_sequence, windows_from_windower

    model = build_model(get_profile("tiny"))
    ckpt = save_trainable(model, tmp_path / "ckpt")
    assert read_calibration(ckpt) is None
    cal = Calibration(temperature=50.0, min_confidence=0.9)  # everything becomes unsure: low confidence
    attach_file(ckpt, "calibration.json", cal.to_json().encode())
    assert read_calibration(ckpt) == cal
    frames, stamps, audio = synthetic_sequence(seconds=2.5, height=48, width=64)
    w = windows_from_windower(frames, stamps, audio)[0]
    cfg = EngineConfig(profile="tiny", asr="never", llm_precision="float32", checkpoint=str(ckpt))
    eng = InferenceEngine.from_config(cfg)
    res = eng.process(w)
    assert res.unsure == "low_confidence" and res.confidence < 0.5
    plain = InferenceEngine.from_config(EngineConfig(profile="tiny", asr="never", llm_precision="float32",
                                                     checkpoint=str(ckpt), calibrate=False)).process(w)
    assert plain.unsure == "" and plain.label == res.label and plain.confidence > res.confidence
    meta = json.loads((ckpt / "config.json").read_text())
    assert "calibration.json" in meta["files"]
    (ckpt / "calibration.json").write_text(cal.to_json().replace("50.0", "5.0"))  # tampered
    with pytest.raises(CheckpointError, match="calibration.json"):
        read_calibration(ckpt)
    assert math.isfinite(res.confidence)


def test_engine_scores_a_window_without_its_far_stream_exactly_as_a_window_without_that_modality(tmp_path):
    """drop_far_streams: a far audio stream is scored as missing; the result equals the engine's result on
    the same window with its audio removed, and says what it left out."""
    import dataclasses

    from emotion_ros.inference.engine import EngineConfig, InferenceEngine
    from tests.helpers.synthetic import synthetic_sequence, windows_from_windower

    frames, stamps, audio = synthetic_sequence(seconds=2.5, height=48, width=64)
    w = windows_from_windower(frames, stamps, audio)[0]
    eng = InferenceEngine.from_config(EngineConfig(profile="tiny", asr="never", llm_precision="float32"))
    feats = eng.process(w).features
    far_audio = {"audio": StreamStats([0.0] * len(feats["audio"]), [1e-3] * len(feats["audio"]), threshold=0.0)}
    eng.calibration = Calibration(stats=far_audio, drop_far_streams=True)
    res = eng.process(w)
    assert res.left_out == ["audio"] and res.unsure == "far_from_training_data"
    eng.calibration = None
    silent = eng.process(dataclasses.replace(w, audio=None))
    log = lambda r: torch.log(torch.tensor(r.scores, dtype=torch.float64))  # noqa: E731  (the tiny model saturates)
    assert res.label == silent.label and torch.allclose(log(res), log(silent), atol=1e-3)
    eng.calibration = Calibration(stats=far_audio)  # the rule off: flagged, still scored with its audio
    kept = eng.process(w)
    assert kept.left_out == [] and kept.unsure == "far_from_training_data"
    assert (log(kept) - log(silent)).abs().max() > 1e-2


def test_nothing_to_go_on_gets_the_training_label_shares():
    """Every present stream left out and no words: the prior (label shares of the training records), flagged
    no_evidence, whatever the label path said; one near stream or any words and the rule is off."""
    from types import SimpleNamespace

    from emotion_ros.model.calibration import label_prior

    labels = ["neutral", "happy", "sad"]
    space = SimpleNamespace(labels=labels)
    train = [SimpleNamespace(label=lab, label_space=space) for lab in ["neutral"] * 5 + ["happy"] * 2]
    other = SimpleNamespace(labels=["positive", "negative"])
    prior = label_prior(train + [SimpleNamespace(label="positive", label_space=other)])
    assert prior["neutral,happy,sad"] == pytest.approx({"neutral": 6 / 10, "happy": 3 / 10, "sad": 1 / 10})
    assert prior["positive,negative"] == pytest.approx({"positive": 2 / 3, "negative": 1 / 3})
    stats = {"audio": StreamStats([0.0, 0.0], [1.0, 1.0], threshold=4.0),
             "vision": StreamStats([0.0], [1.0], threshold=4.0)}
    cal = Calibration(stats=stats, drop_far_streams=True, prior=prior, temperature=2.0, ood_temperature=3.0)
    said = torch.tensor([0.05, 0.9, 0.05])  # the empty prompt's answer: happy
    far_audio, no_video = {"audio": torch.tensor([5.0, 5.0]), "vision": None}, {"vision": torch.tensor([0.5])}
    out, why = cal.apply(said, labels, far_audio, None, transcript="  ")
    assert why == "no_evidence" and out.tolist() == pytest.approx([0.6, 0.3, 0.1])
    _, why = cal.apply(said, labels, far_audio, None, transcript="I am fine.")
    assert why == "far_from_training_data"  # words remain: scored on them
    assert not cal.no_evidence({**far_audio, **no_video}, labels, None)  # a near stream remains
    assert not cal.no_evidence(far_audio, ["a", "b"], None)  # no prior of that label set
    off = Calibration(stats=stats, prior=prior)  # far streams kept (drop_far_streams off): they are evidence
    assert not off.no_evidence(far_audio, labels, None)
    assert Calibration.from_json(cal.to_json()) == cal
