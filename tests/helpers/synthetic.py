"""A synthetic camera + microphone sequence cut into overlapping windows, for benchmarks and parity tests.

Frames: a drifting coloured gradient with a moving bright disc ("face") at ``fps``, so consecutive frames
differ; audio: a voiced-speech-like signal (harmonics of a gliding pitch, syllable-rate amplitude
envelope, a little noise). Windows are cut exactly like emotion_ros.ingest.windowing does for fixed windows:
``num_frames`` instants S + (i + 1/2)(E - S)/num_frames take the nearest frame (its stamp goes into
frame_stamps_ns) and the global frame is the frame nearest the midpoint.
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


def overlapping_windows(frames, stamps, audio, window_s: float = 2.0, hop_s: float = 0.5, num_frames: int = 16,
                        sample_rate: int = 16_000, transcripts: list[str | None] | None = None) -> list[Window]:
    """All complete windows [S, S + window_s) every hop_s over the sequence."""
    total_ns = int(len(audio) / sample_rate * NS)
    win, hop = int(window_s * NS), int(hop_s * NS)
    out = []
    k = 0
    for start in range(0, total_ns - win + 1, hop):
        end = start + win
        inside = np.nonzero((stamps >= start) & (stamps < end))[0]
        instants = start + ((2 * np.arange(num_frames, dtype=np.int64) + 1) * win) // (2 * num_frames)
        ts = stamps[inside]
        pick = inside[np.abs(ts[None, :] - instants[:, None]).argmin(1)]
        g = inside[np.abs(ts - (start + win // 2)).argmin()]
        a0 = int(round(start / NS * sample_rate))
        text = transcripts[k % len(transcripts)] if transcripts else None
        out.append(Window(start_ns=start, end_ns=end, frames=frames[pick], frame_stamps_ns=stamps[pick].copy(),
                          global_frame=frames[g].copy(), audio=audio[a0:a0 + int(window_s * sample_rate)].copy(),
                          transcript=text, index=k))
        k += 1
    return out
