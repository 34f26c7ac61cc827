"""Make annotated bags: from MMEVerse-format clips (video + audio + subtitle) or synthetic sessions.

A clip becomes camera frames (sensor_msgs/Image rgb8), 100 ms audio chunks (AudioChunk S16LE 16 kHz
mono) and its subtitle on /transcript as an emotion_ros/Transcript spanning the whole clip (header.stamp =
clip start, end = clip end, language from the record when it has one), so every window that overlaps the
clip gets the subtitle and no window outside it does (transcripts="string" writes a std_msgs/String at
the clip start instead, for a live node left at transcript_type=string). Publish time = media time (bag
time = header stamps). Synthetic sessions keep std_msgs/String transcripts at each segment's start.
Several clips are laid back to back in one bag, or one bag per clip;
their labels go to `<bag>/annotations.json` (emotion_ros.bags.annotations format), so any dataset clip can
be replayed through the node and scored. Video/audio are decoded by emotion_ros.ingest.media (PyAV), the
decoder training uses too, so a clip in a bag holds the same samples as the clip in training.
"""
from __future__ import annotations

import colorsys
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from emotion_ros.bags.annotations import Annotations, Segment, from_clip_record, merge
from emotion_ros.bags.bag_io import BagWriter
from emotion_ros.ingest.image_conversion import rgb_to_compressed
from emotion_ros.ingest.media import MediaError, decode_audio, iter_video_frames
from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE
from emotion_ros.bags.typestore import (AUDIO_CHUNK, COMPRESSED_IMAGE, IMAGE, STRING, TIME, TRANSCRIPT, header_msg,
                                        project_typestore)
from emotion_ros.ingest.stamps import NS, ns_to_time

DEFAULT_T0_NS = 1_700_000_000 * NS  # a fixed, plausible epoch time: generated bags are reproducible


@dataclass
class BagTopics:
    image: str = "/camera/image_raw"
    audio: str = "/audio"
    transcript: str = "/transcript"
    frame_id: str = "camera"
    compressed_image: str = "/camera/image_raw/compressed"
    jpeg_quality: int = 0  # > 0: frames go to `compressed_image` as JPEG (10-20x smaller bags)


class _Messages:
    """Collects (t_ns, order, topic, msgtype, msg) and writes them sorted by time (ties keep order)."""

    def __init__(self, topics: BagTopics):
        self.store = project_typestore()
        self.topics = topics
        self.items: list[tuple[int, int, str, str, object]] = []

    def _add(self, t_ns, topic, msgtype, msg):
        self.items.append((int(t_ns), len(self.items), topic, msgtype, msg))

    def image(self, t_ns: int, rgb: np.ndarray) -> None:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        if self.topics.jpeg_quality > 0:
            fmt, data = rgb_to_compressed(rgb, "jpeg", quality=self.topics.jpeg_quality)
            msg = self.store.types[COMPRESSED_IMAGE](
                header=header_msg(self.store, t_ns, self.topics.frame_id), format=fmt,
                data=np.frombuffer(data, dtype=np.uint8))
            self._add(t_ns, self.topics.compressed_image, COMPRESSED_IMAGE, msg)
            return
        h, w = rgb.shape[:2]
        msg = self.store.types[IMAGE](
            header=header_msg(self.store, t_ns, self.topics.frame_id), height=h, width=w, encoding="rgb8",
            is_bigendian=0, step=w * 3, data=rgb.reshape(-1))
        self._add(t_ns, self.topics.image, IMAGE, msg)

    def audio(self, t_ns: int, samples: np.ndarray, chunk_s: float = 0.1) -> None:
        """float32 mono 16 kHz samples starting at t_ns, cut into chunks stamped with their first sample."""
        x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
        pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
        step = max(1, int(round(chunk_s * AUDIO_SAMPLE_RATE)))
        for i in range(0, len(pcm), step):
            t = t_ns + round(i * NS / AUDIO_SAMPLE_RATE)
            msg = self.store.types[AUDIO_CHUNK](
                header=header_msg(self.store, t, "microphone"), sample_rate=AUDIO_SAMPLE_RATE, channels=1,
                sample_format="S16LE", data=np.frombuffer(pcm[i:i + step].tobytes(), dtype=np.uint8))
            self._add(t, self.topics.audio, AUDIO_CHUNK, msg)

    def transcript(self, t_ns: int, text: str) -> None:
        """A std_msgs/String published at t_ns (no stamp of its own)."""
        self._add(t_ns, self.topics.transcript, STRING, self.store.types[STRING](data=text))

    def stamped_transcript(self, start_ns: int, end_ns: int, text: str, language: str = "") -> None:
        """An emotion_ros/Transcript covering [start_ns, end_ns), published at its start."""
        msg = self.store.types[TRANSCRIPT](
            header=header_msg(self.store, start_ns, "subtitle"), end=ns_to_time(end_ns, self.store.types[TIME]),
            text=text, language=language)
        self._add(start_ns, self.topics.transcript, TRANSCRIPT, msg)

    def write(self, writer: BagWriter) -> int:
        for t, _, topic, msgtype, msg in sorted(self.items, key=lambda x: (x[0], x[1])):
            writer.write(topic, t, msg, msgtype)
        return len(self.items)


# ---------------------------------------------------------------------------------------- synthetic
def _label_seed(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:4], "little")


def synthetic_frame(label: str, t_s: float, size=(64, 48)) -> np.ndarray:
    """A frame whose colour depends on the label and whose bright square moves with time."""
    w, h = size
    hue = (_label_seed(label) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.6, 0.8)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = (int(r * 255), int(g * 255), int(b * 255))
    side = max(2, min(w, h) // 4)
    x = int((math.sin(t_s * 2.0) * 0.5 + 0.5) * (w - side))
    y = int((math.cos(t_s * 1.3) * 0.5 + 0.5) * (h - side))
    img[y:y + side, x:x + side] = 255
    return img


def synthetic_audio(label: str, duration_s: float, t_offset_s: float = 0.0) -> np.ndarray:
    """A tone whose pitch depends on the label, with a slow loudness contour (speech-like bursts)."""
    n = int(round(duration_s * AUDIO_SAMPLE_RATE))
    t = t_offset_s + np.arange(n) / AUDIO_SAMPLE_RATE
    f0 = 120.0 + (_label_seed(label) % 200)
    envelope = 0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    return (envelope * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def write_synthetic_bag(path: str | Path, segments: Sequence[tuple[str, float]], *, fps: float = 10.0,
                        size=(64, 48), t0_ns: int = DEFAULT_T0_NS, transcripts: bool = True,
                        storage: str = "mcap", dataset: str = "", label_space: Sequence[str] = (),
                        topics: BagTopics | None = None, overwrite: bool = False) -> Annotations:
    """A bag of consecutive labelled segments [(label, seconds), ...] with frames, audio and text,
    plus its annotations.json (one time range per segment). Deterministic for equal arguments."""
    topics = topics or BagTopics()
    out = _Messages(topics)
    records, t = [], 0.0
    for i, (label, dur) in enumerate(segments):
        start_ns = t0_ns + round(t * NS)
        n_frames = int(math.floor(dur * fps + 1e-9))
        for k in range(n_frames):
            ts = t + k / fps
            out.image(t0_ns + round(ts * NS), synthetic_frame(label, ts, size))
        out.audio(start_ns, synthetic_audio(label, dur, t))
        if transcripts:
            out.transcript(start_ns, f"segment {i}: I feel {label}.")
        records.append(Segment(label=label, start=round(t, 9), end=round(t + dur, 9), id=f"seg{i:03d}",
                               transcript=f"segment {i}: I feel {label}." if transcripts else ""))
        t += dur
    ann = Annotations(segments=records, t0_ns=t0_ns, dataset=dataset, label_space=list(label_space))
    with BagWriter(path, storage=storage, overwrite=overwrite) as writer:
        out.write(writer)
    ann.save(Path(path) / "annotations.json")
    return ann


# ---------------------------------------------------------------------------------------- real clips
def _field(record, name, default=None):
    return record.get(name, default) if isinstance(record, dict) else getattr(record, name, default)


def _language(record) -> str:
    meta = _field(record, "meta") or {}
    lang = _field(record, "language") or (meta.get("language") if isinstance(meta, dict) else None)
    return str(lang or "")


def clip_messages(record, out: _Messages, t0_ns: int, max_fps: float = 15.0, max_side: int = 320,
                  transcripts: str = "transcript") -> float:
    """Add one clip's messages starting at t0_ns; returns the clip duration in seconds.

    Media are decoded by emotion_ros.ingest.media (the decoder training uses too): frames and audio of
    media time [start_s, end_s), placed so that media time start_s is bag time t0_ns. A separate audio
    file holds exactly the clip (not trimmed). MediaError for a missing or unreadable file.
    transcripts: "transcript" (emotion_ros/Transcript over the clip) or "string" (std_msgs/String at
    the clip start).
    """
    if transcripts not in ("transcript", "string"):
        raise ValueError(f"transcripts must be 'transcript' or 'string', not {transcripts!r}")
    video, audio_path = _field(record, "video_path"), _field(record, "audio_path")
    start_s, end_s = _field(record, "start_s"), _field(record, "end_s")
    start = start_s or 0.0
    duration = 0.0
    if video:
        try:
            for t, rgb in iter_video_frames(video, start_s, end_s, max_fps=max_fps, max_side=max_side):
                out.image(t0_ns + round((t - start) * NS), rgb)
                duration = max(duration, t - start + 1.0 / max_fps)
        except MediaError as e:
            if e.reason != "no_video_stream":  # an audio-only file named as video: audio below
                raise
    same_file = audio_path and video and Path(audio_path) == Path(video)
    source = audio_path or video
    if source:
        trim = bool(same_file or not audio_path)
        try:
            samples = decode_audio(source, start_s if trim else None, end_s if trim else None)
        except MediaError as e:
            if e.reason != "no_audio_stream":
                raise
            samples = np.zeros(0, np.float32)
        if samples.size:
            out.audio(t0_ns, samples)
            duration = max(duration, samples.size / AUDIO_SAMPLE_RATE)
    if duration <= 0:
        raise ValueError(f"clip {_field(record, 'clip_id') or video or audio_path}: no decodable video or audio")
    subtitle = _field(record, "subtitle")
    if subtitle:
        if transcripts == "transcript":
            out.stamped_transcript(t0_ns, t0_ns + round(duration * NS), str(subtitle), _language(record))
        else:
            out.transcript(t0_ns, str(subtitle))
    return duration


def _clip_annotations(record, t0_ns: int, offset_s: float, duration_s: float) -> Annotations:
    ann = from_clip_record(record, t0_ns, duration_s)
    for seg in ann.segments:
        seg.start, seg.end = round(offset_s, 9), round(offset_s + duration_s, 9)
    return ann


def make_bag_from_clips(records: Iterable, path: str | Path, *, gap_s: float = 0.0, t0_ns: int = DEFAULT_T0_NS,
                        max_fps: float = 15.0, max_side: int = 320, storage: str = "mcap",
                        topics: BagTopics | None = None, overwrite: bool = False,
                        transcripts: str = "transcript") -> Annotations:
    """Lay clips one after another into one annotated bag.

    gap_s > 0 leaves a hole with no data between clips; the windower then skips windows that span it
    (longer than its max_gap_s), so the default is back-to-back clips. transcripts: see clip_messages.
    """
    out = _Messages(topics or BagTopics())
    parts, offset = [], 0.0
    for record in records:
        duration = clip_messages(record, out, t0_ns + round(offset * NS), max_fps, max_side, transcripts)
        parts.append(_clip_annotations(record, t0_ns, offset, duration))
        offset += duration + gap_s
    if not parts:
        raise ValueError("no clips to write")
    ann = merge(parts)
    with BagWriter(path, storage=storage, overwrite=overwrite) as writer:
        out.write(writer)
    ann.save(Path(path) / "annotations.json")
    return ann


def make_bags_per_clip(records: Iterable, out_dir: str | Path, **kwargs) -> list[Path]:
    """One bag per clip, named by clip_id, under out_dir; returns the bag paths."""
    out_dir = Path(out_dir)
    paths = []
    for i, record in enumerate(records):
        name = str(_field(record, "clip_id") or f"clip_{i:05d}")
        path = out_dir / name
        make_bag_from_clips([record], path, **kwargs)
        paths.append(path)
    return paths
