"""Annotation format (JSON/CSV, schema errors) and MMEVerse clip -> annotated bag conversion."""

import numpy as np
import pytest

from emotion_ros.bags import annotations as A
from emotion_ros.bags.bag_io import BagReader


def test_json_round_trip_and_resolve(tmp_path):
    ann = A.parse_json({"version": 1, "t0_ns": 5_000_000_000, "dataset": "MER2023",
                        "label_space": ["happy", "sad", "neutral"],
                        "records": [{"start": 0.5, "end": 2.0, "label": "happy", "reasoning": "smiles"},
                                    {"id": "u2", "label": "sad"}]})
    path = ann.save(tmp_path / "a.json")
    back = A.load(path)
    assert back.to_dict() == ann.to_dict()
    spans = back.resolve(bag_start_ns=4_000_000_000, bag_end_ns=9_000_000_000)
    assert spans[0][:2] == (5_500_000_000, 7_000_000_000)
    assert spans[1][:2] == (4_000_000_000, 9_000_000_000)  # an utterance without times spans the bag
    assert spans[0][2].reasoning == "smiles" and spans[1][2].id == "u2"


def test_csv_round_trip_with_multi_labels(tmp_path):
    ann = A.Annotations([A.Segment("happy", 0.0, 1.5, labels=["happy", "surprise"]), A.Segment("sad", 1.5, 3.0)],
                        t0_ns=10, dataset="MAFW-m", label_space=["happy", "sad", "surprise"])
    path = ann.save(tmp_path / "a.csv")
    back = A.load(path)
    assert back.t0_ns == 10 and back.dataset == "MAFW-m"
    assert [s.label_set for s in back.segments] == [["happy", "surprise"], ["sad"]]
    assert [(s.start, s.end) for s in back.segments] == [(0.0, 1.5), (1.5, 3.0)]


@pytest.mark.parametrize("records, match", [
    ([{"start": 0, "end": 1}], "record 0: needs a non-empty 'label'"),
    ([{"start": 2, "end": 1, "label": "x"}], "must be after 'start'"),
    ([{"start": 0, "label": "x"}], "both 'start' and 'end'"),
    ([{"start": "soon", "end": 1, "label": "x"}], "'start' must be a number"),
    ([{"label": "x", "colour": "red"}], r"unknown field\(s\) \['colour'\]"),
    ([{"label": "x", "labels": "a;b", "start": 0, "end": 1}, {"label": "joy"}], "record 1: label"),
    ([], "no records"),
])
def test_schema_errors_are_clear(records, match):
    with pytest.raises(A.AnnotationError, match=match):
        A.parse_json({"label_space": ["x", "a", "b"], "records": records}, source="f.json")


def test_file_level_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"records": [\n{"label": }]}')
    with pytest.raises(A.AnnotationError, match=r"bad.json: not valid JSON \(line 2"):
        A.load(bad)
    with pytest.raises(A.AnnotationError, match="unsupported version"):
        A.parse_json({"version": 7, "records": [{"label": "x"}]})
    csv = tmp_path / "bad.csv"
    csv.write_text("begin,end,label\n0,1,x\n")
    with pytest.raises(A.AnnotationError, match=r"missing column\(s\) \['start'\]"):
        A.load(csv)
    with pytest.raises(A.AnnotationError, match="cannot read"):
        A.load(tmp_path / "missing.json")


def test_find_for_bag(tmp_path):
    bag = tmp_path / "session"
    bag.mkdir()
    assert A.find_for_bag(bag) is None
    (tmp_path / "session.annotations.csv").write_text("start,end,label\n0,1,x\n")
    assert A.find_for_bag(bag).name == "session.annotations.csv"
    (bag / "annotations.json").write_text("[]")
    assert A.find_for_bag(bag) == bag / "annotations.json"


def _write_clip(path, seconds=1.2, fps=10, size=(64, 48), tone=440.0):
    """A small mp4 (mpeg4 video + aac audio) made with PyAV."""
    import av

    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        a = out.add_stream("aac", rate=16000)
        a.layout = "mono"
        for i in range(int(seconds * fps)):
            img = np.full((size[1], size[0], 3), (i * 20) % 255, dtype=np.uint8)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        t = np.arange(int(seconds * 16000)) / 16000
        samples = (0.3 * np.sin(2 * np.pi * tone * t)).astype(np.float32)
        for k in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, k:k + 1024], format="flt", layout="mono")
            frame.sample_rate = 16000
            for pkt in a.encode(frame):
                out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)


def test_make_bag_from_mmeverse_clips(tmp_path):
    manifest = pytest.importorskip("emotion_ros_training.data.manifest")
    clips = []
    for i, label in enumerate(["happy", "sad"]):
        media = tmp_path / f"clip{i}.mp4"
        _write_clip(media)
        clips.append(manifest.ClipRecord(clip_id=f"c{i}", dataset="MER2023", split="test", label_space=manifest.MER6,
                                         labels=[label], video_path=str(media), audio_path=str(media),
                                         subtitle=f"words {i}", description=f"looks {label}",
                                         modalities=["audio", "vision", "text"]))
    from emotion_ros.bags.clips import make_bag_from_clips

    ann = make_bag_from_clips(clips, tmp_path / "bag", gap_s=0.5, max_fps=10)
    assert [s.label for s in ann.segments] == ["happy", "sad"]
    assert ann.label_space == list(manifest.MER6.labels) and ann.dataset == "MER2023"
    assert ann.segments[0].reasoning == "looks happy" and ann.segments[1].id == "c1"
    assert ann.segments[1].start == pytest.approx(ann.segments[0].end + 0.5)
    assert A.load(tmp_path / "bag" / "annotations.json").to_dict() == ann.to_dict()
    with BagReader(tmp_path / "bag") as bag:
        counts = bag.message_counts
        assert counts["/camera/image_raw"] == 24  # 12 frames per 1.2 s clip at 10 fps
        assert counts["/transcript"] == 2
        assert 22 <= counts["/audio"] <= 26       # 100 ms chunks of ~1.2 s audio per clip
        stamps = [m.header_stamp_ns() for m in bag.messages(["/camera/image_raw"])]
        assert stamps == sorted(stamps)
        first = next(bag.decoded(["/camera/image_raw"]))[1]
        assert (first.width, first.height, first.encoding) == (64, 48, "rgb8")
        subs = [msg for _, msg in bag.decoded(["/transcript"])]  # emotion_ros/Transcript over each clip
        assert [m.text for m in subs] == ["words 0", "words 1"]
        spans = [((m.header.stamp.sec * 10**9 + m.header.stamp.nanosec - ann.t0_ns) / 1e9,
                  (m.end.sec * 10**9 + m.end.nanosec - ann.t0_ns) / 1e9) for m in subs]
        assert spans == [pytest.approx((s.start, s.end), abs=1e-6) for s in ann.segments]
    # the clip's time range in the bag matches its annotation
    t0 = ann.t0_ns
    with BagReader(tmp_path / "bag") as bag:
        second = [m.header_stamp_ns() for m in bag.messages(["/camera/image_raw"])][12]
    assert (second - t0) / 1e9 == pytest.approx(ann.segments[1].start, abs=1e-6)
