"""MMEVerse manifest format: round trip, relative paths, validation errors naming file and line."""
import json

import numpy as np
import pytest

from emotion_ros.ingest.errors import InputError
from emotion_ros_training.data.manifest import (
    IEMOCAP4, MELD7, MER6, SENTIMENT3, ClipRecord, LabelSpace, ManifestError, label_space, read_manifest,
    think_target, write_manifest,
)


def _rec(tmp_path, cid="c1", **kw):
    d = dict(clip_id=cid, dataset="SYNTH", split="train", label_space=MER6, labels=["happy"],
             video_path=str(tmp_path / "media" / f"{cid}.mp4"), audio_path=str(tmp_path / "media" / f"{cid}.mp4"),
             subtitle="We won!", valence=0.5, arousal=0.4, description="Smiling face, bright voice.",
             modalities=["audio", "vision", "text"], meta={"kind": "consistent", "n": [1, 2]})
    d.update(kw)
    return ClipRecord(**d)


def test_label_spaces():
    assert MER6.labels == ("neutral", "happy", "sad", "angry", "worried", "surprise")
    assert MELD7.labels == ("neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise")
    assert SENTIMENT3.labels == ("negative", "neutral", "positive")
    assert IEMOCAP4.labels == ("neutral", "happy", "sad", "angry")
    assert label_space("MELD7") is MELD7
    with pytest.raises(KeyError):
        label_space("nope")


def test_round_trip_relative_paths(tmp_path):
    multi = LabelSpace("MAFW-m", ("happy", "sad", "angry"), multi_label=True)
    recs = [
        _rec(tmp_path, "c1"),
        _rec(tmp_path, "c2", split="test", label_space=multi, labels=["sad", "angry"], valence=None, arousal=None,
             start_s=1.5, end_s=3.25),
        _rec(tmp_path, "c3", video_path=None, modalities=["audio", "text"], audio_path=str(tmp_path / "a.wav")),
    ]
    out = tmp_path / "sub" / "manifest.jsonl"
    assert write_manifest(out, recs) == 3
    lines = out.read_text().splitlines()
    first = json.loads(lines[0])
    assert first["video_path"] == "../media/c1.mp4"  # relative to the manifest's directory
    back = read_manifest(out)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in recs]
    assert back[1].labels == ["sad", "angry"] and back[1].label_space.multi_label
    assert back[0].think_target == "<think>Smiling face, bright voice.</think><answer>happy</answer>"


def test_think_target():
    assert think_target(" because ", "sad") == "<think>because</think><answer>sad</answer>"


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.update(split="training"), "split"),
    (lambda d: d.update(labels=["joy"]), "not in label space"),
    (lambda d: d.update(labels=["happy", "sad"]), "single-label"),
    (lambda d: d.update(labels=[]), "non-empty"),
    (lambda d: d.pop("clip_id"), "missing field"),
    (lambda d: d.update(colour="red"), "unknown field"),
    (lambda d: d.update(valence="high"), "valence"),
    (lambda d: d.update(modalities=["smell"]), "modalities"),
    (lambda d: d.update(video_path=None), "vision"),
    (lambda d: d.update(label_space="NOPE"), "unknown label space"),
    (lambda d: d.update(start_s=2.0, end_s=1.0), "end_s"),
])
def test_validation_errors_name_file_and_line(tmp_path, mutate, needle):
    good = _rec(tmp_path, "ok").to_dict(tmp_path)
    bad = _rec(tmp_path, "bad").to_dict(tmp_path)
    mutate(bad)
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(ManifestError) as ei:
        read_manifest(p)
    e = ei.value
    assert isinstance(e, InputError) and e.reason == "manifest_malformed"
    assert e.line == 3 and f"{p}:3" in str(e)
    assert needle in str(e)


def test_bad_json_duplicates_and_missing_files(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"clip_id": "x",\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:1: invalid JSON"):
        read_manifest(p)
    rec = _rec(tmp_path, "dup").to_dict(tmp_path)
    p.write_text("# comment\n" + json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(ManifestError, match="duplicate clip_id 'dup' \\(first on line 2\\)"):
        read_manifest(p)
    p.write_text(json.dumps(rec) + "\n")
    assert len(read_manifest(p)) == 1
    with pytest.raises(ManifestError, match="media file not found"):
        read_manifest(p, check_files=True)
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "absent.jsonl")
    with pytest.raises(ManifestError, match="duplicate"):
        write_manifest(tmp_path / "w.jsonl", [_rec(tmp_path, "a"), _rec(tmp_path, "a")])
    with pytest.raises(ManifestError, match="not in label space"):
        write_manifest(tmp_path / "w.jsonl", [_rec(tmp_path, "a", labels=["joy"])])
    assert np.isfinite(read_manifest(p)[0].valence)
