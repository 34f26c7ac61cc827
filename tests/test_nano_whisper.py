"""Whisper-base from the CTranslate2 packages: our encoder vs CTranslate2's, and ASR of synthesised speech.

The first run joins model.bin and converts the encoder into the user cache (~10 s); later runs reuse it.
"""

import shutil
import subprocess
import time
import wave

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.nano

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please open the window, it is very warm in this room.",
]
# Criterion: word error rate (normalised words: lower case, punctuation removed) <= 0.25 per sentence.
# espeak-ng's robotic voice makes Whisper-base drop an occasional inflection ("jumps" -> "jump").
MAX_WER = 0.25


@pytest.fixture(scope="module")
def encoder():
    from emotion_ros.backbones import load_whisper_encoder

    return load_whisper_encoder()


def _test_audio(seconds=2.0, seed=0):
    """A chirp plus noise: broadband content that exercises every mel bin."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.5 * t)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_encoder_is_whisper_base_fp32_eval(encoder):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    assert isinstance(encoder, WhisperEncoder) and not encoder.training
    assert encoder.config.d_model == 512 and len(encoder.layers) == 6
    assert all(p.dtype == torch.float32 for p in encoder.parameters())
    assert sum(p.numel() for p in encoder.parameters()) == 20_590_592


def test_encoder_matches_ctranslate2_on_padded_audio(encoder):
    import ctranslate2
    from transformers import WhisperFeatureExtractor

    from emotion_ros.backbones.whisper_ct2 import whisper_ct2_dir

    audio = _test_audio(2.0)
    feats = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)(
        audio, sampling_rate=16000, return_tensors="np").input_features  # [1, 80, 3000]: 30 s padded
    with torch.inference_mode():
        ours = encoder(torch.from_numpy(feats)).last_hidden_state[0].numpy()
    ct2 = ctranslate2.models.Whisper(str(whisper_ct2_dir()), device="cpu", compute_type="float32")
    ref = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)), to_cpu=True))[0]
    assert ours.shape == ref.shape == (1500, 512)
    n_real = 100  # 2 s = 100 encoder positions (20 ms each)
    a, b = ours[:n_real], ref[:n_real]
    cos = float((a.ravel() @ b.ravel()) / np.linalg.norm(a) / np.linalg.norm(b))
    frame_cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cos >= 0.999, cos
    assert frame_cos.min() >= 0.999, frame_cos.min()


def test_encoder_cache_is_reused(encoder):
    from emotion_ros.backbones.whisper_ct2 import whisper_encoder_file

    path = whisper_encoder_file()
    mtime = path.stat().st_mtime_ns
    t0 = time.perf_counter()
    assert whisper_encoder_file() == path
    assert time.perf_counter() - t0 < 1.0
    assert path.stat().st_mtime_ns == mtime


def _speak(text: str, tmp_path) -> np.ndarray:
    from scipy.signal import resample_poly

    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    g = np.gcd(rate, 16000)
    return resample_poly(pcm, 16000 // g, rate // g).astype(np.float32)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing (requirements/apt-nano.txt)")
def test_transcribes_synthesised_sentences(tmp_path, encoder):
    from emotion_ros.backbones.asr import Transcriber, word_error_rate

    transcriber = Transcriber(language="en")
    shared = Transcriber(language="en", compute_type="float32", encoder=encoder)  # our encoder + CT2 decoder
    for i, text in enumerate(SENTENCES):
        audio = _speak(text, tmp_path)
        for tr in (transcriber, shared) if i == 0 else (transcriber,):
            hyp = tr.transcribe(audio)
            assert word_error_rate(text, hyp) <= MAX_WER, (text, hyp)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing (requirements/apt-nano.txt)")
def test_decodes_our_padded_encoder_states(tmp_path, encoder):
    """transcribe_states: the CTranslate2 decoder on states computed by our transformers encoder."""
    from transformers import WhisperFeatureExtractor

    from emotion_ros.backbones.asr import Transcriber, word_error_rate

    text = SENTENCES[1]
    audio = _speak(text, tmp_path)
    feats = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)(
        audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        states = encoder(feats).last_hidden_state
    hyp = Transcriber(language="en", compute_type="float32").transcribe_states(states)
    assert word_error_rate(text, hyp) <= MAX_WER, hyp


def test_transcriber_rejects_bad_audio():
    from emotion_ros.backbones.asr import _check_audio
    from emotion_ros.ingest.errors import InputError

    for bad, reason in [(np.zeros((2, 10), np.float32), "audio_not_mono"), (np.zeros(0, np.float32), "audio_empty"),
                        (np.zeros(10, np.int16), "audio_not_float"), (np.array([0.0, np.nan], np.float32), "audio_not_finite")]:
        with pytest.raises(InputError) as err:
            _check_audio(bad)
        assert err.value.reason == reason


def test_word_error_rate():
    from emotion_ros.backbones.asr import word_error_rate

    assert word_error_rate("Hello, World!", "hello world") == 0.0
    assert word_error_rate("a b c d", "a x c") == 0.5
