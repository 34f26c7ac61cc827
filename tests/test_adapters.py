"""Dataset adapters on tiny fake trees of the real on-disk layouts, with tiny real media files."""
import csv
import os

import numpy as np
import pytest

from emotion_ros_training.data.adapters import get_adapter, main as adapters_main, sentiment3
from emotion_ros_training.data.manifest import IEMOCAP4, MELD7, MER6, SENTIMENT3, read_manifest
from emotion_ros_training.data.media import sample_clip, write_media


def _clip(path, seconds=0.8, fps=10, audio=True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = int(seconds * fps)
    frames = np.zeros((n, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(n) * 20 % 255)[:, None, None]  # frame index in the red channel
    a = (0.2 * np.sin(np.arange(int(seconds * 16000)) * 0.05)).astype(np.float32) if audio else None
    if path.endswith(".wav"):
        write_media(path, None, fps, a)
    else:
        write_media(path, frames, fps, a)


def _csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _check_decodes(rec):
    w = sample_clip(rec)
    if "vision" in rec.modalities:
        assert w.frames.shape[0] == 16 and w.global_frame is not None
    if "audio" in rec.modalities:
        assert w.audio.dtype == np.float32 and w.audio.size > 0
    return w


def test_meld(tmp_path):
    root = tmp_path / "MELD.Raw"
    hdr = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
           "Episode", "StartTime", "EndTime"]
    _csv(str(root / "train_sent_emo.csv"), hdr, [
        [1, "Oh my God!", "Rachel", "surprise", "positive", 0, 0, 1, 1, "00:00:01,000", "00:00:02,000"],
        [2, "I hate this.", "Ross", "anger", "negative", 0, 1, 1, 1, "00:00:02,000", "00:00:03,000"],
        [3, "Missing clip.", "Joey", "joy", "positive", 0, 2, 1, 1, "", ""],
    ])
    _csv(str(root / "dev_sent_emo.csv"), hdr, [[1, "Okay.", "Monica", "neutral", "neutral", 3, 0, 2, 2, "", ""]])
    _csv(str(root / "test_sent_emo.csv"), hdr, [[1, "No.", "Phoebe", "sadness", "negative", 7, 4, 3, 3, "", ""]])
    _clip(str(root / "train_splits" / "dia0_utt0.mp4"))
    _clip(str(root / "train_splits" / "dia0_utt1.mp4"))
    _clip(str(root / "dev_splits_complete" / "dia3_utt0.mp4"))
    _clip(str(root / "output_repeated_splits_test" / "dia7_utt4.mp4"))
    (root / "output_repeated_splits_test" / "._dia7_utt5.mp4").write_bytes(b"junk")

    res = get_adapter("meld")(str(root))
    by_id = {r.clip_id: r for r in res.records}
    assert set(by_id) == {"meld_train_dia0_utt0", "meld_train_dia0_utt1", "meld_dev_dia3_utt0", "meld_test_dia7_utt4"}
    assert res.skipped["missing_media"] == 1
    r = by_id["meld_train_dia0_utt1"]
    assert r.labels == ["anger"] and r.label_space == MELD7 and r.subtitle == "I hate this."
    assert by_id["meld_dev_dia3_utt0"].split == "val" and by_id["meld_test_dia7_utt4"].split == "test"
    assert r.video_path == r.audio_path and r.meta["speaker"] == "Ross"
    _check_decodes(r)

    sent = get_adapter("meld")(str(root), task="sentiment")
    assert {x.clip_id: x.labels[0] for x in sent.records}["meld_test_dia7_utt4"] == "negative"
    assert all(x.label_space == SENTIMENT3 for x in sent.records)
    # two test sets with two official metrics: MELD (hit rate) and MELD-s (accuracy)
    assert {x.dataset for x in res.records} == {"MELD"} and {x.dataset for x in sent.records} == {"MELD-s"}

    out = tmp_path / "out" / "meld.jsonl"
    assert adapters_main(["meld", "--root", str(root), "--out", str(out)]) == 0
    assert len(read_manifest(out, check_files=True)) == 4


def test_iemocap(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    for sess, dialog, g in ((1, "Ses01F_impro01", "F"), (5, "Ses05M_script01_1", "M")):
        d = root / f"Session{sess}" / "dialog"
        os.makedirs(d / "EmoEvaluation")
        os.makedirs(d / "transcriptions")
        (d / "EmoEvaluation" / f"{dialog}.txt").write_text(
            "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
            f"[0.2000 - 0.9000]\t{dialog}_{g}000\tneu\t[2.5000, 2.5000, 2.5000]\n"
            "C-E1:\tNeutral;\t()\n"
            f"[1.0000 - 1.6000]\t{dialog}_{g}001\texc\t[4.0000, 3.5000, 3.0000]\n"
            f"[1.7000 - 2.2000]\t{dialog}_{g}002\tfru\t[2.0000, 3.5000, 3.0000]\n"
            f"[2.3000 - 2.9000]\t{dialog}_{g}003\tang\t[1.5000, 4.0000, 4.5000]\n"
        )
        (d / "transcriptions" / f"{dialog}.txt").write_text(
            f"{dialog}_{g}000 [000.2000-000.9000]: Excuse me.\n{dialog}_{g}001 [001.0000-001.6000]: Yeah!\n"
            f"{dialog}_{g}003 [002.3000-002.9000]: Get out.\n"
        )
        _clip(str(d / "avi" / "DivX" / f"{dialog}.avi"), seconds=3.0)
        for k in (0, 1, 3):
            _clip(str(root / f"Session{sess}" / "sentences" / "wav" / dialog / f"{dialog}_{g}00{k}.wav"), seconds=0.6)

    res = get_adapter("iemocap")(str(root))
    by_id = {r.clip_id: r for r in res.records}
    assert len(res.records) == 6 and res.skipped["category_fru"] == 2
    r = by_id["iemocap_Ses01F_impro01_F001"]
    assert r.labels == ["happy"] and r.label_space == IEMOCAP4 and r.split == "train"  # exc -> happy
    assert (r.start_s, r.end_s) == (1.0, 1.6) and r.valence == 4.0 and r.arousal == 3.5
    assert r.subtitle == "Yeah!" and r.video_path.endswith("Ses01F_impro01.avi") and r.audio_path.endswith(".wav")
    assert by_id["iemocap_Ses05M_script01_1_M003"].split == "test"
    w = _check_decodes(r)
    assert w.frame_stamps_ns.min() >= 1.0e9 - 1 and w.frame_stamps_ns.max() < 1.6e9
    assert len(w.audio) == int(0.6 * 16000)  # the window spans the segment
    assert (w.start_ns, w.end_ns) == (1_000_000_000, 1_600_000_000)


def test_mer2023(tmp_path):
    root = tmp_path / "mer2023"
    _csv(str(root / "mer2023train" / "train-label.csv"), ["name", "discrete", "valence"],
         [["sample_00000001", "happy", "2.5"], ["sample_00000002", "worried", "-1.0"], ["sample_00000003", "bored", "0"]])
    _csv(str(root / "test-labels" / "test1-label.csv"), ["name", "discrete", "valence"], [["sample_00000010", "sad", "-3"]])
    _csv(str(root / "transcription-engchi-polish.csv"), ["name", "chinese", "english"],
         [["sample_00000001", "太好了", "That is great"], ["sample_00000010", "我很难过", "I am sad"]])
    _clip(str(root / "mer2023train" / "train" / "sample_00000001.avi"))
    _clip(str(root / "mer2023train" / "train" / "sample_00000002.mp4"))
    _clip(str(root / "mer2023train" / "train" / "sample_00000003.avi"))
    _clip(str(root / "test1" / "sample_00000010.avi"))

    res = get_adapter("mer2023")(str(root))
    by_id = {r.clip_id: r for r in res.records}
    assert set(by_id) == {"mer2023_sample_00000001", "mer2023_sample_00000002", "mer2023_sample_00000010"}
    assert res.skipped["label_not_in_space"] == 1
    r = by_id["mer2023_sample_00000010"]
    assert r.split == "test" and r.meta["subset"] == "test1" and r.labels == ["sad"] and r.label_space == MER6
    assert r.subtitle == "I am sad" and r.valence == -3.0
    assert by_id["mer2023_sample_00000002"].subtitle is None and "text" not in by_id["mer2023_sample_00000002"].modalities
    _check_decodes(by_id["mer2023_sample_00000001"])


@pytest.mark.parametrize("name, dataset, pad", [("mosi", "CMU-MOSI", False), ("mosei", "CMU-MOSEI", False),
                                                ("sims", "CH-SIMS", True)])
def test_mmsa_layout(tmp_path, name, dataset, pad):
    root = tmp_path / name
    rows = [["vidA", "1", "this movie was great", "2.4", "train"], ["vidA", "2", "it was fine", "0.0", "valid"],
            ["vidB", "3", "awful acting", "-1.8", "test"], ["vidB", "4", "no file", "1.0", "test"]]
    _csv(str(root / "label.csv"), ["video_id", "clip_id", "text", "label", "annotation", "mode"],
         [[v, c, t, s, "x", m] for v, c, t, s, m in rows])
    for v, c, *_ in rows[:3]:
        _clip(str(root / "Raw" / v / f"{c.zfill(4) if pad else c}.mp4"))
    res = get_adapter(name)(str(root))
    got = {r.meta["clip_id"]: r for r in res.records}
    assert set(got) == {"1", "2", "3"} and res.skipped["missing_media"] == 1
    assert [got[c].labels[0] for c in "123"] == ["positive", "neutral", "negative"]
    assert [got[c].split for c in "123"] == ["train", "val", "test"]
    assert got["3"].valence == -1.8 and got["3"].dataset == dataset and got["3"].label_space == SENTIMENT3
    _check_decodes(got["1"])


def test_sentiment3_band():
    assert [sentiment3(x) for x in (-0.1, 0.0, 0.1)] == ["negative", "neutral", "positive"]
    assert [sentiment3(x, 0.5) for x in (-0.6, 0.4, 0.6)] == ["negative", "neutral", "positive"]


def test_missing_root_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="MELD"):
        get_adapter("meld")(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="Session"):
        get_adapter("iemocap")(str(tmp_path))


@pytest.mark.parametrize("name", ["mer2023", "meld", "iemocap", "mosi", "sims"])
def test_command_line_on_a_wrong_folder_is_one_sentence(tmp_path, capsys, name):
    out = tmp_path / "m.jsonl"
    for root in (tmp_path / "missing", tmp_path):  # a folder that does not exist, one without the data set
        assert adapters_main([name, "--root", str(root), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {name}: ") and f"{name} --help" in err[0], err
    assert not out.exists()


def test_each_adapter_help_shows_its_own_layout(capsys):
    texts = {}
    for name in ("mer2023", "meld", "iemocap", "mosi"):
        with pytest.raises(SystemExit):
            adapters_main([name, "--help"])
        texts[name] = capsys.readouterr().out
        assert "Expected layout" in texts[name]
    assert "train_sent_emo.csv" in texts["meld"] and "Session{1..5}" in texts["iemocap"]
    assert "train-label.csv" in texts["mer2023"] and "label.csv" in texts["mosi"]
    assert len(set(texts.values())) == 4  # not one generic text
