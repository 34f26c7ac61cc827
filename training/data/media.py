"""Decode (and write) real media files with PyAV, and turn a ClipRecord into an emotion_ros Window.

Why PyAV: it is FFmpeg, so every container/codec of the source datasets (MELD mp4/H.264+AAC, IEMOCAP
DivX avi + wav, MER2023 avi/mp4, MOSI/MOSEI mp4) decodes through one well-kept library, and its
AudioResampler gives the 16 kHz mono float32 the audio encoder wants.

Clip time is media time: a whole-file clip spans [0, duration); a record with start_s/end_s spans that
segment of its video file. The Window's stamps are those times in integer nanoseconds.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np

from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE, NUM_FRAMES, Window
from emotion_ros_training.data.manifest import ClipRecord, InputError, read_manifest

class MediaError(InputError):
    """A media file that is missing, unreadable, or lacks the stream a record promises."""

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


def _open(path) -> av.container.InputContainer:
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
    with _open(path) as c:
        vs = c.streams.video[0] if c.streams.video else None
        aus = c.streams.audio[0] if c.streams.audio else None
        dur = _duration(c)
        return MediaInfo(
            duration_s=dur,
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


def decode_video(path, start_s: float | None = None, end_s: float | None = None,
                 size: tuple[int, int] | None = None) -> VideoFrames:
    """All frames with start_s <= t < end_s as uint8 RGB (optionally resized to size=(W, H))."""
    return _decode_frames(path, start_s, end_s, None, size)


def sample_video_frames(path, times_s: Sequence[float], start_s: float | None = None,
                        end_s: float | None = None, size: tuple[int, int] | None = None) -> VideoFrames:
    """For each target time, the decoded frame nearest to it (streaming: holds only the picks).

    Frames outside [start_s, end_s) are not candidates; targets before the first or after the last
    frame get the nearest existing frame (short clips repeat frames).
    """
    return _decode_frames(path, start_s, end_s, np.asarray(times_s, dtype=np.float64), size)


def _decode_frames(path, start_s, end_s, targets, size) -> VideoFrames:
    c = _open(path)
    try:
        if not c.streams.video:
            raise MediaError("no_video_stream", path, "file has no video stream")
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        if start_s and start_s > 0 and vs.time_base is not None:
            c.seek(int(start_s / vs.time_base), stream=vs, backward=True, any_frame=False)
        eps = 1e-6
        if targets is not None:
            best_dt = np.full(len(targets), np.inf)
            picks: list = [None] * len(targets)
            pick_t = np.zeros(len(targets))
        frames, times = [], []
        for frame in c.decode(vs):
            t = _frame_time(frame, vs)
            if t is None:
                continue
            if start_s is not None and t < start_s - eps:
                continue
            if end_s is not None and t >= end_s - eps:
                break
            if targets is None:
                frames.append(_to_rgb(frame, size))
                times.append(t)
                continue
            dt = np.abs(targets - t)
            better = dt < best_dt
            if better.any():
                img = _to_rgb(frame, size)
                for i in np.nonzero(better)[0]:
                    best_dt[i], picks[i], pick_t[i] = dt[i], img, t
            elif t > targets.max():
                break  # frames only get farther from every target from here on
    except MediaError:
        raise
    except (av.FFmpegError, ValueError, OSError) as e:
        raise MediaError("media_unreadable", path, f"video decode failed ({e})") from None
    finally:
        c.close()
    if targets is not None:
        if any(p is None for p in picks):
            raise MediaError("no_video_frames", path, f"no decodable frame in [{start_s}, {end_s})")
        return VideoFrames(np.stack(picks), pick_t)
    if not frames:
        raise MediaError("no_video_frames", path, f"no decodable frame in [{start_s}, {end_s})")
    return VideoFrames(np.stack(frames), np.asarray(times))


def _to_rgb(frame, size) -> np.ndarray:
    if size is not None:
        frame = frame.reformat(width=int(size[0]), height=int(size[1]))
    return frame.to_ndarray(format="rgb24")


def decode_audio(path, start_s: float | None = None, end_s: float | None = None,
                 sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Audio of [start_s, end_s) as float32 mono at `sample_rate` (FFmpeg's resampler does the mixing)."""
    c = _open(path)
    chunks: list[np.ndarray] = []
    first_t = None
    try:
        if not c.streams.audio:
            raise MediaError("no_audio_stream", path, "file has no audio stream")
        ast = c.streams.audio[0]
        if start_s and start_s > 0 and ast.time_base is not None:
            c.seek(int(start_s / ast.time_base), stream=ast, backward=True, any_frame=False)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in c.decode(ast):
            if first_t is None:
                first_t = _frame_time(frame, ast) or 0.0
            if end_s is not None:
                t = _frame_time(frame, ast)
                if t is not None and t >= end_s:
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
    first_t = first_t or 0.0
    lo = 0
    if start_s is not None:
        lo = max(0, int(round((start_s - first_t) * sample_rate)))
    hi = len(audio)
    if end_s is not None:
        hi = min(hi, max(lo, int(round((end_s - first_t) * sample_rate))))
    return np.ascontiguousarray(audio[lo:hi])


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
        if want_video or same_file:
            n = int(round((end - start) * AUDIO_SAMPLE_RATE))
            audio = _fit(audio, n)
        else:
            end = start + len(audio) / AUDIO_SAMPLE_RATE
        if audio.size == 0:
            raise MediaError("no_audio_samples", record.audio_path, "audio stream decoded to zero samples")
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


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to exactly n samples (codec padding/priming leaves a few extra or missing)."""
    if len(audio) >= n:
        return audio[:n]
    return np.concatenate([audio, np.zeros(n - len(audio), np.float32)])


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


# ----------------------------------------------------------------------------------------- writing

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
