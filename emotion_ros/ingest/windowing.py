"""Time-aligned buffers of frames, audio and transcripts, and the cutter that turns them into `Window`s.

Everything is keyed by sensor time (header stamps, integer ns), never wall time, so a replayed bag
gives the same windows as the live run. Plain Python + numpy; the ROS node converts messages
(image_conversion / audio_conversion) and calls push_*(); a worker calls poll().

Windows
  fixed: [t, t + window_s) for t on the grid of multiples of hop_s (absolute sensor time), starting
         at the first grid point >= (first stamp seen - lateness_s).
  vad:   speech segments from `vad.SpeechSegmenter`, widened to min_speech_s around their centre and
         split into pieces of at most max_speech_s.
  both:  the two together (poll() returns them ordered by end time).
  end of the data (flush(): end of a bag, inputs stopped): the last fixed window, which would reach
         beyond the data, is cut short at the end of the data, so the tail is never lost and a recording
         shorter than window_s (a 1.5 s clip) still gets one window: [next grid point, end of data), or
         [first stamp, end of data) when no window was cut yet; only when the windows cut so far leave
         more than lateness_s of the data uncovered. An open VAD segment is closed at the end of the
         data. Such windows carry meta["short_window"] = "end_of_data"; windows shorter than min_window_s
         are not cut (event "windows_skipped_too_short").
         VAD windows are as long as their speech (min_speech_s..max_speech_s), not window_s.
         Short windows are what the model expects to handle: the audio encoder runs Whisper on the real
         length and zero-pads/masks to its 64 tokens, and the temporal view resamples the window's
         num_frames frames, so a 0.5 s window holds fewer distinct frames, never fewer slots.
A window is cut once every live sensor stream has data up to its end + lateness_s (the tolerance for
out-of-order stamps). A stream silent for more than sensor_timeout_s of sensor time (measured against
the newest stamp of any stream) is "dead" and stops holding windows back; windows are then cut
without it and its modality is missing (None) in them. For audio the timeout is sensor_timeout_s plus
the newest chunk's duration, since a chunked stream is only complete up to the end of its last chunk.

Contents of one window [S, E)
  frames: the frames with S <= stamp < E. Vision is present only if such frames exist and no hole
    between them (or to the window edges) exceeds max_gap_s. The num_frames instants
    S + (i + 1/2)(E - S)/num_frames each take the nearest frame, so with fewer distinct frames than
    num_frames (e.g. a 5 Hz camera) frames repeat; frame_stamps_ns says which were used.
    global_frame = the frame nearest the midpoint.
    A camera that changes resolution keeps its buffered frames: frames are stored as they came and a
    window whose frames differ in size letterboxes the older ones into the size of its newest frame
    (aspect ratio kept, centred, black bars: image_conversion.letterbox_rgb); meta["frames_rescaled"]
    says how many distinct frames were fitted. The change is counted as the event "frame_shape_changed",
    never as an eviction. The global frame stays as it came (the encoder takes any size).
  audio: the window's samples placed by chunk stamps (a later chunk overwrites an overlap); each hole
    up to max_audio_fill_s is zeros; any longer hole (or no audio) makes audio missing (nothing
    fabricated). meta["audio_filled_s"] says how much was zero-filled.
  transcript: the texts whose span overlaps the window, joined by spaces in start order. A transcript
    pushed with an end (push_transcript(start_ns, text, end_ns)) covers [start, end) and belongs to
    every window that overlaps that span, and to no other; one without an end is the instant of its
    stamp (S <= stamp < E), as a std_msgs/String stamped on arrival is.
A window with neither audio nor vision is not emitted (counted as an event).

Faults
  out of order: an item up to lateness_s older than its stream's newest is inserted in order; older
    is dropped ("stamp_out_of_order"); a repeated stamp is dropped ("stamp_duplicate").
  clock jump back (bag loop): an item more than max_jump_back_s older than its stream's newest resets
    every buffer (evictions counted as "clock_jump_back", event "clock_jump_back") and starts again
    from it. Items of the old epoch still in flight right after the jump are dropped
    ("stamp_before_clock_jump") instead of causing a second reset.
  gaps: no window is cut across a hole (see above); fixed windows with no data at all are skipped in
    O(1) however long the gap is.
  small jump back (between lateness_s and max_jump_back_s): items are dropped as out of order until
    the stream's time passes its previous newest again (counted; no reset for a mere hiccup).
  one stream on another clock (e.g. wall time vs sim time): it looks dead to the others, so windows
    go on without it and its items are evicted as "outside_windows" (visible on /diagnostics).
  late transcript: one whose span ends before the oldest data still kept is dropped
    ("transcript_too_late"); one that ends before it starts is dropped ("transcript_bad_span").
Transcripts never hold windows back (unless transcript_wait_s > 0); sensor_timeout_s must exceed the
camera's frame period or vision will flicker out between frames.
Accounting: every accepted item is used by a window, still buffered, or evicted with a counted
reason; `accounting()` reports accepted / used / evicted / buffered / lost per stream (lost == 0).
DropCounter keys used: accepted "frames" / "audio" / "transcript"; dropped by InputError reason;
evicted "<stream>.<outside_windows|buffer_limit|clock_jump_back|reset>"; events
"clock_jump_back", "frame_shape_changed", "windows_skipped_no_data", "windows_skipped_<source>_no_sensor_data",
"windows_skipped_too_short", "vad_segments",
"audio_clipped_chunks/_samples", "transcript_control_chars_replaced".
Code: the three streams are `buffers.StampedBuffer`s (sorted spans, used flags, evict-with-reason);
stamps are validated by `stamps.check_stamp`; this module decides admission, readiness, cutting, eviction.
Memory: bounded by max_buffer_s of sensor time and max_buffer_frames frames (the node may downscale
frames before pushing to lower the bound).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np

from emotion_ros.ingest.audio_conversion import chunk_to_mono
from emotion_ros.ingest.buffers import Item, StampedBuffer
from emotion_ros.ingest.errors import DropCounter, InputError
from emotion_ros.ingest.image_conversion import check_rgb, compressed_to_rgb, image_to_rgb, letterbox_rgb
from emotion_ros.ingest.stamps import NS, check_stamp, seconds_to_ns as _ns
from emotion_ros.ingest.transcripts import clean_transcript
from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE, NUM_FRAMES, Window
from emotion_ros.params import param, validate

NS_PER_SAMPLE = NS // AUDIO_SAMPLE_RATE  # 62_500 exactly at 16 kHz
MODES = ("fixed", "vad", "both")
STREAMS = ("frames", "audio", "transcript")
_GATING = ("frames", "audio")


@dataclass
class WindowingConfig:
    """Window cutting and fault handling (seconds of sensor time). Each field is a node parameter."""

    window_s: float = param(2.0, "window length in seconds of sensor time", min=0.1, max=60.0)
    hop_s: float = param(0.5, "step between fixed windows (seconds)", min=0.05, max=60.0)
    mode: Literal["fixed", "vad", "both"] = param(
        "fixed", "fixed: a window every hop_s; vad: one per speech segment (Silero VAD); both: the two",
        name="window_mode")
    num_frames: int = param(NUM_FRAMES, "frames sampled uniformly over each window (the temporal view)",
                            min=1, max=256, advanced=True)
    # 0.5 s: 25 Whisper positions and 7-8 frames at 15 fps, still a glimpse of an utterance; shorter tails
    # hold too little to score.
    min_window_s: float = param(0.5, "shortest window cut at the end of the data (flush) or of a VAD segment; "
                                "the model pads/masks shorter audio and resamples the frames (s)",
                                min=0.05, max=60.0, advanced=True)
    max_buffer_s: float = param(30.0, "nothing older than the newest stamp minus this is kept (seconds)",
                                min=1.0, max=600.0, advanced=True)
    max_buffer_frames: int = param(300, "hard cap on buffered frames (10 s at 30 Hz)", min=1, advanced=True)
    sensor_timeout_s: float = param(1.0, "a stream silent this long (sensor time) is missing from later windows; "
                                    "also the wall-time silence after which buffered data is flushed",
                                    min=0.01, max=60.0)
    lateness_s: float = param(0.1, "out-of-order tolerance, and the extra wait before a window is cut (s)",
                              min=0.0, max=10.0, advanced=True)
    max_jump_back_s: float = param(1.0, "a stamp this far behind its stream's newest is a clock jump (reset)",
                                   min=0.01, advanced=True)
    max_gap_s: float = param(0.5, "a hole between frames longer than this means no vision in that window (s)",
                             min=0.01, advanced=True)
    max_audio_fill_s: float = param(0.1, "audio holes up to this are zero-filled; longer ones mean no audio (s)",
                                    min=0.0, advanced=True)
    min_speech_s: float = param(1.0, "VAD windows shorter than this are widened around their centre (s)",
                                min=0.05, advanced=True)
    max_speech_s: float = param(8.0, "VAD windows longer than this are split (s)", min=0.1, advanced=True)
    transcript_wait_s: float = param(0.0, "extra wait for late transcripts once a transcript stream is seen (s)",
                                     min=0.0, advanced=True)
    max_transcript_chars: int = param(4000, "longer transcripts are dropped as transcript_too_long", min=1,
                                      advanced=True)
    max_buffer_transcripts: int = param(256, "hard cap on buffered transcripts", min=1, advanced=True)

    def __post_init__(self):
        validate(self)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        for name in ("window_s", "hop_s", "max_buffer_s", "sensor_timeout_s", "max_jump_back_s",
                     "max_gap_s", "min_speech_s", "max_speech_s", "min_window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("lateness_s", "max_audio_fill_s", "transcript_wait_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if min(self.num_frames, self.max_buffer_frames, self.max_transcript_chars, self.max_buffer_transcripts) < 1:
            raise ValueError("num_frames, max_buffer_frames, max_transcript_chars, max_buffer_transcripts must be >= 1")
        if self.min_speech_s > self.max_speech_s:
            raise ValueError("min_speech_s must be <= max_speech_s")
        if self.min_window_s > min(self.window_s, self.min_speech_s):
            raise ValueError("min_window_s must be <= window_s and <= min_speech_s")
        if self.lateness_s >= self.max_jump_back_s:
            raise ValueError("lateness_s must be < max_jump_back_s")
        need = max(self.window_s, self.max_speech_s) + self.lateness_s + self.sensor_timeout_s
        if self.max_buffer_s < need:
            raise ValueError(f"max_buffer_s must be >= {need:.2f} (longest window + lateness + timeout)")


@dataclass
class _JumpGuard:
    old_from: int  # items stamped at/after this are from the old epoch
    until: int  # guard ends once sensor time reaches this


def _longest_false_run(mask: np.ndarray) -> int:
    if mask.all():
        return 0
    padded = np.concatenate([[True], mask, [True]]).astype(np.int8)
    d = np.diff(padded)
    starts = np.flatnonzero(d == -1)
    ends = np.flatnonzero(d == 1)
    return int((ends - starts).max())


def _frame_in_shape(item: Item, shape: tuple) -> np.ndarray:
    """The frame of `item` in `shape` (letterboxed once per size and kept with the item)."""
    rgb = item.value
    if rgb.shape == shape:
        return rgb
    fitted = item.cache.get(shape)
    if fitted is None:
        fitted = item.cache[shape] = letterbox_rgb(rgb, shape[0], shape[1])
    return fitted


class Windower:
    """Buffers pushed sensor data and cuts `Window`s; thread-safe (push from callbacks, poll from a worker)."""

    def __init__(self, config: WindowingConfig | None = None, vad=None, counter: DropCounter | None = None):
        self.config = config or WindowingConfig()
        c = self.config
        self.counter = counter if counter is not None else DropCounter()
        self._fixed = c.mode in ("fixed", "both")
        self._use_vad = c.mode in ("vad", "both")
        if self._use_vad and vad is None:
            from emotion_ros.ingest.vad import SpeechSegmenter, VadConfig

            vad = SpeechSegmenter(VadConfig(max_speech_s=c.max_speech_s))
        self.vad = vad if self._use_vad else None
        self._W = _ns(c.window_s)
        self._hop = _ns(c.hop_s)
        self._late = _ns(c.lateness_s)
        self._timeout = _ns(c.sensor_timeout_s)
        self._jump = _ns(c.max_jump_back_s)
        self._gap = _ns(c.max_gap_s)
        self._fill = int(round(c.max_audio_fill_s * AUDIO_SAMPLE_RATE))
        self._min_speech = _ns(c.min_speech_s)
        self._max_speech = _ns(c.max_speech_s)
        self._min_window = _ns(c.min_window_s)
        self._max_buf = _ns(c.max_buffer_s)
        self._tr_wait = _ns(c.transcript_wait_s)
        self._lock = threading.RLock()
        self._frames = StampedBuffer("frames", self.counter, max_items=c.max_buffer_frames)
        self._audio = StampedBuffer("audio", self.counter)
        self._texts = StampedBuffer("transcript", self.counter, unique=False, max_items=c.max_buffer_transcripts)
        self._buffers = {"frames": self._frames, "audio": self._audio, "transcript": self._texts}
        self._index = 0
        self._guard: _JumpGuard | None = None
        self._clear()

    # ------------------------------------------------------------------ state
    def _clear(self) -> None:
        """Forget the epoch's time bookkeeping (the buffers are emptied by _evict_all first)."""
        self._latest_start: dict[str, int | None] = {"frames": None, "audio": None}
        self._newest_end: dict[str, int | None] = {"frames": None, "audio": None}
        self._last_chunk_ns = 0
        self._last_frame_shape: tuple | None = None
        self._epoch_start: int | None = None
        self._now: int | None = None
        self._fixed_next: int | None = None
        self._fixed_first: int | None = None  # the epoch's first grid point
        self._fixed_covered: int | None = None  # end of the last fixed window cut (or skipped)
        self._tail_tried: int | None = None  # data end of the last too-short tail (counted once)
        self._vad_pending: list[tuple[int, int]] = []
        self._vad_fed: int | None = None
        self._keep_from: int | None = None
        self._transcripts_seen = False
        if self.vad is not None:
            self.vad.reset()

    def _evict_all(self, reason: str) -> None:
        for buf in self._buffers.values():
            buf.clear(reason)

    def reset(self) -> None:
        """Forget all buffered data (counted as evicted "reset"); counters are kept."""
        with self._lock:
            self._evict_all("reset")
            self._guard = None
            self._clear()

    # ------------------------------------------------------------------ admission
    def _admit(self, stream: str, stamp: int) -> bool:
        """Time checks for a gating stream; may reset on a clock jump. False = dropped (counted)."""
        g = self._guard
        if g is not None:
            if self._now is not None and self._now >= g.until:
                self._guard = None
            elif stamp >= g.old_from:
                self.counter.drop("stamp_before_clock_jump")
                return False
        latest = self._latest_start[stream]
        if latest is not None:
            behind = latest - stamp
            if behind > self._jump:
                old_now = self._now if self._now is not None else latest
                self.counter.event("clock_jump_back")
                self._evict_all("clock_jump_back")
                self._clear()
                self._guard = _JumpGuard(old_from=old_now - self._jump, until=stamp + self._timeout)
                return True
            if behind > self._late:
                self.counter.drop("stamp_out_of_order")
                return False
        return True

    def _note_time(self, stream: str, start: int, end: int) -> None:
        ls = self._latest_start[stream]
        self._latest_start[stream] = start if ls is None else max(ls, start)
        ne = self._newest_end[stream]
        self._newest_end[stream] = end if ne is None else max(ne, end)
        self._now = end if self._now is None else max(self._now, end)
        if self._epoch_start is None:
            self._epoch_start = start
            # Fixed windows sit on a grid of absolute sensor time (multiples of hop), so which stream's
            # item happened to arrive first does not shift every window of the run. The first one is the
            # first grid point at/after (first stamp - lateness): it lacks at most lateness_s of data.
            g = start - self._late
            self._fixed_next = self._fixed_first = g + (-g % self._hop)

    # ------------------------------------------------------------------ push API
    def push_frame(self, stamp_ns, rgb) -> bool:
        """Buffer one RGB frame (H, W, 3) uint8 with its header stamp. False = dropped (counted)."""
        with self._lock:
            try:
                stamp = check_stamp(stamp_ns)
                rgb = check_rgb(rgb)
            except InputError as err:
                self.counter.drop_error(err)
                return False
            if not self._admit("frames", stamp):
                return False
            if self._frames.insert(stamp, rgb) is None:
                self.counter.drop("stamp_duplicate")
                return False
            if self._last_frame_shape is not None and rgb.shape != self._last_frame_shape:
                # resolution changed: the buffered frames stay; windows that mix sizes letterbox the
                # older ones into the newest size (_build)
                self.counter.event("frame_shape_changed")
            self._last_frame_shape = rgb.shape
            self._note_time("frames", stamp, stamp)
            self.counter.accept("frames")
            return True

    def push_audio(self, stamp_ns, samples) -> bool:
        """Buffer float32 mono 16 kHz samples; stamp = capture time of the first sample."""
        with self._lock:
            try:
                stamp = check_stamp(stamp_ns)
                x = np.asarray(samples)
                if x.ndim != 1 or x.dtype.kind != "f":
                    raise InputError("audio_bad_array", f"samples must be 1-D float, got {x.shape} {x.dtype}")
                if x.size == 0:
                    raise InputError("audio_empty", "no samples")
                if x.size > self.config.max_buffer_s * AUDIO_SAMPLE_RATE:
                    raise InputError("audio_chunk_too_long", f"{x.size} samples > max_buffer_s")
                if not np.isfinite(x).all():
                    raise InputError("audio_non_finite", "NaN/Inf samples")
                if np.abs(x).max() > 1.0:
                    raise InputError("audio_out_of_range", "samples outside [-1, 1] (convert with chunk_to_mono)")
            except InputError as err:
                self.counter.drop_error(err)
                return False
            if not self._admit("audio", stamp):
                return False
            end = stamp + x.size * NS_PER_SAMPLE
            if self._audio.insert(stamp, np.array(x, dtype=np.float32, copy=True), end) is None:
                self.counter.drop("stamp_duplicate")
                return False
            if self._latest_start["audio"] is None or stamp >= self._latest_start["audio"]:
                self._last_chunk_ns = end - stamp
            self._note_time("audio", stamp, end)
            self.counter.accept("audio")
            return True

    def push_transcript(self, stamp_ns, text, end_ns=None) -> bool:
        """Buffer a transcript stamped at the start of the speech it transcribes.

        end_ns (optional): the end of that speech; the transcript then belongs to every window that
        overlaps [stamp_ns, end_ns) and to no other. Without it, to the window(s) holding stamp_ns.
        """
        with self._lock:
            try:
                stamp = check_stamp(stamp_ns)
                end = None
                if end_ns is not None:
                    end = check_stamp(end_ns)
                    if end < stamp:
                        raise InputError("transcript_bad_span", f"transcript ends ({end}) before it starts ({stamp})")
                cleaned, n_ctrl = clean_transcript(text, self.config.max_transcript_chars)
            except InputError as err:
                self.counter.drop_error(err)
                return False
            last = end if end is not None and end > stamp else stamp + 1  # exclusive end of its span
            if self._keep_from is not None and last <= self._keep_from:
                self.counter.drop("transcript_too_late")
                return False
            if n_ctrl:
                self.counter.event("transcript_control_chars_replaced", n_ctrl)
            self._texts.insert(stamp, cleaned, end)
            self._transcripts_seen = True
            self.counter.accept("transcript")
            return True

    # Convenience wrappers for the node: convert a message's fields, count any InputError, push.
    def push_image(self, stamp_ns, encoding, height, width, step, data, is_bigendian=0, **limits) -> bool:
        """sensor_msgs/Image fields -> push_frame; conversion errors are counted by reason."""
        try:
            check_stamp(stamp_ns)
            rgb = image_to_rgb(encoding, height, width, step, data, is_bigendian, **limits)
        except InputError as err:
            self.counter.drop_error(err)
            return False
        return self.push_frame(stamp_ns, rgb)

    def push_compressed_image(self, stamp_ns, format, data, **limits) -> bool:
        """sensor_msgs/CompressedImage fields -> push_frame."""
        try:
            check_stamp(stamp_ns)
            rgb = compressed_to_rgb(format, data, **limits)
        except InputError as err:
            self.counter.drop_error(err)
            return False
        return self.push_frame(stamp_ns, rgb)

    def push_audio_chunk(self, stamp_ns, sample_rate, channels, sample_format, data) -> bool:
        """AudioChunk fields -> push_audio; clipping is counted as events, not dropped."""
        try:
            check_stamp(stamp_ns)
            mono = chunk_to_mono(sample_rate, channels, sample_format, data)
        except InputError as err:
            self.counter.drop_error(err)
            return False
        if mono.clipped:
            self.counter.event("audio_clipped_chunks")
            self.counter.event("audio_clipped_samples", mono.clipped)
        return self.push_audio(stamp_ns, mono.samples)

    # ------------------------------------------------------------------ readiness
    def _dead(self, stream: str) -> bool:
        ref = self._newest_end[stream]
        if ref is None:
            ref = self._epoch_start
        timeout = self._timeout + (self._last_chunk_ns if stream == "audio" else 0)
        return self._now - ref > timeout

    def _ready(self, end: int, final: bool) -> bool:
        if end > self._now:
            return False
        if final:
            return True
        for s in _GATING:
            if self._dead(s):
                continue
            ne = self._newest_end[s]
            if ne is None or ne < end + self._late:
                return False
        if self._tr_wait and self._transcripts_seen and self._now < end + self._tr_wait:
            return False
        return True

    def _first_data_at_or_after(self, t: int) -> int | None:
        firsts = [x for x in (self._frames.first_at_or_after(t), self._audio.first_at_or_after(t)) if x is not None]
        return min(firsts) if firsts else None

    # ------------------------------------------------------------------ building a window
    def _extract_audio(self, start: int, end: int):
        n = int(round((end - start) / NS_PER_SAMPLE))
        out = np.zeros(n, dtype=np.float32)
        mask = np.zeros(n, dtype=bool)
        touched = []
        for c in self._audio.overlapping(start, end):
            samples = c.value
            off = int(round((c.start - start) / NS_PER_SAMPLE))
            a, b = max(0, off), min(n, off + len(samples))
            if a < b:
                out[a:b] = samples[a - off:b - off]
                mask[a:b] = True
                touched.append(c)
        return out, mask, touched

    def _build(self, start: int, end: int, source: str) -> Window | None:
        meta: dict = {}
        # vision
        frames = frame_stamps = global_frame = None
        sel = self._frames.overlapping(start, end)
        if not sel:
            meta["vision_missing"] = "dead" if self._dead("frames") else "no_frames"
        else:
            ts = np.asarray([f.start for f in sel], dtype=np.int64)
            edges = [int(ts[0]) - start, end - int(ts[-1])]
            worst = max(edges + ([int(np.diff(ts).max())] if len(ts) > 1 else []))
            if worst > self._gap:
                meta["vision_missing"] = "gap"
                meta["vision_gap_s"] = worst / NS
            else:
                n = self.config.num_frames
                span = end - start
                instants = start + ((2 * np.arange(n, dtype=np.int64) + 1) * span) // (2 * n)
                idx = self._nearest(ts, instants)
                shape = sel[-1].value.shape  # the newest frame's size
                frames = np.stack([_frame_in_shape(sel[j], shape) for j in idx])
                frame_stamps = ts[idx].copy()
                g = int(self._nearest(ts, np.array([start + span // 2], dtype=np.int64))[0])
                global_frame = sel[g].value.copy()
                meta["global_frame_stamp_ns"] = int(ts[g])
                for f in sel:
                    f.used = True
                distinct = np.unique(idx)
                meta["frames_distinct"] = int(len(distinct))
                meta["frames_in_window"] = int(len(sel))
                rescaled = sum(1 for j in distinct if sel[j].value.shape != shape)
                if rescaled:
                    meta["frames_rescaled"] = int(rescaled)
        # audio
        audio = None
        samples, mask, touched = self._extract_audio(start, end)
        if not mask.any():
            meta["audio_missing"] = "dead" if self._dead("audio") else "no_audio"
        else:
            hole = _longest_false_run(mask)
            if hole > self._fill:
                meta["audio_missing"] = "gap"
                meta["audio_gap_s"] = hole / AUDIO_SAMPLE_RATE
            else:
                audio = samples
                meta["audio_filled_s"] = float((~mask).sum()) / AUDIO_SAMPLE_RATE
                for c in touched:
                    c.used = True
        if frames is None and audio is None:
            self.counter.event(f"windows_skipped_{source}_no_sensor_data")
            return None
        # text
        transcript = None
        texts = self._texts.overlapping(start, end)
        if texts:
            transcript = " ".join(t.value for t in texts)
            for t in texts:
                t.used = True
        return Window(start_ns=int(start), end_ns=int(end), frames=frames, frame_stamps_ns=frame_stamps,
                      global_frame=global_frame, audio=audio, transcript=transcript, source=source,
                      index=0, meta=meta)

    @staticmethod
    def _nearest(ts: np.ndarray, t: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(ts, t)
        right = np.clip(pos, 0, len(ts) - 1)
        left = np.clip(pos - 1, 0, len(ts) - 1)
        choose_left = np.abs(t - ts[left]) <= np.abs(ts[right] - t)
        return np.where(choose_left, left, right)

    # ------------------------------------------------------------------ VAD
    def _feed_vad(self, final: bool) -> None:
        if self.vad is None or not len(self._audio):
            return
        ne = self._newest_end["audio"]
        flush = final or self._dead("audio")
        until = ne if flush else ne - self._late
        cursor = self._vad_fed
        segs: list[tuple[int, int]] = []
        chunks = iter(self._audio) if cursor is None else self._audio.scan_from(cursor)
        for c in chunks:
            if c.start >= until:
                break
            if cursor is None:
                cursor = c.start
            if c.end <= cursor:
                continue
            samples = c.value
            if c.start - cursor > self._fill * NS_PER_SAMPLE:
                segs += self.vad.flush()
                cursor = c.start
            elif c.start > cursor:
                z = (c.start - cursor) // NS_PER_SAMPLE
                if z:
                    segs += self.vad.process(cursor, np.zeros(z, dtype=np.float32))
                    cursor += z * NS_PER_SAMPLE
            a = max(0, int(round((cursor - c.start) / NS_PER_SAMPLE)))
            b = min(len(samples), (until - c.start) // NS_PER_SAMPLE)
            if b > a:
                segs += self.vad.process(cursor, samples[a:b])
                cursor += (b - a) * NS_PER_SAMPLE
        self._vad_fed = cursor
        if flush and self.vad.in_speech:
            segs += self.vad.flush()
        for s, e in segs:
            self._add_vad_segment(s, e)

    def _add_vad_segment(self, s: int, e: int) -> None:
        self.counter.event("vad_segments")
        pieces = max(1, -(-(e - s) // self._max_speech))
        step = (e - s) // pieces
        for p in range(pieces):
            a = s + p * step
            b = e if p == pieces - 1 else a + step
            if b - a < self._min_speech:
                mid = (a + b) // 2
                a = mid - self._min_speech // 2
                if self._epoch_start is not None and a < self._epoch_start:
                    a = self._epoch_start
                b = a + self._min_speech
            self._vad_pending.append((a, b))
        self._vad_pending.sort(key=lambda w: (w[1], w[0]))

    # ------------------------------------------------------------------ poll
    def poll(self) -> list[Window]:
        """Every window that can be cut now, ordered by end time (then start)."""
        with self._lock:
            return self._cut(final=False)

    def flush(self) -> list[Window]:
        """Cut what the data allows without waiting for more (end of a bag, node deactivation), including
        the short last window of the data (see the module docstring)."""
        with self._lock:
            return self._cut(final=True)

    def _cut_fixed(self, final: bool, out: list[Window]) -> None:
        while True:
            s = self._fixed_next
            e = s + self._W
            first = self._first_data_at_or_after(s)
            if first is None:
                break
            if first >= e:
                k = (first - e) // self._hop + 1
                self.counter.event("windows_skipped_no_data", int(k))
                self._fixed_next = s + k * self._hop
                continue
            if not self._ready(e, final):
                break
            w = self._build(s, e, "fixed")
            self._fixed_next = s + self._hop
            self._fixed_covered = e
            if w is not None:
                out.append(w)
        if final:
            self._cut_fixed_tail(out)

    def _cut_fixed_tail(self, out: list[Window]) -> None:
        """At the end of the data: the next grid window cut short at the data's end, when the windows cut
        so far leave more than lateness_s of it uncovered (a recording shorter than window_s: all of it)."""
        e = self._now
        if self._fixed_covered is not None and e - self._fixed_covered <= self._late:
            # within the out-of-order tolerance that every window already accepts at its edges (e.g. the
            # 64 ms of AAC padding a clip's audio ends with): not worth a second, overlapping window
            return
        s = self._fixed_next
        if s == self._fixed_first:  # nothing cut or skipped yet: start with the data, not the grid
            s = min(s, self._epoch_start)
        first = self._first_data_at_or_after(s)
        if first is None or first >= e:
            return
        if e - s < self._min_window:
            if self._tail_tried != e:  # once per end of data, however often flush() is called
                self.counter.event("windows_skipped_too_short")
                self._tail_tried = e
            return
        w = self._build(s, e, "fixed")
        self._fixed_next += self._hop  # stays on the grid; the next full window would overlap this one
        self._fixed_covered = e
        if w is not None:
            w.meta["short_window"] = "end_of_data"
            out.append(w)

    def _cut(self, final: bool) -> list[Window]:
        out: list[Window] = []
        if self._now is None:
            return out
        if self._use_vad:
            self._feed_vad(final)
        if self._fixed:
            self._cut_fixed(final, out)
        if self._use_vad:
            keep = []
            for s, e in self._vad_pending:
                if final and e > self._now:
                    e = self._now  # the data ends inside the segment: cut it at the end
                    if e - s < self._min_window:
                        self.counter.event("windows_skipped_too_short")
                        continue
                if e > s and self._ready(e, final):
                    w = self._build(s, e, "vad")
                    if w is not None:
                        if final and e == self._now:
                            w.meta["short_window"] = "end_of_data"
                        out.append(w)
                elif e > s:
                    keep.append((s, e))
            self._vad_pending = keep
        out.sort(key=lambda w: (w.end_ns, w.start_ns))
        for w in out:
            w.index = self._index
            self._index += 1
        self._evict()
        return out

    # ------------------------------------------------------------------ eviction
    def _evict(self) -> None:
        horizons = []
        if self._fixed and self._fixed_next is not None:
            horizons.append(self._fixed_next)
        if self._use_vad:
            horizons += [s for s, _ in self._vad_pending]
            pad_s = getattr(getattr(self.vad, "config", None), "speech_pad_s", 0.5)
            back = self._min_speech + _ns(pad_s) + 2 * 512 * NS_PER_SAMPLE
            open_start = self.vad.open_segment_start_ns
            if open_start is not None:
                horizons.append(open_start - back)
            if self._vad_fed is not None:
                horizons.append(self._vad_fed - back)
            elif self._epoch_start is not None:
                horizons.append(self._epoch_start)
        natural = min(horizons) if horizons else self._now
        keep_from = max(natural, self._now - self._max_buf)
        self._keep_from = keep_from

        def reason(item: Item) -> str:
            return "outside_windows" if item.start < natural else "buffer_limit"

        for buf in self._buffers.values():
            buf.evict_before(keep_from, reason)

    # ------------------------------------------------------------------ introspection
    def accounting(self) -> dict:
        """Per stream: accepted, used (evicted after use), evicted (unused, any reason), buffered, lost.

        lost = accepted - used - evicted - buffered must be 0: nothing accepted disappears uncounted.
        """
        with self._lock:
            out = {}
            for s in STREAMS:
                buf = self._buffers[s]
                acc = self.counter.accepted(s)
                ev = self.counter.evicted(s)
                out[s] = {"accepted": acc, "used": buf.used_evicted, "evicted": ev, "buffered": len(buf),
                          "lost": acc - buf.used_evicted - ev - len(buf)}
            return out

    def stats(self) -> dict:
        """Small status dict for /diagnostics."""
        with self._lock:
            return {
                "now_ns": self._now,
                "buffered_frames": len(self._frames),
                "buffered_audio_s": sum(len(c.value) for c in self._audio) / AUDIO_SAMPLE_RATE,
                "buffered_transcripts": len(self._texts),
                "frames_dead": self._now is not None and self._dead("frames"),
                "audio_dead": self._now is not None and self._dead("audio"),
                "vad_backend": getattr(self.vad, "backend", None),
                "vad_in_speech": bool(self.vad.in_speech) if self.vad is not None else None,
                "windows_emitted": self._index,
            }
