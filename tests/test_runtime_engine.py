"""Optimised engine vs the reference InferenceEngine on the same overlapping windows (tiny profile)."""
import threading
from dataclasses import replace
import warnings

import numpy as np
import pytest
import torch

from emotion_ros.model.config import get_profile
from emotion_ros.inference.engine import EngineConfig, InferenceEngine
from emotion_ros.model.emotion_llama import build_model
from emotion_ros.inference import build_engine
from emotion_ros.inference.fast_engine import FastInferenceEngine, FastOptions
from emotion_ros.inference.frame_cache import CachedVisionEncoder, FrameEmbeddingCache
from tests.helpers.synthetic import overlapping_windows, synthetic_sequence

LOGP_ATOL = 1e-3  # log-probabilities of the label set; the speed-ups only change float summation order
PROB_ATOL = 1e-5  # the same on probabilities (log-probs are the stricter test on small probabilities)
CFG = EngineConfig(profile="tiny", reasoning_max_tokens=16, asr="never")


@pytest.fixture(scope="module")
def model():
    return build_model(get_profile("tiny"))


@pytest.fixture(scope="module")
def windows():
    frames, stamps, audio = synthetic_sequence(seconds=3.5, height=48, width=64, seed=0)
    ws = overlapping_windows(frames, stamps, audio, transcripts=["hello there", None, "I can't believe it"])
    ws[1].audio = None  # missing modalities must take the same path as in the reference
    ws[2].frames = ws[2].frame_stamps_ns = ws[2].global_frame = None
    return ws


def _copy(w):
    import copy
    return copy.copy(w)


def _logp(scores):
    return np.log(np.clip(np.asarray(scores, dtype=np.float64), 1e-30, None))


@pytest.fixture(scope="module")
def reference(model, windows):
    ref = InferenceEngine(model, CFG)
    return [ref.process(_copy(w)) for w in windows]


# the naive options except the 30 s padded Whisper input, which is a different computation (the padding
# takes part in the encoder's attention); it is checked against the model's own padded path below.
NAIVE_REAL_AUDIO = replace(FastOptions.naive(), audio_real_length=True)


@pytest.mark.parametrize("options", [FastOptions(), NAIVE_REAL_AUDIO, FastOptions(label_one_pass=False),
                                     FastOptions(prefix_kv=False)], ids=["all", "naive", "repeat", "no_kv"])
def test_same_labels_and_probabilities(model, windows, reference, options):
    fast = FastInferenceEngine(model, CFG, options=options)
    spread = 0.0
    for w, ref in zip(windows, reference):
        out = fast.process(_copy(w))
        assert out.labels == ref.labels and out.label == ref.label
        assert abs(sum(out.scores) - 1) < 1e-5
        err = float(np.abs(_logp(out.scores) - _logp(ref.scores)).max())
        assert err < LOGP_ATOL, (w.index, err)
        assert float(np.abs(np.subtract(out.scores, ref.scores)).max()) < PROB_ATOL
        spread = max(spread, float(np.abs(_logp(ref.scores) - _logp(reference[0].scores)).max()))
        assert {"audio_enc", "vision_enc", "fusion_adapter", "llm_label"} <= set(out.stage_ms)
    assert spread > 50 * LOGP_ATOL  # the windows really differ, so the comparison means something


def test_padded_whisper_switch_matches_the_models_padded_path(model, windows):
    naive = FastInferenceEngine(model, CFG, options=FastOptions.naive())
    audio = windows[0].audio
    tokens, mask = naive._audio(audio)
    ref = model.audio_encoder([audio], padded=True)
    assert torch.allclose(tokens, ref.tokens, atol=1e-4) and torch.equal(mask, ref.mask)
    real, _ = FastInferenceEngine(model, CFG)._audio(audio)
    assert not torch.allclose(real, tokens, atol=1e-3)  # the switch really changes the computation


@pytest.mark.parametrize("penalty", [1.0, 1.5])
def test_same_greedy_reasoning(model, windows, penalty):
    cfg = replace(CFG, reasoning_repetition_penalty=penalty)
    ref = InferenceEngine(model, cfg)
    fast = FastInferenceEngine(model, cfg)
    for w in windows[:2]:
        w = _copy(w)
        fast.process(w)  # leaves the window's prefix KV for the reasoning path
        expected = "".join(ref.stream_reasoning(w))
        assert "".join(fast.stream_reasoning(w)) == expected and expected
    # without a preceding label pass (encodes itself)
    w = _copy(windows[3])
    assert "".join(fast.stream_reasoning(w)) == "".join(ref.stream_reasoning(w))


def test_each_frame_encoded_once(model):
    frames, stamps, audio = synthetic_sequence(seconds=4.0, height=48, width=64, seed=1)
    ws = overlapping_windows(frames, stamps, audio)
    v = model.vision_encoder
    seen = []

    def counting(x):
        seen.append(x.shape[0])
        return v._run(x)

    cached = CachedVisionEncoder(v, FrameEmbeddingCache(256), counting)
    plain = CachedVisionEncoder(v, None)
    for w in ws:
        a, b = cached([w]), plain([w])
        for t_a, t_b in zip((a.global_patches, a.global_cls, a.temporal), (b.global_patches, b.global_cls, b.temporal)):
            assert torch.allclose(t_a, t_b, atol=1e-5)
    temporal = {int(s) for w in ws for s in w.frame_stamps_ns}
    globals_ = {w.global_frame.tobytes() for w in ws}
    # each camera frame went through the image encoder once per view size, never twice
    assert sum(seen) == len(temporal) + len(globals_)
    assert sum(seen) < 17 * len(ws) / 2  # well under the naive 17 images per window


def test_stamp_reused_for_other_image_is_a_miss(model):
    v = model.vision_encoder
    frames, stamps, audio = synthetic_sequence(seconds=2.0, height=48, width=64, seed=2)
    w1 = overlapping_windows(frames, stamps, audio)[0]
    w2 = _copy(w1)
    w2.frames = 255 - w1.frames  # same stamps (clock reset / bag loop), other pictures
    w2.global_frame = 255 - w1.global_frame
    cached = CachedVisionEncoder(v, FrameEmbeddingCache(64))
    cached([w1])
    out = cached([w2])
    ref = CachedVisionEncoder(v, None)([w2])
    assert torch.allclose(out.temporal, ref.temporal, atol=1e-5)
    assert torch.allclose(out.global_cls, ref.global_cls, atol=1e-5)


def test_reasoning_does_not_block_labels(model, windows):
    fast = FastInferenceEngine(model, EngineConfig(profile="tiny", reasoning_max_tokens=200, asr="never"))
    w = _copy(windows[0])
    fast.process(w)
    started, stop = threading.Event(), threading.Event()
    deltas = []

    def reason():
        for d in fast.stream_reasoning(w, should_stop=stop.is_set):
            deltas.append(d)
            started.set()

    th = threading.Thread(target=reason)
    th.start()
    assert started.wait(30)
    n_before = len(deltas)
    out = fast.process(_copy(windows[1]))  # must get the model between two tokens
    n_after = len(deltas)
    stop.set()
    th.join(30)
    assert out.label in out.labels
    assert n_after - n_before <= 3  # the label pass did not wait for the whole reasoning text


def test_build_engine_backends(model, tmp_path):
    ref = build_engine(replace(CFG, pipeline="reference"), model=model)
    assert type(ref) is InferenceEngine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eng = build_engine(replace(CFG, backend="tensorrt"), model=model, onnx_dir=tmp_path)  # falls back here
    assert isinstance(eng, FastInferenceEngine)
    assert eng.backend.name in ("onnxruntime", "torch")
    frames, stamps, audio = synthetic_sequence(seconds=2.0, height=48, width=64, seed=3)
    w = overlapping_windows(frames, stamps, audio, transcripts=["ok"])[0]
    a, b = ref.process(_copy(w)), eng.process(_copy(w))
    assert a.label == b.label
    assert float(np.abs(_logp(a.scores) - _logp(b.scores)).max()) < LOGP_ATOL
    with pytest.raises(ValueError, match="backend"):
        replace(CFG, backend="cuda")
