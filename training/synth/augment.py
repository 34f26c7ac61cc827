"""Per-clip audio augmentation: speaker-level variation and recording channels, with `audiomentations`.

Two stages, both drawn from the clip's own random generator (so a clip depends only on (seed, index)):

* speaker stage, on the synthesised utterance before it is placed in the window:
  - pitch shift, uniform in +-PITCH_SEMITONES (0.75 semitone). Why that small: the emotion settings of
    speech.EMOTION_PROSODY move the pitch from neutral by +10 % (angry) .. +45 % (surprise) and -25 % (sad),
    i.e. +1.65 .. +6.4 / -5.0 semitones at full intensity and +0.9 .. +3.5 / -2.5 semitones at the lowest
    intensity (0.55). Measured at intensity 0.55 without jitter (tests/test_synth.py's F0 tracker, after the
    espeak-ng pitch calibration of speech.py): espeak-ng en-us+m3 neutral 102 Hz, sad 94 (-1.4 st), angry
    110 (+1.3 st), worried 119, happy 120 (+2.8 st), surprise 132 Hz; flite slt neutral 165, sad 144 (-2.4 st),
    angry 174 (+0.9 st), happy 193 Hz. A 0.75-st shift stays below every one of these differences, and the
    worst case (happy shifted down, sad up, both at the tempo extremes: test_synth) keeps happy > 1.1x sad
    in F0. Speaker pitch itself varies over more than an octave across the voices (neutral medians
    ~90 .. 203 Hz), which is the speaker variation the model has to see past.
  - tempo (time stretch without pitch change), uniform in TEMPO_RANGE (0.93 .. 1.07). Sad is spoken at
    75 % and angry at 120 % of normal rate (86 % / 111 % at the lowest intensity), so +-7 % keeps
    slow and fast apart. The vocal cues the manifest records are computed from the stretched rate.
* channel stage, on the whole 2 s window (speech + silence):
  - room reverb: convolution with a generated exponential-decay impulse response (RT60 0.15 .. 0.6 s,
    a direct-path impulse plus decaying noise; wet/dry 0.15 .. 0.5) — no impulse-response files needed;
  - coloured noise (white / pink / brown) at an SNR drawn from SNR_DB (8 .. 35 dB);
  - telephone band (high-pass 250 .. 400 Hz + low-pass 3.0 .. 3.6 kHz) or a plain low-pass (4 .. 7 kHz);
  - MP3 round trip through FFmpeg's libmp3lame (PyAV, 32 .. 96 kbit/s), realigned by its measured delay
    (audiomentations' own Mp3Compression needs fast-mp3-augment, lameenc or pydub, none of which the
    project installs; PyAV is already a core dependency);
  - a 16 -> 48 -> 16 kHz resampling chain with a randomly chosen soxr quality (a 48 kHz microphone
    resampled to the model's rate);
  - hard clipping at a random percentile (1 .. 6 %) of the sample magnitudes (an overdriven input).

Each step fires with its own probability (PROBS). The chain actually applied, with its parameters, is
returned as a list of dicts and stored in the manifest record (meta["augment"]).
"""
from __future__ import annotations

import random

import numpy as np

PITCH_SEMITONES = 0.75
TEMPO_RANGE = (0.93, 1.07)
SNR_DB = (8.0, 35.0)
NOISE_DECAY = {"white": 0.0, "pink": -3.01, "brown": -6.02}  # dB per octave (audiomentations' f_decay)
PROBS = {"pitch_shift": 0.7, "tempo": 0.5, "reverb": 0.4, "noise": 0.8, "telephone": 0.1, "lowpass": 0.15,
         "mp3": 0.15, "resample_48k": 0.3, "clip": 0.06}
SOXR_QUALITIES = ("LQ", "MQ", "HQ", "VHQ")


def sample_chain(rng: np.random.Generator) -> list[dict]:
    """The augmentation steps for one clip, in the order they are applied (speaker steps first)."""
    # draw every random number for every step, so adding/removing one step's probability
    # does not shift the others' values
    u = {k: rng.random() for k in PROBS}
    chain: list[dict] = []
    st = float(rng.uniform(-PITCH_SEMITONES, PITCH_SEMITONES))
    tempo = float(rng.uniform(*TEMPO_RANGE))
    rt60, wet = float(rng.uniform(0.15, 0.6)), float(rng.uniform(0.15, 0.5))
    color = list(NOISE_DECAY)[int(rng.integers(len(NOISE_DECAY)))]
    snr = float(rng.uniform(*SNR_DB))
    hp, lp = float(rng.uniform(250, 400)), float(rng.uniform(3000, 3600))
    lp2 = float(rng.uniform(4000, 7000))
    kbps = int(rng.choice([32, 48, 64, 96]))
    q = SOXR_QUALITIES[int(rng.integers(len(SOXR_QUALITIES)))]
    pct = float(rng.uniform(1, 6))
    seed = int(rng.integers(2 ** 31))
    if u["pitch_shift"] < PROBS["pitch_shift"]:
        chain.append({"step": "pitch_shift", "stage": "speaker", "semitones": round(st, 3)})
    if u["tempo"] < PROBS["tempo"]:
        chain.append({"step": "tempo", "stage": "speaker", "rate": round(tempo, 3)})
    if u["reverb"] < PROBS["reverb"]:
        chain.append({"step": "reverb", "stage": "channel", "rt60_s": round(rt60, 3), "wet": round(wet, 3),
                      "seed": seed})
    if u["noise"] < PROBS["noise"]:
        chain.append({"step": "noise", "stage": "channel", "color": color, "snr_db": round(snr, 2), "seed": seed})
    if u["telephone"] < PROBS["telephone"]:
        chain.append({"step": "telephone", "stage": "channel", "highpass_hz": round(hp), "lowpass_hz": round(lp)})
    elif u["lowpass"] < PROBS["lowpass"]:
        chain.append({"step": "lowpass", "stage": "channel", "cutoff_hz": round(lp2)})
    if u["mp3"] < PROBS["mp3"]:
        chain.append({"step": "mp3", "stage": "channel", "kbps": kbps})
    if u["resample_48k"] < PROBS["resample_48k"]:
        chain.append({"step": "resample_48k", "stage": "channel", "quality": q})
    if u["clip"] < PROBS["clip"]:
        chain.append({"step": "clip", "stage": "channel", "percentile": round(pct, 2)})
    return chain


def tempo_factor(chain: list[dict]) -> float:
    return float(np.prod([s["rate"] for s in chain if s["step"] == "tempo"])) if chain else 1.0


def pitch_semitones(chain: list[dict]) -> float:
    return float(sum(s["semitones"] for s in chain if s["step"] == "pitch_shift")) if chain else 0.0


def _seed_globals(seed: int) -> None:
    # audiomentations draws from Python's `random` and numpy's global generator: pin both per step
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))


def apply(x: np.ndarray, chain: list[dict], sr: int, stage: str) -> np.ndarray:
    """Apply the chain's steps of `stage` ("speaker" or "channel") to mono float32 audio."""
    import audiomentations as A

    y = np.ascontiguousarray(x, dtype=np.float32)
    if y.size == 0:
        return y
    for s in chain:
        if s["stage"] != stage:
            continue
        name = s["step"]
        _seed_globals(int(s.get("seed", 0)))
        if name == "pitch_shift":
            st = s["semitones"]
            y = A.PitchShift(min_semitones=st, max_semitones=st, p=1.0)(y, sample_rate=sr)
        elif name == "tempo":
            r = s["rate"]
            y = A.TimeStretch(min_rate=r, max_rate=r, leave_length_unchanged=False, p=1.0)(y, sample_rate=sr)
        elif name == "reverb":
            y = _reverb(y, sr, s["rt60_s"], s["wet"], np.random.default_rng(s["seed"]))
        elif name == "noise":
            d = NOISE_DECAY[s["color"]]
            y = A.AddColorNoise(min_snr_db=s["snr_db"], max_snr_db=s["snr_db"], min_f_decay=d, max_f_decay=d,
                                p=1.0)(y, sample_rate=sr)
        elif name == "telephone":
            y = A.HighPassFilter(min_cutoff_freq=s["highpass_hz"], max_cutoff_freq=s["highpass_hz"], p=1.0)(y, sample_rate=sr)
            y = A.LowPassFilter(min_cutoff_freq=s["lowpass_hz"], max_cutoff_freq=s["lowpass_hz"], p=1.0)(y, sample_rate=sr)
        elif name == "lowpass":
            y = A.LowPassFilter(min_cutoff_freq=s["cutoff_hz"], max_cutoff_freq=s["cutoff_hz"], p=1.0)(y, sample_rate=sr)
        elif name == "mp3":
            y = mp3_roundtrip(y, sr, s["kbps"])
        elif name == "resample_48k":
            import soxr

            up = soxr.resample(y, sr, 48000, quality=s["quality"])
            y = soxr.resample(up, 48000, sr, quality=s["quality"])[: len(y)]
        elif name == "clip":
            thr = float(np.percentile(np.abs(y), 100 - s["percentile"]))
            if thr > 0:
                y = np.clip(y, -thr, thr)
        else:
            raise ValueError(f"unknown augmentation step {name!r}")
        y = np.ascontiguousarray(y, dtype=np.float32)
    return y


def make_rir(sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: a direct impulse, then noise decaying 60 dB over rt60."""
    n = max(2, int(rt60 * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)  # ln(1000) = 6.91 -> -60 dB at rt60
    tail[: int(0.003 * sr)] = 0  # first reflections arrive after a few ms
    tail /= np.sqrt(np.sum(tail ** 2)) + 1e-12
    return tail.astype(np.float32)


def _reverb(x: np.ndarray, sr: int, rt60: float, wet: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import fftconvolve

    rir = make_rir(sr, rt60, rng)
    rev = fftconvolve(x, rir)[: len(x)].astype(np.float32)
    # keep the overall level: mix direct and reverberant parts at equal energy weights
    rx = np.sqrt(np.mean(x ** 2)) + 1e-12
    rr = np.sqrt(np.mean(rev ** 2)) + 1e-12
    return ((1 - wet) * x + wet * rev * (rx / rr)).astype(np.float32)


def mp3_roundtrip(x: np.ndarray, sr: int, kbps: int) -> np.ndarray:
    """Encode to MP3 (libmp3lame via PyAV) and decode back, same length, encoder delay removed."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        st = out.add_stream("libmp3lame", rate=sr, layout="mono")
        st.bit_rate = kbps * 1000
        frame = av.AudioFrame.from_ndarray(x[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = sr
        frame.pts = 0
        for f in (frame,):
            for pkt in st.encode(f):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    buf.seek(0)
    parts = []
    with av.open(buf, "r") as inp:
        for f in inp.decode(audio=0):
            a = f.to_ndarray()
            parts.append(a.reshape(-1) if a.ndim == 1 or a.shape[0] == 1 else a.mean(axis=0))
    y = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    # realign: the delay that best matches the original (encoder + decoder padding, ~1100-2300 samples)
    lag = _best_lag(x, y, max_lag=4000)
    y = y[lag: lag + len(x)]
    if len(y) < len(x):
        y = np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
    return y


def _best_lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    from scipy.signal import fftconvolve

    m = min(len(x), max(0, len(y) - max_lag))
    if m <= 0:
        return 0
    seg = x[:m]
    c = fftconvolve(y[: m + max_lag], seg[::-1], mode="valid")
    return int(np.argmax(c[: max_lag + 1]))


def describe_chain(chain: list[dict]) -> str:
    """A short human-readable summary, e.g. 'pitch -0.4 st, noise pink 18 dB, mp3 48 kbit/s'."""
    out = []
    for s in chain:
        n = s["step"]
        if n == "pitch_shift":
            out.append(f"pitch {s['semitones']:+.1f} st")
        elif n == "tempo":
            out.append(f"tempo x{s['rate']:.2f}")
        elif n == "reverb":
            out.append(f"reverb RT60 {s['rt60_s']:.2f} s")
        elif n == "noise":
            out.append(f"{s['color']} noise {s['snr_db']:.0f} dB SNR")
        elif n == "telephone":
            out.append("telephone band")
        elif n == "lowpass":
            out.append(f"low-pass {s['cutoff_hz']} Hz")
        elif n == "mp3":
            out.append(f"mp3 {s['kbps']} kbit/s")
        elif n == "resample_48k":
            out.append(f"48 kHz resampling ({s['quality']})")
        elif n == "clip":
            out.append("clipping")
    return ", ".join(out) or "clean"
