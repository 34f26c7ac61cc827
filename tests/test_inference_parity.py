"""One engine, three presets: optimised (frame cache, prefix KV, tree-masked one-pass label scoring),
reference (no caches, batched scoring) and naive (one pass per label) give the same labels and
probabilities, on windows cut by the real Windower from a camera + microphone sequence (tiny profile)."""
import copy
import threading
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from emotion_ros.inference import build_engine
from emotion_ros.inference.engine import EngineConfig, InferenceEngine
from emotion_ros.model.config import InferenceOptions, get_profile
from emotion_ros.model.emotion_llama import build_model
from tests.helpers.synthetic import synthetic_sequence, windows_from_windower

LOGP_ATOL = 1e-3  # log-probabilities of the label set; the speed-ups only change float summation order
PROB_ATOL = 1e-5  # the same on probabilities (log-probs are the stricter test on small probabilities)
CFG = EngineConfig(profile="tiny", reasoning_max_tokens=16, asr="never", llm_precision="float32")


def _engine(pipeline="reference", options=None, **cfg):
    """Each engine on its own model: options are the model stages' own state (two builds are identical)."""
    return InferenceEngine(build_model(get_profile("tiny")), replace(CFG, pipeline=pipeline, **cfg), options=options)


@pytest.fixture(scope="module")
def windows():
    frames, stamps, audio = synthetic_sequence(seconds=4.0, height=48, width=64, seed=0)
    ws = windows_from_windower(frames, stamps, audio, transcripts=["hello there", None, "I can't believe it"])
    assert len(ws) >= 5
    ws[1].audio = None  # missing modalities must take the same path in every preset
    ws[2].frames = ws[2].frame_stamps_ns = ws[2].global_frame = None
    return ws


def _logp(scores):
    return np.log(np.clip(np.asarray(scores, dtype=np.float64), 1e-30, None))


@pytest.fixture(scope="module")
def reference(windows):
    ref = _engine("reference")
    return [ref.process(copy.copy(w)) for w in windows]


# the naive preset except the 30 s padded Whisper input, which is a different computation (the padding
# takes part in the encoder's attention); it is checked against the audio encoder's padded path below.
NAIVE_REAL_AUDIO = replace(InferenceOptions.preset("naive"), audio_padded=False)


@pytest.mark.parametrize("options", [InferenceOptions.preset("optimised"), NAIVE_REAL_AUDIO,
                                     replace(InferenceOptions(), label_scoring="batched"),
                                     replace(InferenceOptions(), prefix_kv=False)],
                         ids=["optimised", "naive", "batched", "no_prefix_kv"])
def test_same_labels_and_probabilities(windows, reference, options):
    eng = _engine(options=options)
    spread = 0.0
    for w, ref in zip(windows, reference):
        out = eng.process(copy.copy(w))
        assert out.labels == ref.labels and out.label == ref.label
        assert abs(sum(out.scores) - 1) < 1e-5
        err = float(np.abs(_logp(out.scores) - _logp(ref.scores)).max())
        assert err < LOGP_ATOL, (w.index, err)
        assert float(np.abs(np.subtract(out.scores, ref.scores)).max()) < PROB_ATOL
        spread = max(spread, float(np.abs(_logp(ref.scores) - _logp(reference[0].scores)).max()))
        assert {"audio_enc", "vision_enc", "fusion_adapter", "llm_label"} <= set(out.stage_ms)
    assert spread > 50 * LOGP_ATOL  # the windows really differ, so the comparison means something


def test_padded_whisper_option_is_the_audio_encoders_padded_path(windows):
    model = build_model(get_profile("tiny"))
    audio = windows[0].audio
    padded = model.audio_encoder([audio], padded=True)
    model.set_options(InferenceOptions.preset("naive"))
    naive = model.audio_encoder([audio])
    assert torch.allclose(naive.tokens, padded.tokens, atol=1e-5) and torch.equal(naive.mask, padded.mask)
    real = model.audio_encoder([audio], padded=False)
    assert not torch.allclose(real.tokens, naive.tokens, atol=1e-3)  # the option really changes the computation


@pytest.mark.parametrize("penalty", [1.0, 1.5])
def test_same_greedy_reasoning(windows, penalty):
    ref, fast = _engine("reference", reasoning_repetition_penalty=penalty), \
        _engine("optimised", reasoning_repetition_penalty=penalty)
    for w in windows[:2]:
        w = copy.copy(w)
        fast.process(w)  # leaves the window's encoding + prefix KV for the reasoning path
        expected = "".join(ref.stream_reasoning(w))
        assert "".join(fast.stream_reasoning(w)) == expected and expected
    w = copy.copy(windows[3])  # without a preceding label pass (encodes itself)
    assert "".join(fast.stream_reasoning(w)) == "".join(ref.stream_reasoning(w))
    # and the model's own stream_reasoning (training's evaluation) is the same decode loop
    assert "".join(ref.model.stream_reasoning(w, max_new_tokens=16, repetition_penalty=penalty)) == \
        "".join(ref.stream_reasoning(w))


def test_each_camera_frame_encoded_once_with_the_frame_cache():
    frames, stamps, audio = synthetic_sequence(seconds=4.0, height=48, width=64, seed=1)
    ws = windows_from_windower(frames, stamps, audio)
    cached, plain = build_model(get_profile("tiny")), build_model(get_profile("tiny"))
    cached.set_options(InferenceOptions.preset("optimised"))
    seen = []
    v = cached.vision_encoder

    def counting(x):  # through the backend hook, as onnxruntime/TensorRT would run
        seen.append(x.shape[0])
        v.run_backbone = None
        try:
            return v.encode_pixels(x)
        finally:
            v.run_backbone = counting

    v.run_backbone = counting
    for w in ws:
        a, b = cached.encode([w]), plain.encode([w])
        for name in ("global_patches", "global_cls", "temporal_tokens"):
            assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-5), name
    camera_frames = {int(s) for w in ws for s in w.frame_stamps_ns} | \
        {w.meta["global_frame_stamp_ns"] for w in ws}
    # tiny has two view sizes (48 global, 32 temporal): each camera frame at most once per view size
    globals_ = {w.meta["global_frame_stamp_ns"] for w in ws}
    assert sum(seen) == len({int(s) for w in ws for s in w.frame_stamps_ns}) + len(globals_)
    assert sum(seen) < 17 * len(ws) / 2 and len(camera_frames) > 20  # well under the 17 images per window
    assert cached.vision_encoder.cache.stats()["hits"] > 0


def test_stamp_reused_for_another_image_is_a_miss():
    frames, stamps, audio = synthetic_sequence(seconds=2.0, height=48, width=64, seed=2)
    w1 = windows_from_windower(frames, stamps, audio)[0]
    w2 = copy.copy(w1)
    w2.frames = 255 - w1.frames  # same stamps (clock reset / bag loop), other pictures
    w2.global_frame = 255 - w1.global_frame
    cached, plain = build_model(get_profile("tiny")), build_model(get_profile("tiny"))
    cached.set_options(InferenceOptions.preset("optimised"))
    cached.encode([w1])
    out, ref = cached.encode([w2]), plain.encode([w2])
    assert torch.allclose(out.temporal_tokens, ref.temporal_tokens, atol=1e-5)
    assert torch.allclose(out.global_cls, ref.global_cls, atol=1e-5)


def test_reasoning_does_not_block_labels(windows):
    eng = _engine("optimised", reasoning_max_tokens=200)
    w = copy.copy(windows[0])
    eng.process(w)
    started, stop = threading.Event(), threading.Event()
    deltas = []

    def reason():
        for d in eng.stream_reasoning(w, should_stop=stop.is_set):
            deltas.append(d)
            started.set()

    th = threading.Thread(target=reason)
    th.start()
    assert started.wait(30)
    n_before = len(deltas)
    out = eng.process(copy.copy(windows[1]))  # must get the model between two tokens
    n_after = len(deltas)
    stop.set()
    th.join(30)
    assert out.label in out.labels
    assert n_after - n_before <= 3  # the label pass did not wait for the whole reasoning text


def test_backend_fallback_runs_the_same_stages(windows, tmp_path):
    ref = _engine("optimised")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eng = build_engine(replace(CFG, backend="tensorrt"), model=build_model(get_profile("tiny")),
                           onnx_dir=tmp_path)  # no TensorRT here: falls back to onnxruntime
    assert type(eng) is InferenceEngine and eng.backend.name == "onnxruntime"
    assert eng.describe()["backend"] == "onnxruntime"
    a, b = ref.process(copy.copy(windows[0])), eng.process(copy.copy(windows[0]))
    assert a.label == b.label
    assert float(np.abs(_logp(a.scores) - _logp(b.scores)).max()) < LOGP_ATOL
    with pytest.raises(ValueError, match="backend"):
        replace(CFG, backend="cuda")
