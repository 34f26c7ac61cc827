"""Speech segmentation: the packaged Silero ONNX model, the hysteresis, streaming, and real (espeak-ng) speech."""
import hashlib
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest

from emotion_ros.ingest.vad import (
    FRAME,
    NS_PER_SAMPLE,
    EnergyVAD,
    SileroVAD,
    SpeechSegmenter,
    VadConfig,
    silero_model_path,
    silero_provenance,
)

T0 = 1_700_000_000 * 10**9
FRAME_NS = FRAME * NS_PER_SAMPLE  # 32 ms

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def silero():
    return SileroVAD()


def _espeak(text, tmp_path, extra=()):
    from emotion_ros.ingest.audio_conversion import chunk_to_mono

    path = tmp_path / "s.wav"
    subprocess.run(["espeak-ng", *extra, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    with wave.open(str(path)) as wf:
        return chunk_to_mono(wf.getframerate(), wf.getnchannels(), "S16LE", wf.readframes(wf.getnframes())).samples


def _feed(seg, signal, chunk, t0=T0):
    out = []
    for i in range(0, len(signal), chunk):
        out += seg.process(t0 + i * NS_PER_SAMPLE, signal[i:i + chunk])
    return out + seg.flush()


def test_model_comes_from_the_installed_package():
    prov = silero_provenance()
    path = silero_model_path()
    assert prov["package"] == "silero-vad" and prov["licence"] == "MIT"
    assert prov["version"].split(".")[0] == "6"
    assert "site-packages" in str(path) and path.parent.name == "data"
    assert prov["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_torch_import_and_no_network():
    code = ("import sys, socket\n"
            "def deny(*a, **k): raise RuntimeError('network used')\n"
            "socket.socket.connect = deny\n"
            "from emotion_ros.ingest.vad import SileroVAD\n"
            "import numpy as np\n"
            "v = SileroVAD(); p = v.prob(np.zeros(512, np.float32))\n"
            "assert 0.0 <= p <= 1.0\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert 'silero_vad' not in sys.modules, 'package code imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_silence_and_faint_noise_give_no_segment(silero):
    seg = SpeechSegmenter(model=silero)
    silence = np.zeros(16000 * 3, np.float32)
    assert _feed(seg, silence, 1600) == []
    noise = (np.random.default_rng(0).standard_normal(16000 * 3) * 0.003).astype(np.float32)
    assert _feed(SpeechSegmenter(model=silero), noise, 1600) == []


@needs_espeak
@pytest.mark.parametrize("chunk", [160, 16000])  # 10 ms and 1 s chunks
def test_real_speech_is_found(silero, chunk, tmp_path):
    speech = _espeak("Hello, I am really glad to see you today. It is a wonderful morning.", tmp_path)
    lead = 1.0
    sig = np.concatenate([np.zeros(16000, np.float32), speech, np.zeros(24000, np.float32)])
    active = np.flatnonzero(np.abs(speech) > 0.02)
    sp_lo, sp_hi = lead + active[0] / 16000, lead + active[-1] / 16000
    segs = _feed(SpeechSegmenter(model=silero), sig, chunk)
    assert segs, "no speech found in espeak-ng speech"
    rel = [((a - T0) / 1e9, (b - T0) / 1e9) for a, b in segs]
    assert rel[0][0] <= sp_lo + 0.2 and rel[0][0] >= sp_lo - 0.5
    assert rel[-1][1] >= sp_hi - 0.3 and rel[-1][1] <= sp_hi + 0.6
    covered = sum(b - a for a, b in rel)
    assert covered >= 0.7 * (sp_hi - sp_lo)


@needs_espeak
def test_streaming_state_is_kept_between_calls(silero, tmp_path):
    speech = _espeak("Good evening everyone.", tmp_path)
    sig = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(16000, np.float32)])
    a = _feed(SpeechSegmenter(model=silero), sig, 160)
    b = _feed(SpeechSegmenter(model=silero), sig, 7777)
    assert a == b and a
    # and it is the state that matters: resetting the model every frame changes the probabilities
    probs_stream, probs_reset = [], []
    m = SileroVAD()
    for i in range(0, len(sig) - FRAME, FRAME):
        probs_stream.append(m.prob(sig[i:i + FRAME]))
    for i in range(0, len(sig) - FRAME, FRAME):
        m.reset()
        probs_reset.append(m.prob(sig[i:i + FRAME]))
    assert np.abs(np.array(probs_stream) - np.array(probs_reset)).max() > 0.1


@needs_espeak
def test_gap_closes_open_segment(silero, tmp_path):
    speech = _espeak("This sentence is cut in the middle by a gap in the audio stream.", tmp_path)
    half = len(speech) // 2
    seg = SpeechSegmenter(model=silero)
    out = seg.process(T0, np.concatenate([np.zeros(8000, np.float32), speech[:half]]))
    gap_at = T0 + (8000 + half) * NS_PER_SAMPLE
    later = gap_at + 3 * 10**9
    out += seg.process(later, speech[half:])
    out += seg.flush()
    assert len(out) >= 2
    assert all(not (a < gap_at + 10**9 < b) for a, b in out), "a segment spans the gap"
    assert any(b <= gap_at + seg.config.speech_pad_s * 1e9 + 1 for a, b in out)


class ScriptedModel:
    """Returns a fixed probability per frame: tests the hysteresis exactly."""

    name = "scripted"

    def __init__(self, probs):
        self.probs = list(probs)
        self.i = 0

    def reset(self):
        pass

    def prob(self, frame):
        p = self.probs[self.i] if self.i < len(self.probs) else 0.0
        self.i += 1
        return p


def test_hysteresis_timing_exact():
    cfg = VadConfig(threshold=0.5, neg_threshold=0.35, min_silence_s=0.1, min_speech_s=0.1, speech_pad_s=0.05)
    # frames: 3 silent, 5 speech, 1 "between thresholds" (continues), 2 speech, 2 dips (64 ms < 100 ms),
    # 2 speech, then silence
    probs = [0, 0, 0] + [0.9] * 5 + [0.4] + [0.9] * 2 + [0.1] * 2 + [0.9] * 2 + [0.0] * 10
    seg = SpeechSegmenter(cfg, model=ScriptedModel(probs))
    out = seg.process(T0, np.zeros(FRAME * len(probs), np.float32))
    start, end = 3 * FRAME_NS, 15 * FRAME_NS
    assert out == [(T0 + start - 50_000_000, T0 + end + 50_000_000)]


def test_short_blips_dropped_and_long_speech_split():
    cfg = VadConfig(min_speech_s=0.1, min_silence_s=0.05, max_speech_s=1.0, speech_pad_s=0.05)
    seg = SpeechSegmenter(cfg, model=ScriptedModel([0.9, 0, 0, 0, 0] + [0.9] * 100 + [0] * 5))
    out = seg.process(T0, np.zeros(FRAME * 110, np.float32))
    pad = 50_000_000
    assert all(b - a <= 10**9 + pad for a, b in out)  # max_speech_s + the pad at the outer ends
    assert len(out) == 4  # 3.2 s of speech in pieces of at most 1 s; the 32 ms blip is gone
    assert out[0][0] == T0 + 5 * FRAME_NS - pad
    assert out[-1][1] == T0 + 105 * FRAME_NS + pad
    for (a0, b0), (a1, b1) in zip(out, out[1:]):
        assert a1 == b0  # consecutive pieces, no hole, no overlap (no pad at the cuts)


def test_energy_fallback_is_a_loudness_gate():
    seg = SpeechSegmenter(VadConfig(min_speech_s=0.1), model=EnergyVAD())
    assert seg.backend == "energy"
    t = np.arange(16000) / 16000
    tone = np.concatenate([np.zeros(16000), 0.3 * np.sin(2 * np.pi * 300 * t), np.zeros(16000)]).astype(np.float32)
    out = _feed(seg, tone, 1600)
    assert len(out) == 1
    a, b = ((out[0][0] - T0) / 1e9, (out[0][1] - T0) / 1e9)
    assert 0.8 <= a <= 1.0 and 2.0 <= b <= 2.2
    assert _feed(SpeechSegmenter(model=EnergyVAD()), np.zeros(32000, np.float32), 1600) == []
