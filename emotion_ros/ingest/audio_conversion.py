"""AudioChunk fields -> float32 mono 16 kHz in [-1, 1] (what the audio encoder and the VAD consume).

The project's `emotion_ros/AudioChunk` carries sample_rate, channels, sample_format ("S16LE" | "F32LE",
interleaved little-endian) and data. `chunk_to_mono` validates every field and raises `InputError`:

  audio_unknown_format, audio_bad_channels (not 1..8), audio_bad_sample_rate (not 8000..192000 or not an
  integer), audio_empty, audio_odd_byte_count (len(data) not a multiple of channels*bytes_per_sample),
  audio_chunk_too_long (more than max_chunk_s seconds in one message), audio_non_finite (NaN/Inf in F32LE),
  audio_bad_data_type, audio_bad_array (publisher side).
Clipping is not an error: samples at/over full scale are counted and returned as `clipped` (F32 values
outside [-1, 1] are clipped to it), so the node can report it on /diagnostics.

Channels are mixed down by their mean. Other rates are resampled to 16 kHz with scipy's polyphase
`resample_poly` (Kaiser-windowed FIR; odd rates with a large reduced ratio use the FFT resampler). Each chunk is resampled on its own, which leaves a small transient
at chunk edges; publish 16 kHz where you can (the microphone node does).

audio_common (the standard ROS 2 audio driver, github ros-drivers/audio_common, `audio_capture`):
`audio_common_msgs/AudioDataStamped` = header + `audio.data` (uint8[]) carries NO rate or layout; those
come from `audio_common_msgs/AudioInfo` (channels, sample_rate, sample_format e.g. "S16LE", bitrate,
coding_format "wave" | "mp3") on its own topic (`audio_info`, transient-local, depth 1, re-sent every 5 s
by audio_capture). `AudioInfoTracker` keeps the newest AudioInfo and turns each AudioDataStamped payload
into the AudioChunk fields that `chunk_to_mono` takes:
    AudioInfo.sample_rate -> sample_rate, AudioInfo.channels -> channels,
    AudioInfo.sample_format -> sample_format, AudioDataStamped.audio.data -> data,
    AudioDataStamped.header.stamp -> stamp (audio_capture stamps the buffer's first sample, as AudioChunk does).
Until an AudioInfo is seen the tracker uses its fallback format (the node's `audio_info_fallback`
parameters; counted as the event `audio_info_assumed` per chunk), or, without a fallback, drops the chunk
(`audio_no_info`). Only raw PCM can be used: coding_format other than "wave"/"" is dropped as
`audio_coding_unsupported` (audio_capture's default is mp3: run it with `format:=wave`).
"""
from __future__ import annotations

from math import gcd
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from emotion_ros.ingest.errors import InputError, byte_view
from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE

MIN_RATE = 8_000
MAX_RATE = 192_000
MAX_CHANNELS = 8
DEFAULT_MAX_CHUNK_S = 30.0

_FORMATS = {"S16LE": (2, np.dtype("<i2")), "F32LE": (4, np.dtype("<f4"))}


class MonoAudio(NamedTuple):
    """Result of `chunk_to_mono`: samples float32 mono at 16 kHz in [-1, 1]; clipped = number of input
    samples at or beyond full scale (0 when clean; truthy as a flag)."""

    samples: np.ndarray
    clipped: int


def _int_field(value, reason: str, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(reason, f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


# Largest polyphase up/down factor used; beyond it the FIR would have millions of taps (an odd rate
# such as 191999 Hz gives 16000/191999), which a hostile or miscalibrated publisher could use to stall
# the node, so such rates go through the FFT resampler instead (O(n log n), fine for a chunk).
MAX_POLY_FACTOR = 1000


def resample_to_16k(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample a float mono signal to 16 kHz (identity at 16 kHz).

    Common rates (8k, 11.025k, 22.05k, 32k, 44.1k, 48k, 96k, 192k ...) use scipy's polyphase
    resample_poly; unusual rates whose reduced ratio is large use scipy.signal.resample (FFT).
    """
    if sample_rate == AUDIO_SAMPLE_RATE:
        return x
    from scipy.signal import resample, resample_poly

    g = gcd(int(sample_rate), AUDIO_SAMPLE_RATE)
    up, down = AUDIO_SAMPLE_RATE // g, int(sample_rate) // g
    if max(up, down) <= MAX_POLY_FACTOR:
        y = resample_poly(x, up, down)
    else:
        n_out = max(1, int(round(len(x) * AUDIO_SAMPLE_RATE / sample_rate)))
        y = resample(x, n_out)
    return np.asarray(y, dtype=np.float32)


def warm_up() -> None:
    """Import scipy.signal now (about 3.5 s on these machines) instead of inside the first non-16 kHz
    chunk's callback; the node calls this when it is configured."""
    import scipy.signal  # noqa: F401


def chunk_to_mono(sample_rate, channels, sample_format, data, *, max_chunk_s: float = DEFAULT_MAX_CHUNK_S) -> MonoAudio:
    """Validate and convert one audio chunk to float32 mono 16 kHz in [-1, 1] (a new array)."""
    if not isinstance(sample_format, str) or sample_format.strip().upper() not in _FORMATS:
        shown = repr(sample_format)[:40]
        raise InputError("audio_unknown_format", f"sample_format {shown} is not one of {sorted(_FORMATS)}")
    bps, dtype = _FORMATS[sample_format.strip().upper()]
    ch = _int_field(channels, "audio_bad_channels", "channels")
    if not 1 <= ch <= MAX_CHANNELS:
        raise InputError("audio_bad_channels", f"channels={ch}, expected 1..{MAX_CHANNELS}")
    rate = _int_field(sample_rate, "audio_bad_sample_rate", "sample_rate")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError("audio_bad_sample_rate", f"sample_rate={rate}, expected {MIN_RATE}..{MAX_RATE}")
    buf = byte_view(data, "audio_bad_data_type")
    n = buf.nbytes
    if n == 0:
        raise InputError("audio_empty", "audio chunk has no data")
    frame = ch * bps
    if n % frame:
        raise InputError("audio_odd_byte_count",
                         f"{n} bytes is not a multiple of channels*bytes_per_sample = {ch}*{bps}")
    frames = n // frame
    if frames > max_chunk_s * rate:
        raise InputError("audio_chunk_too_long", f"{frames / rate:.1f} s in one chunk > cap {max_chunk_s} s")

    raw = np.frombuffer(buf, dtype=dtype, count=frames * ch)
    if dtype.kind == "i":
        clipped = int(np.count_nonzero((raw <= -32768) | (raw >= 32767)))
        x = raw.astype(np.float32) * np.float32(1.0 / 32768.0)
    else:
        x = raw.astype(np.float32)
        if not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise InputError("audio_non_finite", f"{bad} NaN/Inf samples in F32LE chunk")
        over = np.abs(x) >= 1.0
        clipped = int(np.count_nonzero(over))
        if clipped:
            np.clip(x, -1.0, 1.0, out=x)
    if ch > 1:
        x = x.reshape(frames, ch).mean(axis=1, dtype=np.float32)
    x = resample_to_16k(x, rate)
    # resampling can ring slightly past full scale
    np.clip(x, -1.0, 1.0, out=x)
    return MonoAudio(np.ascontiguousarray(x, dtype=np.float32), clipped)


def mono_to_chunk_bytes(samples, fmt: str = "S16LE", channels: int = 1) -> bytes:
    """Float mono samples in [-1, 1] -> interleaved AudioChunk.data (the same sample copied to each channel).

    S16LE uses round(x * 32768) clipped to int16, the exact inverse of chunk_to_mono's x / 32768.
    """
    if not isinstance(fmt, str) or fmt.strip().upper() not in _FORMATS:
        raise InputError("audio_unknown_format", f"sample_format {fmt!r} is not one of {sorted(_FORMATS)}")
    x = np.asarray(samples)
    if x.ndim != 1 or x.dtype.kind not in "fiu":
        raise InputError("audio_bad_array", f"expected 1-D numeric samples, got {x.shape} {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise InputError("audio_non_finite", "samples contain NaN/Inf")
    if channels > 1:
        x = np.repeat(x, int(channels))
    if fmt.strip().upper() == "S16LE":
        return np.clip(np.rint(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return x.astype("<f4").tobytes()


RAW_CODINGS = ("wave", "wav", "pcm", "")


@dataclass(frozen=True)
class AudioFormat:
    """The layout of a raw audio stream: what AudioInfo says, or what is assumed without one."""

    sample_rate: int = AUDIO_SAMPLE_RATE
    channels: int = 1
    sample_format: str = "S16LE"
    coding_format: str = "wave"


class AudioInfoTracker:
    """The newest audio_common AudioInfo of a stream, applied to its AudioDataStamped payloads.

    fallback: the format assumed before any AudioInfo arrives (None = drop such chunks as `audio_no_info`).
    counter: a DropCounter for the `audio_info_assumed` / `audio_info_changed` events (optional).
    """

    def __init__(self, fallback: AudioFormat | None = AudioFormat(), counter=None):
        self.fallback = fallback
        self.counter = counter
        self.info: AudioFormat | None = None
        self.infos_seen = 0

    def update(self, channels, sample_rate, sample_format, coding_format="wave") -> AudioFormat:
        """Take one AudioInfo message's fields (validated when the chunks are converted)."""
        fmt = AudioFormat(int(sample_rate), int(channels), str(sample_format), str(coding_format))
        if self.info is not None and fmt != self.info and self.counter is not None:
            self.counter.event("audio_info_changed")
        self.info = fmt
        self.infos_seen += 1
        return fmt

    def current(self) -> AudioFormat:
        """The format to apply now; raises InputError when neither an AudioInfo nor a fallback exists."""
        if self.info is not None:
            fmt = self.info
        elif self.fallback is not None:
            fmt = self.fallback
            if self.counter is not None:
                self.counter.event("audio_info_assumed")
        else:
            raise InputError("audio_no_info", "no audio_common AudioInfo received yet and no fallback format set")
        if fmt.coding_format.strip().lower() not in RAW_CODINGS:
            raise InputError("audio_coding_unsupported",
                             f"coding_format {fmt.coding_format!r} is not raw PCM (wave); run the driver with format wave")
        return fmt

    def chunk_fields(self, data) -> tuple[int, int, str, object]:
        """(sample_rate, channels, sample_format, data) of one AudioDataStamped payload, for chunk_to_mono."""
        fmt = self.current()
        return fmt.sample_rate, fmt.channels, fmt.sample_format, data
