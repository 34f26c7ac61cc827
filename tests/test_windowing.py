"""Window cutting by sensor stamps, and each time fault of issue 8 item 2.

Frames carry their own stamp (and an epoch marker) in their pixels and audio samples are a function of
their absolute capture time, so each window can be checked against what SHOULD be in it, computed
independently of the windowing code.
"""
import shutil
import subprocess
import wave

import numpy as np
import pytest

from emotion_ros.ingest.window import MODALITY_AUDIO, MODALITY_TEXT, MODALITY_VISION
from emotion_ros.ingest.windowing import NS, NS_PER_SAMPLE, Windower, WindowingConfig, clean_transcript

T0 = 1_700_000_000 * NS  # a realistic epoch stamp, a multiple of one 16 kHz sample period
FRAME_SHAPE = (2, 6, 3)


def frame_for(stamp: int, epoch: int = 0) -> np.ndarray:
    f = np.zeros(FRAME_SHAPE, np.uint8)
    flat = f.reshape(-1)
    flat[:8] = np.frombuffer(int(stamp).to_bytes(8, "little"), np.uint8)
    flat[8] = epoch
    return f


def decode_frame(f: np.ndarray) -> tuple[int, int]:
    flat = f.reshape(-1)
    return int.from_bytes(flat[:8].tobytes(), "little"), int(flat[8])


def audio_value(t_ns, epoch: int = 0):
    k = (np.asarray(t_ns, dtype=np.int64) - T0) // NS_PER_SAMPLE
    v = ((k % 997) / 997.0 - 0.5).astype(np.float32)
    return v if epoch == 0 else np.float32(0.5) * v + np.float32(0.25)


class Sim:
    """Builds sensor events with arrival times and replays them into a Windower, polling after each push."""

    def __init__(self):
        self.events = []  # (arrival_ns, order, kind, stamp, payload)
        self._n = 0
        self.frames = {}  # (epoch) -> sorted stamps pushed
        self.chunks = {}  # (epoch) -> list of (start, end)

    def _add(self, arrival, kind, stamp, payload):
        self.events.append((int(arrival), self._n, kind, int(stamp), payload))
        self._n += 1

    def camera(self, start_s, end_s, fps, t_base=T0, epoch=0, arrival_offset_s=0.0, latency_s=0.005):
        n = int(round((end_s - start_s) * fps))
        for i in range(n):
            st = t_base + int(round((start_s + i / fps) * NS))
            self.frames.setdefault(epoch, []).append(st)
            self._add(st + int((latency_s + arrival_offset_s) * NS), "f", st, frame_for(st, epoch))

    def mic(self, start_s, end_s, chunk_s, t_base=T0, epoch=0, arrival_offset_s=0.0, values=None):
        per = int(round(chunk_s * 16000))
        first = int(round(start_s * 16000))
        last = int(round(end_s * 16000))
        for k0 in range(first, last, per):
            k1 = min(k0 + per, last)
            st = t_base + k0 * NS_PER_SAMPLE
            times = st + np.arange(k1 - k0, dtype=np.int64) * NS_PER_SAMPLE
            x = audio_value(times, epoch) if values is None else values[k0:k1]
            self.chunks.setdefault(epoch, []).append((st, st + (k1 - k0) * NS_PER_SAMPLE))
            self._add(st + (k1 - k0) * NS_PER_SAMPLE + int(arrival_offset_s * NS), "a", st, x)

    def transcript(self, stamp, text, arrival, end=None):
        self._add(arrival, "t", stamp, (text, end))

    def run(self, w: Windower, flush=True, on_poll=None):
        out = []
        for arrival, _, kind, stamp, payload in sorted(self.events, key=lambda e: (e[0], e[1])):
            if kind == "f":
                w.push_frame(stamp, payload)
            elif kind == "a":
                w.push_audio(stamp, payload)
            else:
                w.push_transcript(stamp, payload[0], end_ns=payload[1])
            got = w.poll()
            for win in got:
                win.meta["emitted_at"] = arrival
                win.meta["poll"] = arrival
            out += got
            if on_poll:
                on_poll(w)
        if flush:
            got = w.flush()
            for win in got:
                win.meta["poll"] = "flush"
            out += got
        return out


def check_window(win, cfg: WindowingConfig, frame_stamps: list[int], epoch: int = 0):
    """Everything a window holds lies inside it and is what the nearest-frame rule picks."""
    s, e = win.start_ns, win.end_ns
    assert s < e
    if win.frames is not None:
        assert win.frames.shape == (cfg.num_frames,) + FRAME_SHAPE
        assert len(win.frame_stamps_ns) == cfg.num_frames
        inside = np.array([t for t in frame_stamps if s <= t < e], dtype=np.int64)
        assert len(inside) > 0
        for i, (f, st) in enumerate(zip(win.frames, win.frame_stamps_ns)):
            stamp, ep = decode_frame(f)
            assert stamp == st and ep == epoch
            assert s <= st < e
            # relative to s: float64 cannot tell 1 ns apart at epoch stamps (~1.7e18), ties must be exact
            instant = (2 * i + 1) * (e - s) / (2 * cfg.num_frames)
            assert abs(int(st) - s - instant) == np.abs(inside - s - instant).min()
        gstamp, gep = decode_frame(win.global_frame)
        assert gep == epoch and s <= gstamp < e
        assert win.meta["global_frame_stamp_ns"] == gstamp
        assert abs(gstamp - s - (e - s) / 2) == np.abs(inside - s - (e - s) / 2).min()
        assert np.diff(win.frame_stamps_ns).min() >= 0
    if win.audio is not None:
        n = int(round((e - s) / NS_PER_SAMPLE))
        assert win.audio.shape == (n,) and win.audio.dtype == np.float32
        times = s + np.arange(n, dtype=np.int64) * NS_PER_SAMPLE
        expect = audio_value(times, epoch)
        filled = win.audio != expect
        # anything that is not the true signal must be a zero-filled hole no longer than allowed
        assert np.all(win.audio[filled] == 0)
        assert filled.sum() <= cfg.max_audio_fill_s * 16000 + 1


def assert_no_loss(w: Windower):
    for stream, acc in w.accounting().items():
        assert acc["lost"] == 0, (stream, acc)


def fixed_starts(wins):
    return [w.start_ns for w in wins if w.source == "fixed"]


# ------------------------------------------------------------------------------------------ basics

def test_fixed_windows_cover_the_stream_in_hops():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 6, 30)
    sim.mic(0, 6, 0.1)
    w = Windower(cfg)
    wins = sim.run(w, flush=False)
    starts = fixed_starts(wins)
    assert starts == [T0 + k * NS // 2 for k in range(len(starts))]
    assert len(starts) >= 8  # windows ending by ~5.9 s
    for win in wins:
        assert win.modalities == MODALITY_AUDIO | MODALITY_VISION
        assert win.end_ns - win.start_ns == 2 * NS
        check_window(win, cfg, sim.frames[0])
        # cut soon after the data covered it: lateness + one chunk + one frame
        assert win.meta["emitted_at"] - win.end_ns <= int(0.25 * NS)
    assert [win.index for win in wins] == list(range(len(wins)))
    assert w.counter.dropped() == 0
    assert_no_loss(w)


@pytest.mark.parametrize("fps", [5, 30])
@pytest.mark.parametrize("chunk_s", [0.01, 1.0])
def test_camera_rates_and_chunk_sizes(fps, chunk_s):
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 8, fps)
    sim.mic(0, 8, chunk_s)
    w = Windower(cfg)
    wins = sim.run(w)
    starts = fixed_starts(wins)
    assert starts == [T0 + k * NS // 2 for k in range(13)]  # windows [0,2) .. [6,8)
    for win in wins:
        assert win.modalities == MODALITY_AUDIO | MODALITY_VISION, win.meta
        check_window(win, cfg, sim.frames[0])
        assert win.meta["frames_distinct"] == min(16, 2 * fps)
        assert win.meta["audio_filled_s"] == 0
    assert w.counter.dropped() == 0
    assert_no_loss(w)


def test_no_frame_shared_by_windows_that_do_not_overlap():
    cfg = WindowingConfig(window_s=1.0, hop_s=1.0)
    sim = Sim()
    sim.camera(0, 6, 30)
    sim.mic(0, 6, 0.1)
    wins = sim.run(Windower(cfg))
    seen = {}
    for win in wins:
        for st in set(win.frame_stamps_ns.tolist()):
            assert st not in seen, "frame reused across disjoint windows"
            seen[st] = win.index
    # with overlap (default hop 0.5 of 2 s), sharing happens only inside the intersection
    cfg = WindowingConfig()
    wins = sim.run(Windower(cfg))
    for a in wins:
        for b in wins:
            if a is b:
                continue
            for st in set(a.frame_stamps_ns.tolist()) & set(b.frame_stamps_ns.tolist()):
                assert max(a.start_ns, b.start_ns) <= st < min(a.end_ns, b.end_ns)


# ------------------------------------------------------------------------------------------ out of order

def test_out_of_order_within_tolerance_is_inserted():
    cfg = WindowingConfig()
    ref = Sim()
    ref.camera(0, 5, 30)
    ref.mic(0, 5, 0.01)
    in_order = ref.run(Windower(cfg))
    # swap the arrival of every other pair of frames and of audio chunks (stamps stay true)
    sim = Sim()
    sim.frames, sim.chunks = ref.frames, ref.chunks
    events = sorted(ref.events, key=lambda e: (e[0], e[1]))
    by_kind = {"f": [e for e in events if e[2] == "f"], "a": [e for e in events if e[2] == "a"]}
    for lst in by_kind.values():
        for i in range(0, len(lst) - 1, 4):
            a, b = lst[i], lst[i + 1]
            lst[i], lst[i + 1] = (b[0], b[1], a[2], a[3], a[4]), (a[0], a[1], b[2], b[3], b[4])
    sim.events = by_kind["f"] + by_kind["a"]
    w = Windower(cfg)
    swapped = sim.run(w)
    assert w.counter.dropped() == 0
    assert [x.start_ns for x in swapped] == [x.start_ns for x in in_order]
    for x, y in zip(swapped, in_order):
        np.testing.assert_array_equal(x.frame_stamps_ns, y.frame_stamps_ns)
        np.testing.assert_array_equal(x.audio, y.audio)
        check_window(x, cfg, ref.frames[0])
    assert_no_loss(w)


def test_out_of_order_beyond_tolerance_dropped_and_counted():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 5, 30)
    sim.mic(0, 5, 0.2)
    # one frame and one 200 ms chunk arrive 0.5 s late (beyond lateness 0.1 s, within jump 1 s)
    late_f = next(i for i, e in enumerate(sim.events) if e[2] == "f" and e[3] >= T0 + 2 * NS)
    late_a = next(i for i, e in enumerate(sim.events) if e[2] == "a" and e[3] >= T0 + 3 * NS)
    for i in (late_f, late_a):
        a, o, k, s, p = sim.events[i]
        sim.events[i] = (a + NS // 2, o, k, s, p)
    lost_frame = sim.events[late_f][3]
    w = Windower(cfg)
    wins = sim.run(w)
    assert w.counter.dropped("stamp_out_of_order") == 2
    assert w.counter.dropped() == 2
    frames_kept = [t for t in sim.frames[0] if t != lost_frame]
    for win in wins:
        assert lost_frame not in win.frame_stamps_ns
        check_window(win, cfg, frames_kept)
    # the missing 200 ms chunk (> max_audio_fill_s) makes audio missing, not zero-filled, where it belongs
    hole = sim.events[late_a][3]
    for win in wins:
        if win.start_ns <= hole < win.end_ns:
            assert win.audio is None and win.meta["audio_missing"] == "gap"
        elif win.end_ns <= hole or win.start_ns > hole + NS // 5:
            assert win.audio is not None
    assert_no_loss(w)


def test_duplicate_stamps_dropped():
    w = Windower(WindowingConfig())
    assert w.push_frame(T0, frame_for(T0))
    assert not w.push_frame(T0, frame_for(T0))
    assert w.push_audio(T0, np.zeros(160, np.float32))
    assert not w.push_audio(T0, np.zeros(160, np.float32))
    assert w.counter.dropped("stamp_duplicate") == 2
    assert_no_loss(w)


# ------------------------------------------------------------------------------------------ clock jump

def test_clock_jump_back_bag_loop_resets_and_recovers():
    cfg = WindowingConfig()
    sim = Sim()
    loop = 4.0
    sim.camera(0, loop, 30, epoch=0)
    sim.mic(0, loop, 0.1, epoch=0)
    # the bag loops: same stamps again, different content, arriving after the first pass
    sim.camera(0, loop, 30, epoch=1, arrival_offset_s=loop + 0.2)
    sim.mic(0, loop, 0.1, epoch=1, arrival_offset_s=loop + 0.2)
    # an old-epoch chunk still in flight is delivered right after the first looped frame
    last_old = max((e for e in sim.events if e[2] == "a" and e[0] < T0 + int((loop + 0.05) * NS)), key=lambda e: e[0])
    sim.events.remove(last_old)
    sim.events.append((T0 + int((loop + 0.2 + 0.006) * NS), 10**9, "a", last_old[3], last_old[4]))
    epoch_of = {}
    w = Windower(cfg)
    wins = []
    for arrival, _, kind, stamp, payload in sorted(sim.events, key=lambda e: (e[0], e[1])):
        (w.push_frame if kind == "f" else w.push_audio)(stamp, payload)
        epoch = 1 if arrival >= T0 + int((loop + 0.2) * NS) else 0
        for win in w.poll():
            epoch_of[win.index] = epoch
            wins.append(win)
    for win in w.flush():
        epoch_of[win.index] = 1
        wins.append(win)
    assert w.counter.snapshot()["events"]["clock_jump_back"] == 1
    assert w.counter.dropped("stamp_before_clock_jump") == 1
    first = [x for x in wins if epoch_of[x.index] == 0]
    second = [x for x in wins if epoch_of[x.index] == 1]
    assert len(first) >= 3 and len(second) == len(first) + 1  # the 2nd pass ends with a flush
    assert fixed_starts(second) == [T0 + k * NS // 2 for k in range(len(second))]
    for win in first:
        check_window(win, cfg, sim.frames[0], epoch=0)
    for win in second:
        assert win.modalities == MODALITY_AUDIO | MODALITY_VISION
        check_window(win, cfg, sim.frames[1], epoch=1)  # nothing of the first pass leaks in
    assert w.counter.evicted("frames") + w.counter.evicted("audio") > 0  # the reset is counted
    assert_no_loss(w)


# ------------------------------------------------------------------------------------------ gaps and outages

def test_gap_of_several_seconds_is_never_bridged():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 4, 30)
    sim.mic(0, 4, 0.1)
    sim.camera(9, 13, 30)
    sim.mic(9, 13, 0.1)
    w = Windower(cfg)
    wins = sim.run(w)
    gap_lo, gap_hi = T0 + 4 * NS, T0 + 9 * NS
    for win in wins:
        check_window(win, cfg, sim.frames[0])
        assert not (gap_lo <= win.start_ns and win.end_ns <= gap_hi), "window inside the gap"
        if win.frames is not None:
            st = win.frame_stamps_ns
            assert st.max() < gap_lo or st.min() >= gap_hi, "frames from both sides of the gap"
    after = [x for x in wins if x.start_ns >= gap_hi]
    assert len(after) >= 5 and all(x.modalities == MODALITY_AUDIO | MODALITY_VISION for x in after)
    assert w.counter.snapshot()["events"].get("windows_skipped_no_data", 0) > 0
    assert_no_loss(w)


def test_huge_forward_gap_is_skipped_in_constant_time():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 3, 30)
    sim.mic(0, 3, 0.1)
    far = 10**6  # 11.6 days later
    sim.camera(far, far + 3, 30)
    sim.mic(far, far + 3, 0.1)
    w = Windower(cfg)
    wins = sim.run(w)
    assert len(wins) < 20
    assert any(x.start_ns >= T0 + far * NS for x in wins)
    assert_no_loss(w)


def test_camera_stops_then_resumes_audio_only_meanwhile():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 3, 30)
    sim.camera(7, 12, 30)
    sim.mic(0, 12, 0.1)
    w = Windower(cfg)
    wins = sim.run(w)
    assert fixed_starts(wins) == [T0 + k * NS // 2 for k in range(21)]  # nothing skipped: audio continues
    for win in wins:
        check_window(win, cfg, sim.frames[0])
        s, e = (win.start_ns - T0) / NS, (win.end_ns - T0) / NS
        assert win.audio is not None
        if s >= 3.0 and e <= 7.0:
            assert win.modalities == MODALITY_AUDIO
            assert win.meta["vision_missing"] in ("dead", "no_frames")
            # not held back until the camera resumed: cut within lateness+timeout+chunk of its end
            assert win.meta["emitted_at"] - win.end_ns <= int(1.3 * NS)
        if s >= 7.0:
            assert win.modalities == MODALITY_AUDIO | MODALITY_VISION
        if s < 3.0 < e:  # camera went off inside: the hole from its last frame to the end decides
            assert (win.frames is None) == (e - (3.0 - 1 / 30) > cfg.max_gap_s + 1e-9)
        if s < 7.0 < e:  # camera came back inside: the hole from the start to its first frame decides
            assert (win.frames is None) == (7.0 - s > cfg.max_gap_s + 1e-9)
    assert_no_loss(w)


def test_microphone_stops_then_resumes_vision_only_meanwhile():
    cfg = WindowingConfig()
    sim = Sim()
    sim.mic(0, 3, 0.1)
    sim.mic(7, 12, 0.1)
    sim.camera(0, 12, 30)
    w = Windower(cfg)
    wins = sim.run(w)
    assert fixed_starts(wins) == [T0 + k * NS // 2 for k in range(21)]
    for win in wins:
        check_window(win, cfg, sim.frames[0])
        s, e = (win.start_ns - T0) / NS, (win.end_ns - T0) / NS
        assert win.frames is not None
        if s >= 3.0 and e <= 7.0:
            assert win.modalities == MODALITY_VISION
        if (s < 3.0 < e and e - 3.0 > cfg.max_audio_fill_s) or (s < 7.0 < e and 7.0 - s > cfg.max_audio_fill_s):
            assert win.audio is None and win.meta["audio_missing"] == "gap"
        if s >= 7.0:
            assert win.modalities == MODALITY_AUDIO | MODALITY_VISION
    assert_no_loss(w)


def test_small_audio_holes_zero_filled():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 5, 30)
    sim.mic(0, 5, 0.01)
    # remove two 10 ms chunks (20 ms hole, below max_audio_fill_s = 0.1)
    hole = [e for e in sim.events if e[2] == "a" and T0 + 2 * NS <= e[3] < T0 + 2 * NS + 2 * NS // 100]
    for e in hole:
        sim.events.remove(e)
    w = Windower(cfg)
    wins = sim.run(w)
    assert all(x.audio is not None for x in wins)
    hit = [x for x in wins if x.start_ns <= T0 + 2 * NS < x.end_ns]
    assert hit and all(abs(x.meta["audio_filled_s"] - 0.02) < 1e-9 for x in hit)
    for x in wins:
        check_window(x, cfg, sim.frames[0])
    assert_no_loss(w)


# ------------------------------------------------------------------------------------------ memory

def test_memory_bounded_on_a_long_run():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 90, 30)
    sim.mic(0, 90, 0.02)
    w = Windower(cfg)
    peak = {"frames": 0, "audio_s": 0.0}

    def track(win):
        st = win.stats()
        peak["frames"] = max(peak["frames"], st["buffered_frames"])
        peak["audio_s"] = max(peak["audio_s"], st["buffered_audio_s"])

    wins = sim.run(w, on_poll=track)
    assert len(wins) == 177
    # window 2 s + hop 0.5 s + lateness and arrival jitter: never the whole run
    assert peak["frames"] <= 30 * 2.8 and peak["audio_s"] <= 2.8
    acc = w.accounting()
    assert acc["frames"]["accepted"] == 2700 and acc["frames"]["used"] > 2600
    assert_no_loss(w)


def test_frame_cap_evicts_with_reason():
    cfg = WindowingConfig(max_buffer_frames=20)
    sim = Sim()
    sim.camera(0, 5, 30)
    sim.mic(0, 5, 0.1)
    w = Windower(cfg)
    wins = sim.run(w)
    assert w.accounting()["frames"]["buffered"] <= 20
    assert w.counter.snapshot()["evicted"]["frames.buffer_limit"] > 0
    for win in wins:
        check_window(win, cfg, sim.frames[0])
        assert win.frames is None  # 20 frames cannot cover 2 s at 30 Hz without a hole
    assert_no_loss(w)


def test_resolution_change_keeps_frame_buffer():
    w = Windower(WindowingConfig())
    assert w.push_frame(T0, np.zeros((4, 4, 3), np.uint8))
    assert w.push_frame(T0 + NS // 30, np.zeros((8, 8, 3), np.uint8))
    assert w.counter.snapshot()["events"]["frame_shape_changed"] == 1
    assert w.accounting()["frames"]["buffered"] == 2  # nothing thrown away
    assert w.counter.evicted("frames") == 0
    assert_no_loss(w)


def test_resolution_change_mid_window_keeps_vision_in_every_window():
    """A camera switching from 4:3 to 16:9 (and back) inside windows: every window keeps vision; frames
    of a window come in its newest frame's size, older ones letterboxed (aspect kept, black bars)."""
    sizes = [(0.0, (48, 64)), (1.3, (36, 64)), (3.7, (48, 64))]  # (from s, (H, W)): 4:3, 16:9, 4:3

    def size_at(t_s):
        return [hw for t, hw in sizes if t_s >= t][-1]

    w = Windower(WindowingConfig())
    wins = []
    for k in range(30 * 6):
        t_s = k / 30
        st = T0 + int(round(t_s * NS))
        h, wd = size_at(t_s)
        img = np.full((h, wd, 3), 200, np.uint8)
        assert w.push_frame(st, img)
        wins += w.poll()
    w.push_audio(T0, np.zeros(16000 * 6, np.float32))
    wins += w.poll() + w.flush()
    assert len(wins) >= 9
    assert w.counter.snapshot()["events"]["frame_shape_changed"] == 2
    assert w.counter.evicted("frames") == 0
    mixed = 0
    for win in wins:
        assert win.frames is not None, win.meta  # vision in every window
        newest = int(win.frame_stamps_ns.max())
        h, wd = size_at((newest - T0) / NS)
        assert win.frames.shape[1:] == (h, wd, 3)
        for f, st in zip(win.frames, win.frame_stamps_ns):
            oh, ow = size_at((int(st) - T0) / NS)
            if (oh, ow) == (h, wd):
                assert (f == 200).all()
            else:  # letterboxed: the content keeps its aspect ratio, the rest is black bars
                mixed += 1
                scale = min(h / oh, wd / ow)
                nh, nw = round(oh * scale), round(ow * scale)
                top, left = (h - nh) // 2, (wd - nw) // 2
                assert (f[top + 1:top + nh - 1, left + 1:left + nw - 1] == 200).all()
                assert f[:top].sum() == 0 and f[top + nh:].sum() == 0
                assert f[:, :left].sum() == 0 and f[:, left + nw:].sum() == 0
        if win.meta.get("frames_rescaled"):
            assert win.start_ns < T0 + int(1.3 * NS) < win.end_ns or win.start_ns < T0 + int(3.7 * NS) < win.end_ns
    assert mixed > 0
    assert_no_loss(w)


# ------------------------------------------------------------------------------------------ transcripts

def test_transcripts_join_in_window_and_late_ones_are_counted():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 6, 30)
    sim.mic(0, 6, 0.1)
    sim.transcript(T0 + int(1.2 * NS), "are you\x1b[31m ok", arrival=T0 + int(1.3 * NS))
    sim.transcript(T0 + NS, "hello", arrival=T0 + int(1.4 * NS))  # arrives after the later one
    sim.transcript(T0 + NS // 10, "too late", arrival=T0 + int(5.5 * NS))
    w = Windower(cfg)
    wins = sim.run(w)
    for win in wins:
        has = win.start_ns <= T0 + NS < win.end_ns
        if has:
            assert win.transcript == "hello are you [31m ok"
            assert win.modalities & MODALITY_TEXT
        elif win.start_ns > T0 + int(1.2 * NS):
            assert win.transcript is None
    assert w.counter.dropped("transcript_too_late") == 1
    assert w.counter.snapshot()["events"]["transcript_control_chars_replaced"] == 1
    assert_no_loss(w)


@pytest.mark.parametrize("text,reason", [
    ("", "transcript_empty"), (" \t\n\x00 ", "transcript_empty"), ("x" * 5000, "transcript_too_long"),
    ("bad \ud800 surrogate", "transcript_invalid_unicode"), (b"\xff\xfe", "transcript_invalid_utf8"),
    (42, "transcript_bad_type"), (None, "transcript_bad_type"),
])
def test_transcript_rejections(text, reason):
    w = Windower(WindowingConfig())
    assert not w.push_transcript(T0, text)
    assert w.counter.dropped(reason) == 1
    assert w.push_transcript(T0, "fine")  # the next good one goes through
    assert clean_transcript(b"caf\xc3\xa9")[0] == "café"


# ------------------------------------------------------------------------------------------ bad pushes

@pytest.mark.parametrize("call,reason", [
    (lambda w: w.push_frame(0, frame_for(1)), "stamp_zero"),
    (lambda w: w.push_frame(-5, frame_for(1)), "stamp_invalid"),
    (lambda w: w.push_frame(1.5e18, frame_for(1)), "stamp_invalid"),
    (lambda w: w.push_frame(T0, np.zeros((4, 4), np.uint8)), "frame_bad_array"),
    (lambda w: w.push_frame(T0, np.zeros((4, 4, 3), np.float32)), "frame_bad_array"),
    (lambda w: w.push_frame(T0, np.zeros((0, 4, 3), np.uint8)), "frame_bad_array"),
    (lambda w: w.push_audio(T0, np.array([0.1, np.nan], np.float32)), "audio_non_finite"),
    (lambda w: w.push_audio(T0, np.array([0.1, 2.0], np.float32)), "audio_out_of_range"),
    (lambda w: w.push_audio(T0, np.zeros(0, np.float32)), "audio_empty"),
    (lambda w: w.push_audio(T0, np.zeros(4, np.int16)), "audio_bad_array"),
    (lambda w: w.push_image(T0, "rgb8", 2, 2, 5, bytes(10)), "image_step_too_small"),
    (lambda w: w.push_audio_chunk(T0, 16000, 1, "S16LE", bytes(3)), "audio_odd_byte_count"),
    (lambda w: w.push_compressed_image(T0, "png", b""), "compressed_empty"),
])
def test_bad_pushes_are_counted_not_raised(call, reason):
    w = Windower(WindowingConfig())
    assert call(w) is False
    assert w.counter.snapshot()["dropped"] == {reason: 1}
    assert w.push_frame(T0, frame_for(T0))


def test_config_validation():
    with pytest.raises(ValueError):
        WindowingConfig(mode="sometimes")
    with pytest.raises(ValueError):
        WindowingConfig(hop_s=0)
    with pytest.raises(ValueError):
        WindowingConfig(max_buffer_s=2.0)
    with pytest.raises(ValueError):
        WindowingConfig(lateness_s=2.0)


# ------------------------------------------------------------------------------------------ VAD windows

def _espeak_16k(text: str, tmp_path) -> np.ndarray:
    from emotion_ros.ingest.audio_conversion import chunk_to_mono

    path = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=60)
    with wave.open(str(path)) as wf:
        raw = wf.readframes(wf.getnframes())
        return chunk_to_mono(wf.getframerate(), wf.getnchannels(), "S16LE", raw).samples


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
@pytest.mark.parametrize("mode", ["vad", "both"])
def test_vad_windows_around_real_speech(mode, tmp_path):
    speech = _espeak_16k("I am so happy to see you again, this is wonderful.", tmp_path)
    lead, tail = 1.5, 2.0
    signal = np.concatenate([np.zeros(int(lead * 16000), np.float32), speech,
                             np.zeros(int(tail * 16000), np.float32)])
    total = len(signal) / 16000
    active = np.flatnonzero(np.abs(speech) > 0.02)
    sp_lo, sp_hi = lead + active[0] / 16000, lead + active[-1] / 16000
    cfg = WindowingConfig(mode=mode)
    sim = Sim()
    sim.camera(0, total, 30)
    sim.mic(0, total, 0.02, values=signal)
    w = Windower(cfg)
    wins = sim.run(w)
    vad_wins = [x for x in wins if x.source == "vad"]
    assert vad_wins, w.counter.snapshot()
    assert w.vad.backend == "silero"
    lo = min(x.start_ns for x in vad_wins) / NS - T0 / NS
    hi = max(x.end_ns for x in vad_wins) / NS - T0 / NS
    assert lo <= sp_lo + 0.2 and hi >= sp_hi - 0.3, (lo, hi, sp_lo, sp_hi)
    assert lo >= sp_lo - 0.6 and hi <= sp_hi + 0.8  # around the speech, not the whole recording
    for x in vad_wins:
        assert x.end_ns - x.start_ns >= int(cfg.min_speech_s * NS) - 1
        assert x.modalities == MODALITY_AUDIO | MODALITY_VISION
        assert all(x.start_ns <= t < x.end_ns for t in x.frame_stamps_ns)
        k0 = (x.start_ns - T0) // NS_PER_SAMPLE
        np.testing.assert_array_equal(x.audio, signal[k0:k0 + len(x.audio)])
    if mode == "both":
        assert any(x.source == "fixed" for x in wins)
        for p in {x.meta["poll"] for x in wins}:
            ends = [x.end_ns for x in wins if x.meta["poll"] == p]
            assert ends == sorted(ends)  # each poll returns its windows ordered by end
    assert_no_loss(w)


def test_vad_mode_silence_gives_no_windows():
    cfg = WindowingConfig(mode="vad")
    sim = Sim()
    sim.camera(0, 5, 30)
    sim.mic(0, 5, 0.1, values=np.zeros(5 * 16000, np.float32))
    w = Windower(cfg)
    assert sim.run(w) == []
    assert w.accounting()["audio"]["evicted"] > 0  # silence was looked at and let go, counted
    assert_no_loss(w)


def test_header_stamp_conversion_and_transcript_cap():
    from types import SimpleNamespace as Time

    from emotion_ros.ingest.errors import InputError
    from emotion_ros.ingest.stamps import header_stamp_ns

    assert header_stamp_ns(Time(sec=1_700_000_000, nanosec=5)) == T0 + 5
    for bad in (Time(sec=0, nanosec=0), Time(sec=1, nanosec=NS), Time(sec=-1, nanosec=0), object()):
        with pytest.raises(InputError):
            header_stamp_ns(bad)
    w = Windower(WindowingConfig(max_buffer_transcripts=3))
    for i in range(5):  # no sensor data at all: the transcript buffer must still be bounded
        assert w.push_transcript(T0 + i, f"t{i}")
    acc = w.accounting()["transcript"]
    assert acc["buffered"] == 3 and acc["evicted"] == 2
    assert_no_loss(w)


def test_off_grid_start_first_window_is_complete():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0.237, 5, 30)
    sim.mic(0.237, 5, 0.1)
    frames = sim.frames[0]
    w = Windower(cfg)
    wins = sim.run(w)
    assert wins[0].start_ns == T0 + NS // 2  # first grid point after 0.237 - lateness
    assert all(x.modalities == MODALITY_AUDIO | MODALITY_VISION for x in wins)
    for x in wins:
        check_window(x, cfg, frames)


def test_transcript_wait_holds_windows_for_late_text():
    cfg = WindowingConfig(transcript_wait_s=0.8)
    sim = Sim()
    sim.camera(0, 6, 30)
    sim.mic(0, 6, 0.1)
    sim.transcript(T0 + NS // 10, "first", arrival=T0 + NS // 5)  # the stream is now known to exist
    sim.transcript(T0 + int(1.5 * NS), "late words", arrival=T0 + int(2.6 * NS))  # 1.1 s after its stamp
    w = Windower(cfg)
    wins = sim.run(w)
    first = next(x for x in wins if x.start_ns == T0)
    assert first.transcript == "first late words"  # [0, 2) waited until 2.8 s of sensor time
    assert first.meta["emitted_at"] >= T0 + int(2.8 * NS)
    assert_no_loss(w)


def test_threads_push_and_poll_concurrently():
    """Callbacks on executor threads + a polling worker: no exception, counts add up, nothing lost."""
    import threading

    from emotion_ros.ingest.errors import DropCounter

    counter = DropCounter()
    w = Windower(WindowingConfig(), counter=counter)
    errors, wins = [], []

    def cam():
        try:
            for i in range(150):
                st = T0 + i * NS // 30
                w.push_frame(st, frame_for(st))
                counter.event("cam_loop")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def mic():
        try:
            for k in range(50):
                st = T0 + k * NS // 10
                w.push_audio(st, audio_value(st + np.arange(1600, dtype=np.int64) * NS_PER_SAMPLE))
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    def worker(stop):
        while not stop.is_set():
            wins.extend(w.poll())

    stop = threading.Event()
    threads = [threading.Thread(target=cam), threading.Thread(target=mic)]
    poller = threading.Thread(target=worker, args=(stop,))
    poller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    poller.join()
    wins.extend(w.flush())
    assert not errors
    snap = counter.snapshot()
    assert snap["events"]["cam_loop"] == 150
    # the two threads are not interleaved in stamp order, so some items may be dropped as out of order;
    # every one of them is counted, and everything accepted is accounted for
    assert snap["accepted"].get("frames", 0) + snap["accepted"].get("audio", 0) + snap["total_dropped"] == 200
    assert_no_loss(w)
    assert [x.index for x in wins] == list(range(len(wins)))


# ------------------------------------------------------------------------------------------ end of data

def test_recording_shorter_than_a_window_gets_one_window_at_flush():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 1.5, 30)
    sim.mic(0, 1.5, 0.1)
    sim.transcript(T0 + NS // 5, "short", arrival=T0 + NS // 5)
    w = Windower(cfg)
    polled = sim.run(w, flush=False)
    assert polled == []  # no full window fits in 1.5 s
    (win,) = w.flush()
    assert (win.start_ns, win.end_ns) == (T0, T0 + 3 * NS // 2) and win.meta["short_window"] == "end_of_data"
    assert win.modalities == MODALITY_AUDIO | MODALITY_VISION | MODALITY_TEXT
    check_window(win, cfg, sim.frames[0])
    assert w.flush() == []  # flushing again cuts nothing twice
    assert_no_loss(w)


def test_flush_cuts_the_uncovered_tail_on_the_grid_and_resumes_after_it():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 6.3, 30)
    sim.mic(0, 6.3, 0.1)
    w = Windower(cfg)
    wins = sim.run(w)
    full = [x for x in wins if "short_window" not in x.meta]
    tail = [x for x in wins if "short_window" in x.meta]
    assert fixed_starts(full) == [T0 + k * NS // 2 for k in range(9)]  # [0, 2) .. [4, 6)
    assert [(x.start_ns, x.end_ns) for x in tail] == [(T0 + int(4.5 * NS), T0 + int(6.3 * NS))]
    for x in wins:
        check_window(x, cfg, sim.frames[0])
    # the data goes on after the flush (inputs resumed): the grid continues, no window start repeats
    more = Sim()
    more.camera(6.3 + 1 / 30 - 1e-9, 9, 30)
    more.mic(6.3, 9, 0.1)
    later = more.run(w)
    assert later and min(x.start_ns for x in later) == T0 + 5 * NS
    assert len({x.start_ns for x in wins + later}) == len(wins + later)
    assert_no_loss(w)


def test_no_tail_for_a_sliver_within_lateness():
    sim = Sim()
    sim.camera(0, 6.0, 30)
    sim.mic(0, 6.05, 0.05)  # audio padding 50 ms past the last full window: within lateness_s (0.1 s)
    w = Windower(WindowingConfig())
    wins = sim.run(w)
    assert wins and not any("short_window" in x.meta for x in wins)
    assert max(x.end_ns for x in wins) == T0 + 6 * NS
    assert_no_loss(w)


def test_too_short_tail_is_counted_once_not_cut():
    w = Windower(WindowingConfig())
    w.push_frame(T0, frame_for(T0))
    w.push_audio(T0, np.zeros(int(0.3 * 16000), np.float32))
    assert w.flush() == [] and w.flush() == []
    assert w.counter.snapshot()["events"]["windows_skipped_too_short"] == 1
    with pytest.raises(ValueError):
        WindowingConfig(min_window_s=3.0)  # longer than window_s
    assert_no_loss(w)


class _FakeVad:
    """Speech wherever |sample| > 0.1 (enough to drive the windower's VAD path without a model)."""

    backend = "fake"
    open_segment_start_ns = None

    def __init__(self):
        self.reset()

    def reset(self):
        self.in_speech, self._start, self._end = False, None, None

    def process(self, t_ns, samples):
        out = []
        for i in np.flatnonzero(np.abs(samples) > 0.1)[:1]:
            if not self.in_speech:
                self.in_speech, self._start = True, t_ns + int(i) * NS_PER_SAMPLE
        if self.in_speech:
            self._end = t_ns + len(samples) * NS_PER_SAMPLE
        self.open_segment_start_ns = self._start
        return out

    def flush(self):
        seg = [(self._start, self._end)] if self.in_speech else []
        self.reset()
        self.open_segment_start_ns = None
        return seg


def test_vad_segment_running_into_the_end_of_data_is_cut_there():
    cfg = WindowingConfig(mode="vad")
    sim = Sim()
    sim.camera(0, 3.0, 30)
    values = np.zeros(3 * 16000, np.float32)
    values[int(2.6 * 16000):] = 0.5  # speech starts 0.4 s before the recording ends
    sim.mic(0, 3.0, 0.1, values=values)
    w = Windower(cfg, vad=_FakeVad())
    wins = sim.run(w)
    (win,) = wins
    # widened to min_speech_s (1 s) around its centre 2.8 s: [2.3, 3.3), cut at the data's end 3.0
    assert (win.start_ns, win.end_ns) == (T0 + int(2.3 * NS), T0 + 3 * NS)
    assert win.meta["short_window"] == "end_of_data" and win.source == "vad"
    assert win.modalities == MODALITY_AUDIO | MODALITY_VISION
    assert_no_loss(w)


# ------------------------------------------------------------------------------------------ transcript spans

def test_transcript_span_goes_to_every_overlapping_window_and_no_other():
    cfg = WindowingConfig()
    sim = Sim()
    sim.camera(0, 8, 30)
    sim.mic(0, 8, 0.1)
    spans = [(0.0, 3.2, "first utterance"), (3.2, 4.0, "短い"), (4.0, 8.0, "the last one")]
    for a, b, text in spans:
        sim.transcript(T0 + int(a * NS), text, arrival=T0 + int(a * NS), end=T0 + int(b * NS))
    w = Windower(cfg)
    out = sim.run(w)
    assert len(out) == 13 and w.counter.accepted("transcript") == 3
    for win in out:
        expect = [t for a, b, t in spans if T0 + int(a * NS) < win.end_ns and T0 + int(b * NS) > win.start_ns]
        assert win.transcript == " ".join(expect), ((win.start_ns - T0) / NS, win.transcript)
    assert w.accounting()["transcript"]["used"] + w.accounting()["transcript"]["buffered"] == 3
    assert_no_loss(w)


def test_transcript_span_checks_and_late_spans():
    w = Windower(WindowingConfig())
    assert not w.push_transcript(T0 + NS, "backwards", end_ns=T0)
    assert w.counter.dropped("transcript_bad_span") == 1
    assert not w.push_transcript(T0, "zero end", end_ns=0)
    assert w.counter.dropped("stamp_zero") == 1
    assert w.push_transcript(T0, "instant", end_ns=T0)  # end == start: an instant, like no end
    # a span that started long ago but still reaches into the kept data is not too late
    sim = Sim()
    sim.camera(0, 6, 30)
    sim.mic(0, 6, 0.1)
    w = Windower(WindowingConfig())
    sim.run(w, flush=False)
    assert not w.push_transcript(T0 + NS // 10, "over before the kept data", end_ns=T0 + NS // 5)
    assert w.counter.dropped("transcript_too_late") == 1
    assert w.push_transcript(T0 + NS // 10, "still going", end_ns=T0 + 7 * NS)
    more = Sim()
    more.camera(6, 9, 30)
    more.mic(6, 9, 0.1)
    later = more.run(w)
    assert later and all("still going" == x.transcript for x in later if x.start_ns < T0 + 7 * NS)
    assert all(x.transcript is None for x in later if x.start_ns >= T0 + 7 * NS)
    assert_no_loss(w)
