"""A synthetic camera + microphone sequence cut into overlapping windows, for benchmarks and parity tests.

Frames: a drifting coloured gradient with a moving bright disc ("face") at ``fps``, so consecutive frames
differ; audio: a voiced-speech-like signal (harmonics of a gliding pitch, syllable-rate amplitude
envelope, a little noise). Windows are cut by the real emotion_ros.ingest.windowing.Windower, fed the way
the node feeds it.
"""
from __future__ import annotations

import numpy as np

from emotion_ros.ingest.window import Window

NS = 1_000_000_000


def synthetic_sequence(seconds: float = 12.0, fps: float = 15.0, height: int = 480, width: int = 640,
                       sample_rate: int = 16_000, seed: int = 0):
    """(frames [N,H,W,3] uint8, frame stamps [N] int64 ns, audio float32 [seconds*sr])."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    stamps = (np.arange(n) * (NS / fps)).astype(np.int64)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        t = i / fps
        cx = width * (0.5 + 0.3 * np.sin(0.7 * t))
        cy = height * (0.5 + 0.2 * np.cos(0.5 * t))
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < (0.12 * min(height, width)) ** 2
        base = np.stack([(xx / width * 200 + 20 * t) % 255, (yy / height * 200) % 255,
                         np.full_like(xx, (128 + 60 * np.sin(t)) % 255)], -1)
        base[disc] = (240, 200, 160)
        frames[i] = base.astype(np.uint8)
    ts = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.3 * ts)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * ts), 0, None) ** 0.5
    audio = (0.2 * voice * envelope + 0.01 * rng.standard_normal(ts.size)).astype(np.float32)
    return frames, stamps, audio


def windows_from_windower(frames, stamps, audio, window_s: float = 2.0, hop_s: float = 0.5,
                          sample_rate: int = 16_000, chunk_s: float = 0.1,
                          transcripts: list[str | None] | None = None, t0_ns: int = 1_000 * NS) -> list[Window]:
    """The sequence pushed into the REAL Windower as a live node receives it (frames with their stamps,
    audio in ``chunk_s`` chunks, in time order) and every window it cuts (flushed at the end). Transcript k
    (cycled) is pushed at the start of the k-th hop, so windows carry different texts."""
    from emotion_ros.ingest.windowing import Windower, WindowingConfig

    win = Windower(WindowingConfig(window_s=window_s, hop_s=hop_s))
    chunk = int(chunk_s * sample_rate)
    events = [(t0_ns + int(s), 0, i) for i, s in enumerate(stamps)]
    events += [(t0_ns + int(j * NS // sample_rate), 1, j) for j in range(0, len(audio), chunk)]
    hop_ns = int(hop_s * NS)
    if transcripts:
        n_hops = int(len(audio) / sample_rate / hop_s)
        events += [(t0_ns + k * hop_ns, 2, k) for k in range(n_hops) if transcripts[k % len(transcripts)]]
    out = []
    for stamp, kind, i in sorted(events):
        if kind == 0:
            win.push_frame(stamp, frames[i])
        elif kind == 1:
            win.push_audio(stamp, audio[i:i + chunk])
        else:
            win.push_transcript(stamp, transcripts[i % len(transcripts)])
        out += win.poll()
    return out + win.flush()
