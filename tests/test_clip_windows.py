"""Real-clip bags through the offline message -> windower path (issue 17 item 6): short clips, cameras that
change resolution, subtitles that span their clip, stream start offsets.

Clips are small media files written with PyAV, turned into bags by make-bag (emotion_ros.bags.clips) and
run through bags/offline.py's OfflineRunner with a fake engine that keeps every window, so what the
model would see is checked without a model.
"""
import numpy as np
import pytest

from emotion_ros.bags.bag_io import BagReader
from emotion_ros.bags.clips import make_bag_from_clips, make_bags_per_clip
from emotion_ros.ingest.errors import DropCounter
from emotion_ros.ingest.stamps import NS
from emotion_ros.ingest.window import MODALITY_AUDIO, MODALITY_TEXT, MODALITY_VISION
from emotion_ros.ingest.windowing import Windower, WindowingConfig

av = pytest.importorskip("av")

LABELS = ["happy", "sad", "angry", "neutral"]
ALL = MODALITY_AUDIO | MODALITY_VISION | MODALITY_TEXT


def write_clip(path, seconds, size, colour, fps=10, tone=440.0, video_offset_s=0.0, audio_offset_s=0.0):
    """A clip (mpeg4 video of one colour + aac tone) whose streams may start late (pts offsets)."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        a = out.add_stream("aac", rate=16000)
        a.layout = "mono"
        v0 = int(round(video_offset_s * fps))
        for i in range(int(round(seconds * fps))):
            img = np.empty((size[1], size[0], 3), dtype=np.uint8)
            img[:] = colour
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = v0 + i
            for pkt in v.encode(frame):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        t = np.arange(int(round(seconds * 16000))) / 16000
        x = (0.3 * np.sin(2 * np.pi * tone * t)).astype(np.float32)
        a0 = int(round(audio_offset_s * 16000))
        for k in range(0, len(x), 1024):
            frame = av.AudioFrame.from_ndarray(x[None, k:k + 1024], format="flt", layout="mono")
            frame.sample_rate = 16000
            frame.pts = a0 + k
            for pkt in a.encode(frame):
                out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)


# 1.5 s clips at three resolutions and aspect ratios, subtitles in four languages
CLIPS = [
    dict(seconds=1.5, size=(64, 48), colour=(200, 40, 40), subtitle="I did not expect that at all.", language="en"),
    dict(seconds=1.5, size=(96, 54), colour=(40, 200, 40), subtitle="我今天真的很高兴见到你。", language="zh"),
    dict(seconds=3.0, size=(48, 64), colour=(40, 40, 200), subtitle="C'est vraiment génial, merci !", language="fr"),
    dict(seconds=1.5, size=(64, 48), colour=(200, 200, 40), subtitle="本当にありがとうございます", language="ja"),
]


@pytest.fixture(scope="module")
def clip_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    records = []
    for i, c in enumerate(CLIPS):
        media = folder / f"c{i}.mp4"
        write_clip(media, c["seconds"], c["size"], c["colour"], tone=300.0 + 100 * i)
        records.append({"clip_id": f"c{i}", "dataset": "MER2023", "label_space": LABELS, "labels": [LABELS[i]],
                        "video_path": str(media), "audio_path": str(media), "subtitle": c["subtitle"],
                        "meta": {"language": c["language"]}})
    return records


class KeepWindows:
    """Fake engine: keeps each window and answers uniform scores (no model)."""

    def __init__(self):
        self.windows = []

    def process(self, window):
        from emotion_ros.inference.engine import EmotionResult

        self.windows.append(window)
        scores = [1.0 / len(LABELS)] * len(LABELS)
        return EmotionResult(window=window, label=LABELS[0], labels=LABELS, scores=scores, confidence=scores[0],
                             modalities=window.modalities, transcript=window.transcript or "", task="emotion",
                             model_id="fake", latency_ms=1.0)


def run_offline(bag):
    from emotion_ros.bags.offline import OfflineRunner
    from emotion_ros.config import PerceptionConfig

    engine, made = KeepWindows(), []

    def factory(drops: DropCounter):
        made.append(Windower(WindowingConfig(window_s=2.0, hop_s=0.5, mode="fixed"), counter=drops))
        return made[-1]

    result = OfflineRunner(engine, PerceptionConfig(), windower_factory=factory).run(bag)
    return result, engine.windows, made[0]


def clip_spans(bag):
    """(start_ns, end_ns, subtitle) of each clip from the bag's own Transcript messages."""
    with BagReader(bag) as reader:
        return [(m.header.stamp.sec * NS + m.header.stamp.nanosec, m.end.sec * NS + m.end.nanosec, m.text)
                for _, m in reader.decoded(["/transcript"])]


def test_session_of_short_mixed_resolution_clips(clip_records, tmp_path):
    bag = tmp_path / "session"
    ann = make_bag_from_clips(clip_records, bag, max_fps=10)
    spans = clip_spans(bag)
    assert [s[2] for s in spans] == [c["subtitle"] for c in CLIPS]
    with BagReader(bag) as reader:
        assert [m.language for _, m in reader.decoded(["/transcript"])] == [c["language"] for c in CLIPS]
    result, windows, windower = run_offline(bag)
    assert windows and result.drops["total_dropped"] == 0
    assert all(v["lost"] == 0 for v in windower.accounting().values())
    snap = windower.counter.snapshot()
    assert snap["events"]["frame_shape_changed"] == 3  # 4:3 -> 16:9 -> portrait -> 4:3
    assert snap["evicted"] == {}  # a resolution change throws nothing away
    for w in windows:
        assert w.frames is not None, (w.index, w.meta)  # no window loses vision
        assert w.modalities == ALL
        inside = [text for s, e, text in spans if s < w.end_ns and e > w.start_ns]
        assert w.transcript == " ".join(inside)  # its clips' subtitles, and nobody else's
        newest = [i for i, (s, _, _) in enumerate(spans) if s <= int(w.frame_stamps_ns.max())][-1]
        assert w.frames.shape[1:3][::-1] == CLIPS[newest]["size"]  # in the size of its newest frame
    assert any(w.meta.get("frames_rescaled") for w in windows)  # windows across a change mixed sizes
    # every clip gets windows: one whose middle lies in the clip, and scoring finds a state for each segment
    for (s, e, text), seg in zip(spans, ann.segments):
        assert any(s <= (w.start_ns + w.end_ns) // 2 < e for w in windows), text
    from emotion_ros.evaluation.evaluate import NONE_LABEL, BagJob, evaluate_bag

    scored = evaluate_bag(BagJob(bag), states_fn=lambda job: result.states)
    assert [p.pred != NONE_LABEL for p in scored.segments] == [True] * len(CLIPS)
    # the last clip ends the bag: its tail is a short window cut at the end of the data
    last = windows[-1]
    assert last.end_ns == spans[-1][1] and last.meta.get("short_window") == "end_of_data"


def test_each_short_clip_alone_gets_a_window_with_its_subtitle(clip_records, tmp_path):
    short = [r for r, c in zip(clip_records, CLIPS) if c["seconds"] < 2.0]
    paths = make_bags_per_clip(short, tmp_path / "per_clip", max_fps=10)
    from emotion_ros.evaluation.evaluate import NONE_LABEL, BagJob, evaluate_bag

    for path, record in zip(paths, short):
        (s, e, text), = clip_spans(path)
        assert (e - s) / NS == pytest.approx(1.5, abs=0.07)
        result, windows, windower = run_offline(path)
        assert len(windows) == 1, [(w.start_ns, w.end_ns) for w in windows]  # 1.5 s < window_s: one, not none
        w = windows[0]
        assert (w.start_ns, w.end_ns) == (s, e) and w.meta["short_window"] == "end_of_data"
        assert w.modalities == ALL and w.transcript == record["subtitle"]
        assert w.frames.shape[0] == 16 and w.audio.shape == ((e - s) // 62_500,)
        assert all(v["lost"] == 0 for v in windower.accounting().values())
        scored = evaluate_bag(BagJob(path), states_fn=lambda job: result.states)
        assert scored.segments[0].pred != NONE_LABEL and len(scored.window_pairs) == 1


def test_transcript_message_in_the_bag_typestore_is_rosidls():
    """typestore.py registers msg/Transcript.msg like the other project messages: same RIHS01 type hash
    as rosidl's build, and rclpy decodes what rosbags serialises."""
    import json
    import sys
    from pathlib import Path

    from emotion_ros.bags.typestore import TIME, TRANSCRIPT, header_msg, project_typestore

    store = project_typestore()
    built = Path(sys.prefix) / "share" / "emotion_ros" / "msg" / "Transcript.json"
    if not built.is_file():
        pytest.skip("interfaces not built (bash scripts/bootstrap.sh)")
    hashes = {h["type_name"]: h["hash_string"] for h in json.loads(built.read_text())["type_hashes"]}
    assert store.hash_rihs01(TRANSCRIPT) == hashes[TRANSCRIPT]
    msg = store.types[TRANSCRIPT](header=header_msg(store, 4 * NS, "subtitle"), end=store.types[TIME](sec=5, nanosec=250),
                                  text="我今天很高兴", language="zh")
    raw = store.serialize_cdr(msg, TRANSCRIPT)
    rclpy_serialization = pytest.importorskip("rclpy.serialization")
    from emotion_ros.msg import Transcript

    back = rclpy_serialization.deserialize_message(bytes(raw), Transcript)
    assert (back.text, back.language, back.header.stamp.sec, back.end.nanosec) == ("我今天很高兴", "zh", 4, 250)


@pytest.mark.parametrize("video_offset_s,audio_offset_s", [(0.0, 0.3), (0.5, 0.0)])
def test_make_bag_keeps_stream_start_offsets(tmp_path, video_offset_s, audio_offset_s):
    """Streams that start late stay aligned in the bag (the decoder, emotion_ros.ingest.media, places them
    by their timestamps; media time 0 = the clip start), and the subtitle spans the whole clip."""
    media = tmp_path / "late.mkv"  # Matroska keeps the pts offsets as written (mp4 adds AAC priming)
    write_clip(media, 1.5, (64, 48), (90, 90, 90), video_offset_s=video_offset_s, audio_offset_s=audio_offset_s)
    record = {"clip_id": "late", "labels": ["happy"], "video_path": str(media), "audio_path": str(media),
              "subtitle": "hello"}
    make_bag_from_clips([record], tmp_path / "bag", max_fps=10)
    (s, e, _), = clip_spans(tmp_path / "bag")
    with BagReader(tmp_path / "bag") as reader:
        first_frame = min(m.header_stamp_ns() for m in reader.messages(["/camera/image_raw"]))
        chunks = sorted((msg.header.stamp.sec * NS + msg.header.stamp.nanosec, bytes(msg.data))
                        for _, msg in reader.decoded(["/audio"]))
    audio = np.concatenate([np.frombuffer(d, "<i2") for _, d in chunks]).astype(np.float32) / 32768
    onset = chunks[0][0] + int(np.flatnonzero(np.abs(audio) > 0.05)[0]) * 62_500  # the tone starts here
    assert (first_frame - s) / NS == pytest.approx(video_offset_s, abs=0.002)
    assert (onset - s) / NS == pytest.approx(audio_offset_s, abs=0.002)
    assert (e - s) / NS == pytest.approx(1.5 + max(video_offset_s, audio_offset_s), abs=0.1)


@pytest.mark.ros
@pytest.mark.slow  # one tiny-model load in the node process, ~20-40 s on 2 cores
def test_live_node_takes_stamped_transcripts_like_offline(clip_records, tmp_path):
    """A make-bag bag replayed to the node (transcript_type:=transcript) gives the windows, modalities and
    subtitles of the offline run, including the short window the end of the bag yields."""
    pytest.importorskip("rclpy")
    import rclpy

    from emotion_ros.bags.player import BagPlayer, PlayerConfig
    from tests.helpers.ros import python_process

    bag = tmp_path / "two"
    make_bag_from_clips([clip_records[i] for i in (0, 1, 3)], bag, max_fps=10)  # 3 x 1.5 s: 4:3, 16:9, 4:3
    node_proc = python_process("-m", "emotion_ros.nodes.perception_node", "--ros-args",
                               "-p", "profile:=tiny", "-p", "label_set:=MER6", "-p", "reasoning_every:=0",
                               "-p", "window_s:=2.0", "-p", "hop_s:=0.5", "-p", "window_mode:=fixed",
                               "-p", "asr:=never", "-p", "transcript_type:=transcript",
                               "-p", "queue_size:=8")  # the end-of-bag flush yields 2 windows at once
    log, failure = "", None
    try:
        result, offline, _ = run_offline(bag)
        context = rclpy.context.Context()
        rclpy.init(context=context)
        try:
            node = rclpy.create_node("stamped_transcript_player", context=context)
            stats = BagPlayer(bag, PlayerConfig(flow=True, rate=2.0, windowing=WindowingConfig(),
                                                discovery_timeout_s=120, state_timeout_s=20), node=node).play()
            node.destroy_node()
        except Exception as exc:  # report it with the node's log
            failure = exc
        finally:
            rclpy.shutdown(context=context)
    finally:
        node_proc.terminate()
        try:
            log = node_proc.communicate(timeout=10)[0]
        except Exception:
            node_proc.kill()
    assert failure is None, f"{failure!r}; node log:\n{log[-3000:]}"
    live = sorted(stats.states, key=lambda s: s.window_index)
    assert live and stats.unmatched_topics == [], log[-3000:]
    assert [(s.start_ns, s.end_ns, s.modalities, s.transcript) for s in live] == \
           [(w.start_ns, w.end_ns, w.modalities, w.transcript) for w in offline]
    assert offline[-1].meta["short_window"] == "end_of_data" and all(s.modalities == ALL for s in live)
