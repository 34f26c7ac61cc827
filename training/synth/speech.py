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
import os
import shutil
import subprocess
import tempfile
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

# ---- voices -------------------------------------------------------------------------------------------
# A voice is "engine:name". Three Debian engines (requirements/apt-training.txt) give speakers that differ
# in more than a pitch offset: espeak-ng (formant synthesis: 8 English accents x 15 variants), flite
# (CMU diphone/clustergen voices kal, awb, rms, slt) and festival (diphone kal, HTS slt). The train/test
# split is BY VOICE: the held-out voices below speak only test clips, so a model that learned a
# synthesiser's speaker rather than the emotion in the prosody is caught by the test split.
# espeak-ng's "+whisper" variant is left out on purpose: it has no pitch, and the pitch cues the
# descriptions name would not be in its audio.
ESPEAK_LANGS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt", "klatt3")
ESPEAK_TEST_LANGS = ("en-029", "en-gb-x-gbcwmd")  # accents never heard in training
ESPEAK_TEST_VARIANTS = ("m7", "f5", "klatt3")  # variants never heard in training
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("cmu_us_slt_arctic_hts", "kal_diphone")
# the CMU speaker "kal" (flite kal/kal16, festival kal_diphone) and "awb" only in test
NON_ESPEAK_TEST = ("flite:kal", "flite:kal16", "flite:awb", "festival:kal_diphone")
# share of clips per engine (festival costs ~0.3-1 s per utterance, espeak-ng and flite ~10-20 ms)
ENGINE_WEIGHTS = {"espeak": 0.55, "flite": 0.3, "festival": 0.15}

# flite's default F0 mean / spread per voice (Hz, measured on "I put the keys on the table." with this
# file's autocorrelation tracker); its int_f0_target_* settings are relative to these. "rms" ignores the
# F0 target (measured: 102.6 Hz either way), so its pitch is shifted after synthesis like festival's HTS voice.
FLITE_F0 = {"kal": (91.0, 12.0), "kal16": (91.0, 12.0), "awb": (126.0, 11.0), "rms": (103.0, 15.0), "slt": (168.0, 15.0)}
FLITE_POST_PITCH = ("rms",)
FESTIVAL_POST = ("cmu_us_slt_arctic_hts",)  # Sable PITCH/RATE/VOLUME measured without effect on the HTS voice


def all_voices() -> tuple[str, ...]:
    v = [f"espeak:{lang}+{var}" for lang in ESPEAK_LANGS for var in ESPEAK_VARIANTS]
    v += [f"flite:{n}" for n in FLITE_VOICES] + [f"festival:{n}" for n in FESTIVAL_VOICES]
    return tuple(v)


def is_test_voice(voice: str) -> bool:
    engine, name = split_voice(voice)
    if engine == "espeak":
        lang, _, var = name.partition("+")
        return lang in ESPEAK_TEST_LANGS or var in ESPEAK_TEST_VARIANTS
    return voice in NON_ESPEAK_TEST


def split_voice(voice: str) -> tuple[str, str]:
    """("espeak", "en-us+m3") from "espeak:en-us+m3"; a bare name is an espeak-ng voice (older manifests)."""
    engine, sep, name = voice.partition(":")
    if not sep:
        return "espeak", voice
    if engine not in ENGINE_WEIGHTS:
        raise ValueError(f"unknown speech engine {engine!r} in voice {voice!r}; have {sorted(ENGINE_WEIGHTS)}")
    return engine, name


VOICES: tuple[str, ...] = all_voices()
TRAIN_VOICES: tuple[str, ...] = tuple(v for v in VOICES if not is_test_voice(v))
TEST_VOICES: tuple[str, ...] = tuple(v for v in VOICES if is_test_voice(v))


def engines_available() -> dict[str, bool]:
    return {"espeak": shutil.which("espeak-ng") is not None, "flite": shutil.which("flite") is not None,
            "festival": shutil.which("text2wave") is not None}


def pick_voice(rng: np.random.Generator, split: str, engines: dict[str, bool] | None = None) -> str:
    """A voice for a clip of `split` (test clips: held-out voices only), engine by ENGINE_WEIGHTS."""
    engines = engines_available() if engines is None else engines
    pool = TEST_VOICES if split == "test" else TRAIN_VOICES
    names = [e for e in ENGINE_WEIGHTS if engines.get(e)]
    if not names:
        raise RuntimeError("no speech engine found: apt-get install espeak-ng flite festival festvox-us-slt-hts "
                           "festvox-kallpc16k (requirements/apt-training.txt)")
    w = np.array([ENGINE_WEIGHTS[e] for e in ENGINE_WEIGHTS])
    u = rng.random()  # always drawn, so a missing engine changes only the clips that would have used it
    engine = list(ENGINE_WEIGHTS)[int(np.searchsorted(np.cumsum(w) / w.sum(), u, side="right"))]
    if engine not in names:
        engine = "espeak" if "espeak" in names else names[0]
    cands = [v for v in pool if split_voice(v)[0] == engine]
    return cands[int(rng.integers(len(cands)))]


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


def _break_positions(words: list[str], prosody: Prosody, rng: np.random.Generator | None) -> set[int]:
    """Word indices before which a pause goes (random gaps from rng, else the first gaps)."""
    if not prosody.pauses or len(words) < 2:
        return set()
    gaps = np.arange(1, len(words))
    k = min(prosody.pauses, len(gaps))
    chosen = rng.choice(gaps, size=k, replace=False) if rng is not None else gaps[:k]
    return {int(g) for g in chosen}


def ssml(text: str, prosody: Prosody, rng: np.random.Generator | None = None, volume: bool = True,
         breaks: set[int] | None = None) -> str:
    """The SSML document espeak-ng speaks: one <prosody> span, pauses between randomly chosen words.

    volume=False leaves the loudness at the voice's normal (synthesize applies it after level normalisation).
    """
    words = text.split()
    if breaks is None:
        breaks = _break_positions(words, prosody, rng)
    parts = []
    for i, w in enumerate(words):
        if i in breaks:
            parts.append(f'<break time="{prosody.pause_ms}ms"/>')
        parts.append(html.escape(w, quote=False))
    attrs = (
        f'pitch="{prosody.pitch_pct:+.0f}%" range="{prosody.range_pct:.0f}%" '
        f'rate="{prosody.rate_pct:.0f}%" volume="{prosody.volume_pct if volume else 100:.0f}%"'
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


def _run_to_file(cmd: list[str], suffix: str = ".wav", stdin: bytes | None = None) -> tuple[np.ndarray, int]:
    """Run an engine that writes a WAV file (its path replaces '{out}' in cmd)."""
    with tempfile.TemporaryDirectory(prefix="synth_tts_") as d:
        out = os.path.join(d, "out" + suffix)
        cmd = [out if c == "{out}" else c for c in cmd]
        proc = subprocess.run(cmd, capture_output=True, timeout=120, input=stdin)
        if proc.returncode != 0 or not os.path.isfile(out):
            raise RuntimeError(f"{os.path.basename(cmd[0])} failed ({proc.returncode}): "
                               f"{proc.stderr.decode(errors='replace')[:300]}")
        with open(out, "rb") as f:
            return _parse_wav(f.read())


def _run_flite(text: str, name: str, p: Prosody) -> tuple[np.ndarray, int]:
    exe = shutil.which("flite")
    if exe is None:
        raise RuntimeError("flite not found: apt-get install flite (see requirements/apt-training.txt)")
    f0, sd = FLITE_F0[name]
    cmd = [exe, "-voice", name, "--setf", f"duration_stretch={100.0 / p.rate_pct:.3f}"]
    if name not in FLITE_POST_PITCH:
        cmd += ["--setf", f"int_f0_target_mean={f0 * (1 + p.pitch_pct / 100):.1f}",
                "--setf", f"int_f0_target_stddev={sd * p.range_pct / 100:.1f}"]
    return _run_to_file(cmd + ["-t", text, "-o", "{out}"])


def _sable(text: str, name: str, p: Prosody, breaks: set[int]) -> str:
    words = [html.escape(w, quote=False) for w in text.split()]
    body = " ".join((f'<BREAK TIME="{p.pause_ms}ms"/> ' if i in breaks else "") + w for i, w in enumerate(words))
    if name not in FESTIVAL_POST:  # Sable prosody works on the diphone voice (measured: F0 102 -> 145 Hz at +40 %)
        body = (f'<PITCH BASE="{p.pitch_pct:+.0f}%" RANGE="{p.range_pct - 100:+.0f}%">'
                f'<RATE SPEED="{p.rate_pct - 100:+.0f}%">{body}</RATE></PITCH>')
    return ('<?xml version="1.0"?>\n<!DOCTYPE SABLE PUBLIC "-//SABLE//DTD SABLE speech mark up//EN" '
            f'"Sable.v0_2.dtd" []>\n<SABLE><SPEAKER NAME="{name}">{body}</SPEAKER></SABLE>\n')


def _run_festival(text: str, name: str, p: Prosody, breaks: set[int]) -> tuple[np.ndarray, int]:
    exe = shutil.which("text2wave")
    if exe is None:
        raise RuntimeError("festival not found: apt-get install festival festvox-us-slt-hts festvox-kallpc16k "
                           "(see requirements/apt-training.txt)")
    with tempfile.TemporaryDirectory(prefix="synth_sable_") as d:
        doc = os.path.join(d, "in.sable")
        with open(doc, "w", encoding="utf-8") as f:
            f.write(_sable(text, name, p, breaks))
        return _run_to_file([exe, "-mode", "sable", doc, "-o", "{out}"])


def _post_prosody(x: np.ndarray, sr: int, p: Prosody, pitch: bool, rate: bool) -> np.ndarray:
    """Pitch / tempo applied after synthesis for voices whose engine ignores them (signalsmith stretch)."""
    from audiomentations import PitchShift, TimeStretch

    if pitch and abs(p.pitch_pct) > 0.5:
        st = 12 * np.log2(max(0.2, 1 + p.pitch_pct / 100))
        x = PitchShift(min_semitones=st, max_semitones=st, p=1.0)(x, sample_rate=sr)
    if rate and abs(p.rate_pct - 100) > 0.5:
        r = p.rate_pct / 100
        x = TimeStretch(min_rate=r, max_rate=r, leave_length_unchanged=False, p=1.0)(x, sample_rate=sr)
    return x.astype(np.float32, copy=False)


PAUSE_MIN_MS = 120  # a fitted pause is not shortened below this (still a pause: > ~100 ms)


# Every utterance is brought to one speech level before the emotion's loudness is applied: the engines
# and voices differ by up to 4x in raw level (measured RMS 0.037 flite kal16 .. 0.149 flite slt), which
# would otherwise say more about the voice than about the emotion.
REF_RMS = 0.07


def speech_level(x: np.ndarray, sr: int = AUDIO_SAMPLE_RATE) -> float:
    """RMS over the louder half of 20 ms frames (the speech, not the gaps)."""
    n = max(1, int(0.02 * sr))
    k = len(x) // n
    if k == 0:
        return float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0
    fr = np.sqrt(np.mean(x[: k * n].reshape(k, n) ** 2, axis=1))
    top = np.sort(fr)[k // 2:]
    return float(np.sqrt(np.mean(top ** 2)))


def espeak_calibrated(p: Prosody) -> Prosody:
    """espeak-ng realises only part of an SSML pitch change: measured median F0 change (3 voices, range 100 %)
    for nominal -10/-30/-50 %: -4/-11/-17 %, and it saturates near -15..-27 % below that; for +10/+30/+60 %:
    +5/+16/+36 %. So the nominal pitch is sent as 1.7x (up) / 2x capped at -50 % (down), which makes an
    espeak-ng voice's pitch change close to the other engines' (flite/festival follow the nominal value)."""
    pitch = p.pitch_pct * 1.7 if p.pitch_pct > 0 else max(-50.0, p.pitch_pct * 2)
    return Prosody(pitch, p.range_pct, p.rate_pct, p.volume_pct, p.pauses, p.pause_ms)


def _render(text: str, p: Prosody, voice: str, rng: np.random.Generator | None, sample_rate: int) -> np.ndarray:
    engine, name = split_voice(voice)
    words = text.split()
    breaks = _break_positions(words, p, rng)
    if engine == "espeak":
        pcm, rate = _run_espeak(ssml(text, espeak_calibrated(p), volume=False, breaks=breaks), name)
        x = resample(pcm, rate, sample_rate)
    elif engine == "flite":
        # flite speaks plain text: pauses are silences between separately spoken chunks
        cuts = [0] + sorted(breaks) + [len(words)]
        pieces = []
        for j, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
            pcm, rate = _run_flite(" ".join(words[a:b]), name, p)
            seg = trim_silence(resample(pcm, rate, sample_rate))
            if j:
                pieces.append(np.zeros(int(p.pause_ms / 1000 * sample_rate), np.float32))
            pieces.append(seg)
        x = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        if name in FLITE_POST_PITCH:
            x = _post_prosody(x, sample_rate, p, pitch=True, rate=False)
    else:
        pcm, rate = _run_festival(text, name, p, breaks)
        x = resample(pcm, rate, sample_rate)
        if name in FESTIVAL_POST:
            x = _post_prosody(x, sample_rate, p, pitch=True, rate=True)
    x = trim_silence(x)
    level = speech_level(x, sample_rate)
    if level > 1e-5:
        x = x * (REF_RMS / level * p.volume_pct / 100)
    return x.astype(np.float32, copy=False)


def controls(voice: str) -> dict[str, bool]:
    """Which prosody settings the voice's audio really carries (the descriptions name only these)."""
    engine, name = split_voice(voice)
    range_ok = not ((engine == "flite" and name in FLITE_POST_PITCH) or (engine == "festival" and name in FESTIVAL_POST))
    return {"pitch": True, "range": range_ok, "rate": True, "volume": True, "pauses": True}


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


def synthesize(text: str, prosody: Prosody, voice: str = "espeak:en-us+m3", rng: np.random.Generator | None = None,
               max_seconds: float | None = None, sample_rate: int = AUDIO_SAMPLE_RATE,
               return_prosody: bool = False):
    """Speak `text` with `prosody` in `voice` ("engine:name"); float32 mono at `sample_rate`, end silences
    trimmed, speech level normalised to REF_RMS x volume.

    With max_seconds, a too-long utterance first gets shorter pauses (down to PAUSE_MIN_MS), then is re-spoken
    faster (festival: time-stretched), and finally cut with a fade.
    return_prosody=True also returns the prosody finally spoken (its rate is the faster one after a re-speak).
    """
    pause_rng_state = None if rng is None else rng.bit_generator.state
    p = prosody
    audio = np.zeros(0, np.float32)
    for _ in range(4):
        if pause_rng_state is not None:
            rng.bit_generator.state = pause_rng_state  # same pause positions on every retry
        audio = _render(text, p, voice, rng, sample_rate)
        if max_seconds is None or len(audio) <= max_seconds * sample_rate:
            return (audio, p) if return_prosody else audio
        excess = len(audio) - max_seconds * sample_rate
        festival = split_voice(voice)[0] == "festival"
        length = len(audio)
        if not festival and p.pauses and p.pause_ms > PAUSE_MIN_MS:
            # shorten the pauses before speeding the words up: a slow rate is sadness's strongest cue
            cut = min(p.pause_ms - PAUSE_MIN_MS, int(np.ceil(excess / sample_rate * 1000 / p.pauses)) + 20)
            p = Prosody(p.pitch_pct, p.range_pct, p.rate_pct, p.volume_pct, p.pauses, p.pause_ms - cut)
            removed = cut * p.pauses / 1000 * sample_rate
            if removed >= excess:
                continue
            length -= removed
        factor = length / (max_seconds * sample_rate) * 1.05
        p = Prosody(p.pitch_pct, p.range_pct, p.rate_pct * factor, p.volume_pct, p.pauses, p.pause_ms)
        if festival:
            # festival costs 0.3-0.6 s per call (measured; espeak-ng/flite ~20 ms): speed the audio up instead
            # of speaking it again (pitch kept by the time stretch)
            audio = _post_prosody(audio, sample_rate, Prosody(0, 100, 100 * factor, 100), pitch=False, rate=True)
            if len(audio) <= max_seconds * sample_rate:
                return (audio, p) if return_prosody else audio
    n = int(max_seconds * sample_rate)
    audio = audio[:n].copy()
    fade = min(len(audio), int(0.05 * sample_rate))
    audio[len(audio) - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return (audio, p) if return_prosody else audio


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


def effective_prosody(p: Prosody, semitones: float = 0.0, tempo: float = 1.0) -> Prosody:
    """The prosody the listener hears after a pitch shift (semitones) and a time stretch (tempo) of the audio."""
    pitch = ((1 + p.pitch_pct / 100) * 2 ** (semitones / 12) - 1) * 100
    return Prosody(pitch, p.range_pct, p.rate_pct * tempo, p.volume_pct, p.pauses, p.pause_ms)


def voice_cues(p: Prosody, carries: dict[str, bool] | None = None) -> dict[str, str]:
    """The vocal cues as words (the values of describe.VOICE_PHRASES), from the prosody actually heard.

    Thresholds (percent of the voice's normal) are the ones of describe_voice. A dimension the voice does not
    carry (controls(voice)) is left out, and "pauses" only appears when there are pauses.
    """
    carries = carries or {}
    out = {}
    if carries.get("pitch", True):
        out["pitch"] = ("very high" if p.pitch_pct >= 35 else "high" if p.pitch_pct >= 12 else
                        "low" if p.pitch_pct <= -12 else "ordinary")
    if carries.get("range", True):
        out["intonation"] = ("wide" if p.range_pct >= 190 else "lively" if p.range_pct >= 135 else
                             "flat" if p.range_pct <= 60 else "narrow" if p.range_pct <= 80 else "even")
    if carries.get("rate", True):
        out["rate"] = "fast" if p.rate_pct >= 110 else "slow" if p.rate_pct <= 85 else "normal"
    if carries.get("volume", True):
        out["loudness"] = ("loud" if p.volume_pct >= 150 else "fairly loud" if p.volume_pct >= 118 else
                           "quiet" if p.volume_pct <= 75 else "normal")
    if carries.get("pauses", True) and p.pauses:
        out["pauses"] = "several" if p.pauses > 1 else "one"
    return out
