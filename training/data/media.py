"""Turn a ClipRecord into an emotion_ros Window, decoding its media with emotion_ros.ingest.media.

The decoding itself (PyAV: probe, frames, audio with its trimming rule, writing clips) is
``emotion_ros.ingest.media``, shared with make-bag; its names are re-exported here for training code.

Clip time is media time: a whole-file clip spans [0, duration); a record with start_s/end_s spans that
segment of its video file. The Window's stamps are those times in integer nanoseconds.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import numpy as np

from emotion_ros.ingest.media import (  # noqa: F401  (re-exported for training code and tests)
    MediaError, MediaInfo, VideoFrames, decode_audio, decode_video, fit_length, iter_video_frames, probe,
    sample_video_frames, write_media,
)
from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE, NUM_FRAMES, Window
from emotion_ros_training.data.manifest import ClipRecord, InputError, read_manifest

def uniform_times(start_s: float, end_s: float, num: int = NUM_FRAMES) -> np.ndarray:
    """Centres of `num` equal bins over [start_s, end_s): the uniform frame sampling of the paper."""
    step = (end_s - start_s) / num
    return start_s + (np.arange(num) + 0.5) * step


def sample_clip(record: ClipRecord, num_frames: int = NUM_FRAMES,
                frame_size: tuple[int, int] | None = None) -> Window:
    """Decode a record into a Window: `num_frames` uniformly sampled frames, the middle frame as the
    global frame, 16 kHz mono audio covering the same span, the subtitle as transcript.

    Modalities not listed in record.modalities stay None. Raises MediaError for unreadable media.
    """
    want_video = "vision" in record.modalities
    want_audio = "audio" in record.modalities
    start = record.start_s or 0.0
    end = record.end_s
    if end is None:
        src = record.video_path if want_video else record.audio_path if want_audio else None
        if src is not None:
            info = probe(src)
            if info.duration_s is None:
                raise MediaError("media_unreadable", src, "unknown duration")
            end = info.duration_s
    if end is None:  # text-only record
        end = start
    frames = stamps = global_frame = None
    if want_video:
        targets = np.concatenate([uniform_times(start, end, num_frames), [(start + end) / 2]])
        vf = sample_video_frames(record.video_path, targets, start_s=start, end_s=end, size=frame_size)
        frames = vf.frames[:num_frames]
        stamps = np.round(vf.times_s[:num_frames] * 1e9).astype(np.int64)
        global_frame = vf.frames[num_frames]
    audio = None
    if want_audio:
        same_file = record.audio_path == record.video_path
        if same_file:
            audio = decode_audio(record.audio_path, start, end)
        else:
            audio = decode_audio(record.audio_path)  # a separate audio file holds exactly the clip
        if audio.size == 0:  # checked before padding: zero samples must not become silence unnoticed
            raise MediaError("no_audio_samples", record.audio_path, "audio stream decoded to zero samples")
        if want_video or same_file:
            n = int(round((end - start) * AUDIO_SAMPLE_RATE))
            audio = fit_length(audio, n)
        else:
            end = start + len(audio) / AUDIO_SAMPLE_RATE
    transcript = record.subtitle if "text" in record.modalities else None
    return Window(
        start_ns=int(round(start * 1e9)),
        end_ns=int(round(end * 1e9)),
        frames=frames,
        frame_stamps_ns=stamps,
        global_frame=global_frame,
        audio=audio,
        transcript=transcript,
        source="clip",
        meta={
            "clip_id": record.clip_id,
            "dataset": record.dataset,
            "split": record.split,
            "label_space": record.label_space.name,
            "labels": list(record.labels),
        },
    )


class ClipDataset:
    """Map-style dataset of decoded clips (works as a torch Dataset: __len__ + __getitem__).

    `on_error="skip"` makes iteration skip unreadable clips and count them in `drops`
    (reason -> count); indexing always raises.
    """

    def __init__(self, records: Sequence[ClipRecord] | str | os.PathLike, num_frames: int = NUM_FRAMES,
                 frame_size: tuple[int, int] | None = None, split: str | None = None, on_error: str = "raise"):
        if isinstance(records, (str, os.PathLike)):
            records = read_manifest(records)
        if split is not None:
            records = [r for r in records if r.split == split]
        if on_error not in ("raise", "skip"):
            raise ValueError("on_error must be 'raise' or 'skip'")
        self.records = list(records)
        self.num_frames = num_frames
        self.frame_size = frame_size
        self.on_error = on_error
        self.drops: Counter[str] = Counter()  # reason -> skipped clips

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Window:
        return sample_clip(self.records[i], self.num_frames, self.frame_size)

    def __iter__(self):
        for i in range(len(self.records)):
            try:
                yield self[i]
            except InputError as e:
                if self.on_error == "raise":
                    raise
                self.drops[e.reason] += 1
