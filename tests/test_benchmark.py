"""The benchmark runner: MMEVerse annotation files + a project manifest -> the Table-4-shaped summary.

The fixture has a test set of every metric kind (hit rate: MER2023, MER2024, MELD; WAF: MOSI; OV F:
OV-MERD+; accuracy: CAER and a set outside the benchmark; mAP: BOLD), written in the official file
layouts, with tiny generated clips; the model is the tiny profile with random weights.
"""
import csv
import json
import math
import sys

import numpy as np
import pytest

from emotion_ros.evaluation import metrics as M
from emotion_ros.evaluation.mmeverse import AnnotationFileError, records_from_annotation, sets_of_file

MP4_FRAMES = np.zeros((6, 32, 32, 3), dtype=np.uint8)


def _clip(path, seed):
    from emotion_ros_training.data.media import write_media

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_media(path, (MP4_FRAMES + rng.integers(0, 255, 3, dtype=np.uint8)).astype(np.uint8), fps=10,
                audio=0.1 * rng.standard_normal(8000).astype(np.float32))


def _annotation(root, stem, rows, missing=()):
    """<root>/<stem>_merged.csv in the official layout, clips in <root>/video/ (except `missing` ids)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{stem}_merged.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for i, row in enumerate(rows):
        vid = row["video_id"] + (f"_{row['clip_id']}" if "clip_id" in row else "")
        if vid not in missing:
            _clip(root / "video" / f"{vid}.mp4", sum(map(ord, vid)) + i)
    return path


@pytest.fixture(scope="module")
def fixture_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmeverse")
    _annotation(root / "MER2024", "MER2024", [
        {"video_id": "a1", "emotion_label": "happy", "chinese": "好", "MER2023_mode": "test1", "MER2024_mode": ""},
        {"video_id": "a2", "emotion_label": "neutral", "chinese": "", "MER2023_mode": "test1", "MER2024_mode": ""},
        {"video_id": "a3", "emotion_label": "sad", "chinese": "", "MER2023_mode": "test2", "MER2024_mode": ""},
        {"video_id": "a4", "emotion_label": "sad", "chinese": "", "MER2023_mode": "test1", "MER2024_mode": ""},
        {"video_id": "b1", "emotion_label": "worried", "chinese": "", "MER2023_mode": "other", "MER2024_mode": "test_semi"},
        {"video_id": "b2", "emotion_label": "happy", "chinese": "", "MER2023_mode": "other", "MER2024_mode": "test_semi"},
    ], missing=("a4",))
    _annotation(root / "CMU-MOSI", "CMU-MOSI", [
        {"video_id": "m1", "sentiment_label": "Positive", "text": "great", "mode": "test"},
        {"video_id": "m2", "sentiment_label": "Negative", "text": "awful", "mode": "test"},
        {"video_id": "m3", "sentiment_label": "Neutral", "text": "ok", "mode": "test"},
        {"video_id": "m4", "sentiment_label": "Positive", "text": "fine", "mode": "valid"},
    ])
    ov = root / "OV-MERD+"
    _annotation(ov, "OV-MERD+", [{"video_id": "o1", "sentence": "hi"}, {"video_id": "o2", "sentence": "oh"}])
    (ov / "check-result-openset-chi-translate.csv").write_text(
        "name,openset\no1,\"['happy', 'joyful']\"\no2,['worried']\n")
    _annotation(root / "BOLD", "BOLD", [
        {"video_id": "x1", "Emotion_label": "Happiness, Pleasure", "text_whisper": "", "mode": "val"},
        {"video_id": "x2", "Emotion_label": "Sadness", "text_whisper": "", "mode": "val"},
        {"video_id": "x3", "Emotion_label": "Fear", "text_whisper": "", "mode": "test"},
    ])
    _annotation(root / "CAER", "CAER", [
        {"video_id": "c1", "emotion_label": "happy", "text_whisper": "", "mode": "test"},
        {"video_id": "c2", "emotion_label": "Sad", "text_whisper": "", "mode": "test"},
        {"video_id": "c3", "emotion_label": "fear", "text_whisper": "", "mode": "validation"},
    ])
    # a project manifest: MELD (hit rate) and SYNTH (outside the benchmark) records, one in the train split
    from emotion_ros_training.data.manifest import MELD7, MER6, ClipRecord, write_manifest

    man = root / "project" / "manifest.jsonl"
    recs = []
    for i, (ds, space, lab, split) in enumerate([("meld_emotion", MELD7, "joy", "test"), ("MELD", MELD7, "neutral", "test"),
                                                 ("SYNTH", MER6, "sad", "test"), ("SYNTH", MER6, "happy", "test"),
                                                 ("SYNTH", MER6, "angry", "train")]):
        clip = root / "project" / f"p{i}.mp4"
        _clip(clip, 500 + i)
        recs.append(ClipRecord(clip_id=f"p{i}", dataset=ds, split=split, label_space=space, labels=[lab],
                               video_path=str(clip), audio_path=str(clip), subtitle="words", modalities=["audio", "vision", "text"]))
    write_manifest(man, recs)
    return root


def test_reading_mmeverse_files(fixture_sets, tmp_path):
    assert sets_of_file("x/MER2024_merged.csv") == ["MER2023", "MER2024"]
    assert sets_of_file("CH-SIMS_v2_s_merged.jsonl") == ["SIMS-v2"] and sets_of_file("notes.csv") == []
    mer = fixture_sets / "MER2024" / "MER2024_merged.csv"
    recs, drops = records_from_annotation(mer, "MER2023")
    # scored rows: mode test1 (a3 is test2); a4's video is missing: counted, not skipped silently
    assert [r["meta"]["video_id"] for r in recs] == ["a1", "a2"] and dict(drops) == {"video file missing": 1}
    recs, _ = records_from_annotation(mer, "MER2023", rows="eval")  # the eval class also loads test2/test3
    assert [r["meta"]["video_id"] for r in recs] == ["a1", "a2", "a3"]
    assert recs[0]["label_space"]["labels"] == ["angry", "happy", "neutral", "sad", "surprise", "worried"]
    recs, _ = records_from_annotation(mer, "MER2024")
    assert [r["labels"] for r in recs] == [["worried"], ["happy"]] and recs[0]["subtitle"] is None
    bold, _ = records_from_annotation(fixture_sets / "BOLD" / "BOLD_merged.csv", "BOLD")
    assert [r["labels"] for r in bold] == [["happiness", "pleasure"], ["sadness"]]  # val rows, split at ','
    assert "happiness" in bold[0]["label_space"]["labels"] and bold[0]["label_space"]["multi_label"]
    ov, _ = records_from_annotation(fixture_sets / "OV-MERD+" / "OV-MERD+_merged.csv", "OV-MERD+")
    assert [r["labels"] for r in ov] == [["happy", "joyful"], ["worried"]]
    # IEMOCAP keeps four emotions, excited counts as happiness; MOSEI ids join video_id and clip_id;
    # a numeric sentiment label is the continuous score; a JSON file in pandas' column layout
    root = tmp_path / "more"
    _annotation(root, "IEMOCAP", [
        {"video_id": "i1", "official_label": "excited", "text": "yay", "session": "Session5"},
        {"video_id": "i2", "official_label": "frustration", "text": "", "session": "Session5"},
        {"video_id": "i3", "official_label": "neutral", "text": "", "session": "Session1"}])
    recs, _ = records_from_annotation(root / "IEMOCAP_merged.csv", "IEMOCAP")
    assert [r["labels"] for r in recs] == [["happiness"]]
    assert recs[0]["label_space"]["labels"] == ["Anger", "Sadness", "happiness"]  # spelled as the file does
    _annotation(root, "CMU-MOSEI", [{"video_id": "v", "clip_id": "3", "sentiment_label": "-1.5", "text": "", "mode": "test"}])
    (rec,), _ = records_from_annotation(root / "CMU-MOSEI_merged.csv", "MOSEI")
    assert rec["meta"]["video_id"] == "v_3" and rec["labels"] == ["Negative"] and rec["valence"] == -1.5
    (root / "CAER_merged.json").write_text(json.dumps({"video_id": {"0": "c"}, "emotion_label": {"0": "happy"},
                                                       "text_whisper": {"0": None}, "mode": {"0": "test"}}))
    (rec,), _ = records_from_annotation(root / "CAER_merged.json", "CAER", check_media=False)
    assert rec["labels"] == ["happy"]
    (root / "DFEW_merged.csv").write_text("video_id,label\nd1,happy\n")
    with pytest.raises(AnnotationFileError, match=r"DFEW needs column\(s\) \['sentence', 'mode'\]"):
        records_from_annotation(root / "DFEW_merged.csv", "DFEW")
    (root / "OV-MERD_merged.csv").write_text("video_id,sentence\no,hi\n")
    with pytest.raises(AnnotationFileError, match="check-result-openset-chi-translate.csv"):
        records_from_annotation(root / "OV-MERD_merged.csv", "OV-MERD+")


@pytest.mark.timeout(600)
def test_benchmark_runner_tiny_every_metric_kind(fixture_sets, tmp_path, monkeypatch):
    from emotion_ros.app.cli import main
    from emotion_ros.model.checkpoint import save_trainable
    from emotion_ros.model.emotion_llama import build_model
    from emotion_ros_training.recipes import get_recipe
    from tests.helpers.official_wheels import write_official_wheels

    import torch

    torch.manual_seed(0)
    ckpt = tmp_path / "ckpt"
    save_trainable(build_model(get_recipe("tiny").model_config()), ckpt, metadata={"recipe": "tiny"})
    wheels = write_official_wheels(tmp_path / "wheels")
    out = tmp_path / "bench"
    monkeypatch.setattr(sys, "argv", ["emotion_ros", "benchmark"])
    rc = main(["benchmark", "--sets", str(fixture_sets), "--checkpoint", str(ckpt), "--wheels", str(wheels),
               "--out", str(out), "--think", "1", "--threads", "1", "--no-progress"])
    assert rc == 0
    res = json.loads((out / "benchmark.json").read_text())
    sets = res["sets"]
    assert res["set_order"] == ["MER2023", "MER2024", "MELD", "MOSI", "OV-MERD+", "CAER", "BOLD", "SYNTH"]
    assert {n: e["records"] for n, e in sets.items()} == {"MER2023": 2, "MER2024": 2, "MELD": 2, "MOSI": 3,
                                                          "OV-MERD+": 2, "CAER": 2, "BOLD": 2, "SYNTH": 2}
    assert sets["MER2023"]["read_drops"] == {"video file missing": 1}
    assert {n: e["metric"] for n, e in sets.items()} == {
        "MER2023": "hit_rate", "MER2024": "hit_rate", "MELD": "hit_rate", "MOSI": "waf", "OV-MERD+": "ov_f",
        "CAER": "accuracy", "BOLD": "map", "SYNTH": "accuracy"}
    truth = {"MER2023": ["happy", "neutral"], "MER2024": ["worried", "happy"], "MELD": ["joy", "neutral"],
             "MOSI": ["Positive", "Negative", "Neutral"], "OV-MERD+": [["happy", "joyful"], ["worried"]],
             "CAER": ["happy", "Sad"], "BOLD": [["happiness", "pleasure"], ["sadness"]], "SYNTH": ["sad", "happy"]}
    w = M.EmotionWheels.load(wheels)
    for name, e in sets.items():
        responses = [p["response"] for p in e["predictions"]]
        assert [p["true"] for p in e["predictions"]] == [t if isinstance(t, str) else t[0] for t in truth[name]]
        # the runner's number is the official metric of the fixture's truth and the model's responses
        want = M.score_dataset(name, truth[name], responses, wheels=w)
        got = e["label"]["value"]
        assert (got is None and math.isnan(want["value"])) or got == pytest.approx(want["value"]), name
        # the think answers are scored separately, with the same metric, on the first clip (--think 1)
        assert e["think"]["metric"] == e["metric"] and e["think"]["n"] == 1 and len(e["think_responses"]) == 1
    assert sets["MOSI"]["label"]["scored_n"] == 2                        # neutral truth left out
    assert "1 ground-truth label" in sets["CAER"]["label"]["note"]        # "Sad" can never be matched
    avg = res["averages"]["label"]
    assert avg["Avg-9"]["value"] is None and "MOSEI" in avg["Avg-9"]["missing"]
    text = (out / "summary.md").read_text()
    assert "| Model | MER2023 | MER2024 | MELD | IEMOCAP | MOSI | MOSEI | SIMS | SIMS-v2 | OV-MERD+ | Avg-9 |" in text
    assert "| Model | CAER | E3 | DFEW | MAFW | MAFW-m | BOLD | MELD-s | MC-EIU-i | MC-EIU | Avg-18 |" in text
    assert "| Emotion-LLaMAv2 (Stage 2) | 76.72 | 86.90 | 48.61 | 83.60 | 86.96 | 86.15 | 86.35 | 87.42 | 64.00 | 78.52 |" in text
    ours = next(line for line in text.splitlines() if line.startswith("| **this checkpoint, label path**"))
    cells = [c.strip() for c in ours.strip("|").split("|")][1:]
    assert cells[3] == "—" and cells[5] == "—" and cells[9] == "—"    # IEMOCAP, MOSEI absent; no Avg-9
    assert cells[0] != "—" and cells[4] != "—" and cells[8] != "—"    # MER2023, MOSI, OV-MERD+ scored
    assert "**this checkpoint, `think` answers**" in text
    assert "MER2023: 1 clip(s) dropped: video file missing" in text


def test_table4_rows_are_the_papers():
    """The shipped Table 4 rows: each printed Avg equals the mean of its row's columns (to the paper's 2
    decimals), except AffectGPT's Avg-18 (its columns average 54.14, the paper prints 54.11)."""
    from emotion_ros.evaluation.benchmark import TABLE4

    assert len(TABLE4) == 12 and TABLE4["Emotion-LLaMAv2 (Stage 2)"]["Avg-18"] == 66.63
    for model, row in TABLE4.items():
        avg9 = np.mean([row[s] for s in M.MER_UNIBENCH])
        avg18 = np.mean([row[s] for s in M.MMEVERSE_BENCH])
        assert avg9 == pytest.approx(row["Avg-9"], abs=0.006), model
        if model != "AffectGPT":
            assert avg18 == pytest.approx(row["Avg-18"], abs=0.006), model
    assert np.mean([TABLE4["AffectGPT"][s] for s in M.MMEVERSE_BENCH]) == pytest.approx(54.14, abs=0.006)
