"""Synthetic speech with controlled emotional prosody, spoken by Debian's espeak-ng.

Why espeak-ng: it is a small Debian package (requirements/apt-training.txt), deterministic for a given
input, and its SSML <prosody> element sets pitch, pitch range, rate and volume per utterance, while
<break> inserts pauses. Those are the acoustic cues the paper's audio descriptions talk about (pitch
variation, speaking rate, intensity, pauses). Per-emotion settings follow the usual vocal-affect
findings: happy high and fast with lively pitch; sad low, slow, quiet and flat; angry loud and fast;
worried raised pitch, narrow range, hesitant pauses; surprise very high with a wide range.

Every clip jitters these settings and the voice (espeak-ng voice + variant) so no single value
identifies the emotion.
"""
from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import asdict, dataclass

import av
import numpy as np

from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE



@dataclass(frozen=True)
class Prosody:
    """Relative prosody settings (100 = the voice's normal) plus pauses between words."""

    pitch_pct: float  # pitch shift in percent (+30 = 30 % higher)
    range_pct: float  # pitch range in percent of normal (200 = twice as lively, 40 = nearly flat)
    rate_pct: float  # speaking rate in percent of normal
    volume_pct: float  # loudness in percent of normal
    pauses: int = 0  # number of pauses inserted between words
    pause_ms: int = 0  # length of each pause

    def to_dict(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


# Mean settings per MER6 emotion.
EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(pitch_pct=0, range_pct=100, rate_pct=100, volume_pct=100),
    "happy": Prosody(pitch_pct=30, range_pct=170, rate_pct=115, volume_pct=125),
    "sad": Prosody(pitch_pct=-25, range_pct=45, rate_pct=75, volume_pct=60, pauses=1, pause_ms=250),
    "angry": Prosody(pitch_pct=10, range_pct=150, rate_pct=120, volume_pct=175),
    "worried": Prosody(pitch_pct=20, range_pct=65, rate_pct=95, volume_pct=85, pauses=2, pause_ms=220),
    "surprise": Prosody(pitch_pct=45, range_pct=220, rate_pct=105, volume_pct=135),
}

# espeak-ng voices (language voice + variant) for speaker variety; all ship in the Debian package.
VOICES: tuple[str, ...] = tuple(
    f"{lang}+{var}"
    for lang in ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp")
    for var in ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5")
)


def sample_prosody(emotion: str, rng: np.random.Generator, intensity: float = 1.0) -> Prosody:
    """Emotion's prosody scaled toward neutral by `intensity` (0..1), with per-clip jitter."""
    try:
        target = EMOTION_PROSODY[emotion]
    except KeyError:
        raise KeyError(f"no prosody for emotion {emotion!r}; have {sorted(EMOTION_PROSODY)}") from None
    base = EMOTION_PROSODY["neutral"]

    def mix(a, b):
        return a + intensity * (b - a)

    return Prosody(
        pitch_pct=mix(base.pitch_pct, target.pitch_pct) + rng.normal(0, 5),
        range_pct=max(20.0, mix(base.range_pct, target.range_pct) * np.exp(rng.normal(0, 0.12))),
        rate_pct=mix(base.rate_pct, target.rate_pct) * np.exp(rng.normal(0, 0.05)),
        volume_pct=mix(base.volume_pct, target.volume_pct) * np.exp(rng.normal(0, 0.08)),
        pauses=target.pauses,
        pause_ms=int(target.pause_ms * (0.8 + 0.4 * rng.random())) if target.pauses else 0,
    )


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def ssml(text: str, prosody: Prosody, rng: np.random.Generator | None = None) -> str:
    """The SSML document espeak-ng speaks: one <prosody> span, pauses between randomly chosen words."""
    words = text.split()
    breaks: set[int] = set()
    if prosody.pauses and len(words) > 1:
        gaps = np.arange(1, len(words))
        k = min(prosody.pauses, len(gaps))
        chosen = (rng.choice(gaps, size=k, replace=False) if rng is not None else gaps[:k])
        breaks = {int(g) for g in chosen}
    parts = []
    for i, w in enumerate(words):
        if i in breaks:
            parts.append(f'<break time="{prosody.pause_ms}ms"/>')
        parts.append(html.escape(w, quote=False))
    attrs = (
        f'pitch="{prosody.pitch_pct:+.0f}%" range="{prosody.range_pct:.0f}%" '
        f'rate="{prosody.rate_pct:.0f}%" volume="{prosody.volume_pct:.0f}%"'
    )
    return f"<speak><prosody {attrs}>{' '.join(parts)}</prosody></speak>"


def _run_espeak(doc: str, voice: str) -> tuple[np.ndarray, int]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found: apt-get install espeak-ng (see requirements/apt-training.txt)")
    proc = subprocess.run([exe, "-m", "-v", voice, "--stdout", doc], capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:300]}")
    return _parse_wav(proc.stdout)


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """espeak-ng's --stdout WAV (its size fields are not final when streaming: read to the end)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError("espeak-ng did not produce a WAV stream")
    pos, rate = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            rate = int.from_bytes(data[pos + 12:pos + 16], "little")
        if cid == b"data":
            pcm = np.frombuffer(data[pos + 8:len(data) - ((len(data) - pos - 8) % 2)], dtype="<i2")
            return pcm.astype(np.float32) / 32768.0, int(rate or 22050)
        pos += 8 + size
    raise RuntimeError("espeak-ng WAV has no data chunk")


def resample(x: np.ndarray, rate: int, target: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Mono float32 resampling with FFmpeg's resampler (deterministic)."""
    if rate == target:
        return x.astype(np.float32, copy=False)
    r = av.AudioResampler(format="flt", layout="mono", rate=target)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, dtype=np.float32)[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    out = [f.to_ndarray().reshape(-1) for f in r.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in r.resample(None)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def trim_silence(x: np.ndarray, threshold: float = 0.01, pad: int = 160) -> np.ndarray:
    """Drop leading/trailing near-silence (espeak-ng adds some) but keep `pad` samples of margin."""
    idx = np.nonzero(np.abs(x) > threshold)[0]
    if idx.size == 0:
        return x[:0]
    return x[max(0, idx[0] - pad): idx[-1] + 1 + pad]


def synthesize(text: str, prosody: Prosody, voice: str = "en-us+m3", rng: np.random.Generator | None = None,
               max_seconds: float | None = None, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Speak `text` with `prosody`; float32 mono at `sample_rate`, end silences trimmed.

    With max_seconds, a too-long utterance is re-spoken faster (up to twice) and then cut with a fade.
    """
    pause_rng_state = None if rng is None else rng.bit_generator.state
    p = prosody
    audio = np.zeros(0, np.float32)
    for _ in range(3):
        if pause_rng_state is not None:
            rng.bit_generator.state = pause_rng_state  # same pause positions on every retry
        pcm, rate = _run_espeak(ssml(text, p, rng), voice)
        audio = trim_silence(resample(pcm, rate, sample_rate))
        if max_seconds is None or len(audio) <= max_seconds * sample_rate:
            return audio
        factor = len(audio) / (max_seconds * sample_rate) * 1.05
        p = Prosody(p.pitch_pct, p.range_pct, p.rate_pct * factor, p.volume_pct, p.pauses, p.pause_ms)
    n = int(max_seconds * sample_rate)
    audio = audio[:n].copy()
    fade = min(len(audio), int(0.05 * sample_rate))
    audio[len(audio) - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return audio


def describe_voice(p: Prosody) -> str:
    """A short tone description of the actual prosody (the paper's audio tone description)."""
    parts = []
    if p.pitch_pct >= 35:
        parts.append("very high-pitched")
    elif p.pitch_pct >= 12:
        parts.append("high-pitched")
    elif p.pitch_pct <= -12:
        parts.append("low-pitched")
    else:
        parts.append("at an ordinary pitch")
    if p.rate_pct >= 110:
        parts.append("fast")
    elif p.rate_pct <= 85:
        parts.append("slow")
    else:
        parts.append("at a normal pace")
    if p.volume_pct >= 150:
        parts.append("loud and forceful")
    elif p.volume_pct >= 118:
        parts.append("fairly loud")
    elif p.volume_pct <= 75:
        parts.append("quiet")
    if p.range_pct >= 190:
        tone = "with wide, rising swings in intonation"
    elif p.range_pct >= 135:
        tone = "with lively intonation"
    elif p.range_pct <= 60:
        tone = "with a flat, monotone intonation"
    elif p.range_pct <= 80:
        tone = "with a tense, narrow intonation"
    else:
        tone = "with an even intonation"
    text = "The voice is " + ", ".join(parts) + ", " + tone
    if p.pauses:
        text += ", broken by hesitant pauses" if p.pauses > 1 else ", with a drawn-out pause"
    return text + "."
