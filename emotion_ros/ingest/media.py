"""Media files in and out with PyAV: the one decoder of make-bag (emotion_ros.bags.clips) and training
(emotion_ros_training.data.media), and the writer of the synthetic clips.

Why PyAV: it is FFmpeg, so every container/codec of the source datasets (MELD mp4/H.264+AAC, IEMOCAP
DivX avi + wav, MER2023 avi/mp4, MOSI/MOSEI mp4) decodes through one well-kept library, and its
AudioResampler gives the 16 kHz mono float32 the audio encoder wants. No ROS, no torch, no training code.

Time is media time, in seconds: a frame's time is its presentation timestamp; a clip ``[start_s, end_s)``
holds the frames with ``start_s <= t < end_s``.

Audio trimming (the one rule for make-bag and training alike): ``decode_audio(path, start_s, end_s)``
returns the samples of media time ``[start_s, end_s)``; sample ``i`` lies at ``start_s + i / rate``
(``start_s`` None = 0). The position comes from the timestamp of the first decoded audio frame, so a
stream that does not start at 0 stays aligned with the video frames; a stream starting after ``start_s``
is zero-filled at the head; one ending before ``end_s`` gives fewer samples (``fit_length`` pads or cuts
to an exact count). Audio is decoded from the start of the stream, never after a seek: after a seek,
FFmpeg's AAC decoder in Matroska placed the samples 192 samples (12 ms) early on this project's test
clip, while decoding from the start was exact in mp4, avi, mkv and wav. It costs ~0.46 s per 5 minutes of
AAC on this project's CPU, paid once per clip (training caches the features). Video is decoded after a
keyframe seek (its frame timestamps stay exact).

Errors: ``MediaError`` (an ``InputError``) with a short reason (``media_missing``, ``media_unreadable``,
``no_video_stream``, ``no_audio_stream``, ``no_video_frames``) and the path, so callers count or report
one sentence instead of a traceback.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import av
import numpy as np

from emotion_ros.ingest.errors import InputError
from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE

_EPS = 1e-6  # seconds: timestamps within this of a boundary count as on it (float rounding of pts)


class MediaError(InputError):
    """A media file that is missing, unreadable, or lacks the stream a caller needs."""

    def __init__(self, reason: str, path: str | os.PathLike | None, problem: str):
        super().__init__(reason, f"{path}: {problem}")
        self.path = None if path is None else str(path)


@dataclass
class MediaInfo:
    duration_s: float | None
    has_video: bool
    has_audio: bool
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    audio_rate: int | None = None


@dataclass
class VideoFrames:
    """Decoded frames (N, H, W, 3) uint8 RGB and their presentation times in seconds."""

    frames: np.ndarray
    times_s: np.ndarray


def open_media(path) -> av.container.InputContainer:
    """The opened container, or MediaError naming the file and the problem."""
    if path is None:
        raise MediaError("media_missing", path, "no media path")
    if not os.path.isfile(path):
        raise MediaError("media_missing", path, "file not found")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise MediaError("media_unreadable", path, f"cannot open ({e})") from None


def probe(path) -> MediaInfo:
    """Streams and duration of a media file (duration from the container or, failing that, the streams)."""
    with open_media(path) as c:
        vs = c.streams.video[0] if c.streams.video else None
        aus = c.streams.audio[0] if c.streams.audio else None
        return MediaInfo(
            duration_s=_duration(c),
            has_video=vs is not None,
            has_audio=aus is not None,
            fps=float(vs.average_rate) if vs is not None and vs.average_rate else None,
            width=vs.codec_context.width if vs is not None else None,
            height=vs.codec_context.height if vs is not None else None,
            audio_rate=aus.codec_context.sample_rate if aus is not None else None,
        )


def _duration(c) -> float | None:
    if c.duration is not None and c.duration > 0:
        return c.duration / av.time_base
    best = None
    for s in list(c.streams.video) + list(c.streams.audio):
        if s.duration is not None and s.time_base is not None:
            d = float(s.duration * s.time_base)
            best = d if best is None else max(best, d)
    return best


def _frame_time(frame, stream) -> float | None:
    if frame.pts is not None and stream.time_base is not None:
        return float(frame.pts * stream.time_base)
    return frame.time


# ----------------------------------------------------------------------------------------------- video
def _scaled_size(width: int, height: int, size, max_side) -> tuple[int, int] | None:
    """Output (W, H): ``size`` if given; else scaled down so the longer side is <= max_side (even sides)."""
    if size is not None:
        return int(size[0]), int(size[1])
    if max_side is None or max(width, height) <= 0:
        return None
    scale = min(1.0, max_side / max(width, height))
    if scale >= 1.0:
        return None
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _to_rgb(frame, out_size) -> np.ndarray:
    if out_size is not None:
        return frame.to_ndarray(format="rgb24", width=out_size[0], height=out_size[1])
    return frame.to_ndarray(format="rgb24")


def _video_frames(path, start_s, end_s) -> Iterator[tuple[float, object]]:
    """(media time, av.VideoFrame) for the frames in [start_s, end_s), in decode order."""
    c = open_media(path)
    try:
        if not c.streams.video:
            raise MediaError("no_video_stream", path, "file has no video stream")
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        if start_s and start_s > 0 and vs.time_base is not None:
            c.seek(int(start_s / vs.time_base), stream=vs, backward=True, any_frame=False)
        for frame in c.decode(vs):
            t = _frame_time(frame, vs)
            if t is None:
                continue
            if start_s is not None and t < start_s - _EPS:
                continue
            if end_s is not None and t >= end_s - _EPS:
                break
            yield t, frame
    except MediaError:
        raise
    except (av.FFmpegError, ValueError, OSError) as e:
        raise MediaError("media_unreadable", path, f"video decode failed ({e})") from None
    finally:
        c.close()


def iter_video_frames(path, start_s: float | None = None, end_s: float | None = None,
                      size: tuple[int, int] | None = None, max_fps: float | None = None,
                      max_side: int | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(media time, uint8 RGB frame) for the frames in [start_s, end_s), streaming.

    size=(W, H) resizes every frame; otherwise max_side scales frames down (aspect kept, even sides).
    max_fps keeps at most that many frames per second (the first frame, then each frame at least
    1/max_fps after the last kept one).
    """
    next_t = None
    for t, frame in _video_frames(path, start_s, end_s):
        if max_fps is not None and next_t is not None and t + _EPS < next_t:
            continue
        if max_fps is not None:
            next_t = t + 1.0 / max_fps
        yield t, _to_rgb(frame, _scaled_size(frame.width, frame.height, size, max_side))


def decode_video(path, start_s: float | None = None, end_s: float | None = None,
                 size: tuple[int, int] | None = None, max_fps: float | None = None,
                 max_side: int | None = None) -> VideoFrames:
    """All frames of [start_s, end_s) (see iter_video_frames); MediaError when there is none."""
    frames, times = [], []
    for t, img in iter_video_frames(path, start_s, end_s, size, max_fps, max_side):
        frames.append(img)
        times.append(t)
    if not frames:
        raise MediaError("no_video_frames", path, f"no decodable frame in [{start_s}, {end_s})")
    return VideoFrames(np.stack(frames), np.asarray(times))


def sample_video_frames(path, times_s: Sequence[float], start_s: float | None = None,
                        end_s: float | None = None, size: tuple[int, int] | None = None) -> VideoFrames:
    """For each target time, the decoded frame nearest to it (streaming: holds only the picks).

    Frames outside [start_s, end_s) are not candidates; targets before the first or after the last
    frame get the nearest existing frame (short clips repeat frames).
    """
    targets = np.asarray(times_s, dtype=np.float64)
    best_dt = np.full(len(targets), np.inf)
    picks: list = [None] * len(targets)
    pick_t = np.zeros(len(targets))
    for t, frame in _video_frames(path, start_s, end_s):
        dt = np.abs(targets - t)
        better = dt < best_dt
        if better.any():
            img = _to_rgb(frame, _scaled_size(frame.width, frame.height, size, None))
            for i in np.nonzero(better)[0]:
                best_dt[i], picks[i], pick_t[i] = dt[i], img, t
        elif t > targets.max():
            break  # frames only get farther from every target from here on
    if any(p is None for p in picks):
        raise MediaError("no_video_frames", path, f"no decodable frame in [{start_s}, {end_s})")
    return VideoFrames(np.stack(picks), pick_t)


# ----------------------------------------------------------------------------------------------- audio
def decode_audio(path, start_s: float | None = None, end_s: float | None = None,
                 sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples of media time [start_s, end_s) at ``sample_rate`` (trimming rule: module
    docstring). FFmpeg's resampler mixes channels and converts the rate."""
    c = open_media(path)
    chunks: list[np.ndarray] = []
    first_t = None
    try:
        if not c.streams.audio:
            raise MediaError("no_audio_stream", path, "file has no audio stream")
        ast = c.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in c.decode(ast):
            t = _frame_time(frame, ast)
            if first_t is None:
                first_t = t or 0.0
            if end_s is not None and t is not None and t >= end_s:
                break
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except MediaError:
        raise
    except (av.FFmpegError, ValueError, OSError) as e:
        raise MediaError("media_unreadable", path, f"audio decode failed ({e})") from None
    finally:
        c.close()
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    start = start_s or 0.0
    lo = int(round((start - (first_t or 0.0)) * sample_rate))  # index of media time `start` in `audio`
    hi = len(audio) if end_s is None else min(len(audio), int(round((end_s - (first_t or 0.0)) * sample_rate)))
    if hi <= 0:  # the stream begins at or after end_s: no audio in the clip
        return np.zeros(0, np.float32)
    body = audio[max(0, lo):max(0, lo, hi)]
    if lo < 0:  # the stream starts after `start`: silence until it does
        body = np.concatenate([np.zeros(-lo, np.float32), body])
    return np.ascontiguousarray(body)


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad to exactly n samples (codec padding/priming leaves a few extra or missing)."""
    if len(audio) >= n:
        return audio[:n]
    return np.concatenate([audio, np.zeros(n - len(audio), np.float32)])


# ----------------------------------------------------------------------------------------------- writing
def write_media(path: str | os.PathLike, frames: np.ndarray | None = None, fps: int = 15,
                audio: np.ndarray | None = None, sample_rate: int = AUDIO_SAMPLE_RATE,
                video_codec: str | None = None, crf: int = 23) -> None:
    """Write frames (N,H,W,3 uint8 RGB) and/or mono float32 audio to a file; codecs from the extension:
    .mp4/.mkv/.mov MPEG-4 part 2 video + AAC, .avi MPEG-4 part 2 + PCM, .wav PCM s16.

    The default video codec is FFmpeg's native MPEG-4 part 2 because its output is byte-identical run
    to run; libx264 (video_codec="libx264") was measured to give different bytes for the same frames
    now and then, even single-threaded, which breaks the synthetic data's reproducibility.
    """
    path = str(path)
    ext = os.path.splitext(path)[1].lower()
    if frames is None and audio is None:
        raise ValueError("nothing to write")
    if ext == ".wav" and frames is not None:
        raise ValueError(".wav holds audio only")
    vcodec, acodec = {
        ".mp4": ("mpeg4", "aac"), ".mkv": ("mpeg4", "aac"), ".mov": ("mpeg4", "aac"),
        ".avi": ("mpeg4", "pcm_s16le"), ".wav": (None, "pcm_s16le"),
    }.get(ext, (None, None))
    if video_codec is not None and vcodec is not None:
        vcodec = video_codec
    if acodec is None:
        raise ValueError(f"unsupported media extension {ext!r}")
    with av.open(path, mode="w") as c:
        vs = as_ = None
        if frames is not None:
            frames = np.asarray(frames)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise ValueError("frames must be (N, H, W, 3) uint8")
            h, w = frames.shape[1:3]
            vs = c.add_stream(vcodec, rate=int(fps))
            vs.width, vs.height = w - w % 2, h - h % 2
            vs.pix_fmt = "yuv420p"
            vs.codec_context.thread_count = 1
            if vcodec == "libx264":
                vs.options = {"preset": "veryfast", "crf": str(crf), "threads": "1"}
        if audio is not None:
            as_ = c.add_stream(acodec, rate=int(sample_rate))
            as_.layout = "mono"
        if vs is not None:
            for i, img in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: vs.height, : vs.width]), format="rgb24")
                vf.pts = i
                for p in vs.encode(vf):
                    c.mux(p)
            for p in vs.encode():
                c.mux(p)
        if as_ is not None:
            a = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
            fmt = "flt" if acodec == "aac" else "s16"
            data = a if fmt == "flt" else (a * 32767.0).round().astype(np.int16)
            block = 1024
            for s in range(0, len(data), block):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[None, s:s + block]), format=fmt, layout="mono")
                af.sample_rate = int(sample_rate)
                af.pts = s
                for p in as_.encode(af):
                    c.mux(p)
            for p in as_.encode():
                c.mux(p)
