"""scripts/real_check_segments.py on a hand-made windows.json: segment labels, distributions and the two
checks of issue 14 (wrong label above 0.8; neutral calm speech non-neutral above 0.5)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["neutral", "happy", "sad", "angry", "worried", "surprise"]


@pytest.fixture(scope="module")
def rcs():
    spec = importlib.util.spec_from_file_location("real_check_segments", ROOT / "scripts" / "real_check_segments.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(bag, i, label, conf, annotated, modalities="audio+text"):
    rest = (1.0 - conf) / (len(LABELS) - 1)
    scores = {lab: (conf if lab == label else rest) for lab in LABELS}
    return {"bag": bag, "window": i, "start_ns": i * 500_000_000, "label": label, "confidence": conf,
            "scores": scores, "modalities": modalities, "annotated": annotated}


def _report(tmp_path, rows):
    d = tmp_path / "report"
    d.mkdir()
    (d / "windows.json").write_text(json.dumps(rows))
    return d


def test_segments_and_checks(rcs, tmp_path, capsys):
    rows = [
        _row("voice_calm", 0, "neutral", 0.7, "neutral"), _row("voice_calm", 1, "sad", 0.55, "neutral"),
        _row("voice_jfk", 0, "sad", 0.6, "neutral"),                      # oratory: reported, not counted
        _row("face_happy", 0, "happy", 0.9, "happy", "vision"), _row("face_happy", 1, "sad", 0.85, "happy", "vision"),
        _row("face_neutral", 0, "happy", 0.7, "neutral", "vision"),       # no audio: not a speech window
        {**_row("unannotated", 0, "sad", 0.99, None)},                    # ignored
    ]
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps({"clips": [{"clip_id": "voice_calm", "voice": {"kind": "calm read"}},
                                         {"clip_id": "voice_jfk", "voice": {"kind": "oratory"}},
                                         {"clip_id": "face_happy", "voice": None}]}))
    md = tmp_path / "out.md"
    assert rcs.main([str(_report(tmp_path, rows)), "--inventory", str(inv), "--md", str(md)]) == 0
    segs = {s["bag"]: s for s in rcs.segments(rows)}
    assert set(segs) == {"voice_calm", "voice_jfk", "face_happy", "face_neutral"}
    assert segs["voice_calm"]["label"] == "neutral" and segs["voice_calm"]["windows"] == 2
    assert segs["face_happy"]["max_wrong_confidence"] == pytest.approx(0.85)
    chk = rcs.checks(list(segs.values()), {"voice_calm": "calm read", "voice_jfk": "oratory"})
    assert not chk["wrong_above_0.8"]["pass"]
    assert [f[:3] for f in chk["wrong_above_0.8"]["failures"]] == [("face_happy", 1, "sad")]
    c2 = chk["neutral_speech_above_0.5"]
    assert not c2["pass"] and c2["windows"] == 2 and [f[:2] for f in c2["failures"]] == [("voice_calm", 1)]
    assert c2["not_counted"]["windows"] == 1 and len(c2["not_counted"]["failures"]) == 1
    text = md.read_text()
    assert "Check 1" in text and "**FAIL**" in text and "| neutral | 3 | 1 |" in text
    assert rcs.main([str(tmp_path / "report"), "--strict"]) == 1


def test_passing_checks_and_segment_split(rcs, tmp_path):
    rows = [_row("bag", 0, "neutral", 0.6, "neutral"), _row("bag", 1, "neutral", 0.45, "neutral"),
            _row("bag", 2, "happy", 0.79, "happy", "vision"), _row("bag", 3, "sad", 0.5, "neutral")]
    segs = rcs.segments(rows)
    assert [(s["annotated"], s["windows"]) for s in segs] == [("neutral", 2), ("happy", 1), ("neutral", 1)]
    chk = rcs.checks(segs, {})
    assert chk["wrong_above_0.8"]["pass"] and chk["neutral_speech_above_0.5"]["pass"]
    assert rcs.main([str(_report(tmp_path, rows)), "--strict"]) == 0


def test_missing_report_is_one_sentence(rcs, tmp_path):
    with pytest.raises(SystemExit, match="no windows.json"):
        rcs.main([str(tmp_path)])
