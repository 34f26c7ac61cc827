"""Synthetic MMEVerse data: determinism, balance, conflict/missing samples, decoding, prosody."""
import hashlib
import os
import shutil
from collections import Counter

import numpy as np
import pytest

from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE, MODALITY_AUDIO, MODALITY_TEXT, MODALITY_VISION
from emotion_ros_training.data.manifest import MER6, read_manifest
from emotion_ros_training.data.media import ClipDataset, probe
from emotion_ros_training.synth import speech
from emotion_ros_training.synth.generate import SynthConfig, generate, main

pytestmark = pytest.mark.skipif(not speech.espeak_available(), reason="espeak-ng not installed (apt-training.txt)")

N = 12


def _cfg(**kw):
    base = dict(num=N, seed=7, conflict_fraction=0.25, missing_fraction=0.25, test_fraction=0.25, workers=2)
    base.update(kw)
    return SynthConfig(**base)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(_cfg(), out)
    return out


def _digest(d):
    h = {}
    for dirpath, _, files in os.walk(d):
        for f in files:
            p = os.path.join(dirpath, f)
            h[os.path.relpath(p, d)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return h


def test_deterministic_bytes(synth_dir, tmp_path):
    again = tmp_path / "again"
    generate(_cfg(workers=1), again)  # other worker count, same bytes
    a, b = _digest(synth_dir), _digest(again)
    assert len(a) == N + 2 and a == b
    other = tmp_path / "other"
    generate(_cfg(num=2, seed=8, workers=1), other)
    assert _digest(other)["clips/synth_000000.mp4"] != a.get("clips/synth_000000.mp4")


def test_manifest_balance_and_special_samples(synth_dir):
    recs = read_manifest(synth_dir / "manifest.jsonl", check_files=True)
    assert len(recs) == N
    assert all(r.label_space == MER6 and r.dataset == "SYNTH" for r in recs)
    counts = Counter(r.label for r in recs)
    assert set(counts) == set(MER6.labels) and max(counts.values()) - min(counts.values()) <= 1
    assert {r.split for r in recs} == {"train", "test"}
    kinds = Counter(r.meta["kind"] for r in recs)
    assert kinds["conflict"] == 3 and kinds["no_audio"] == kinds["no_video"] == kinds["no_face"] == 1
    for r in recs:
        m = r.meta
        assert r.think_target.endswith(f"<answer>{r.label}</answer>") and m["think"] == r.think_target
        if m["kind"] == "conflict":
            assert m["face_emotion"] != m["voice_emotion"] and m["text_emotion"] == "neutral"
            carrier = m["face_emotion"] if m["conflict"] == "video_aligned" else m["voice_emotion"]
            assert carrier == r.label
            assert "conflict" in r.description
        elif m["kind"] == "consistent":
            assert m["face_emotion"] == m["voice_emotion"] == r.label
            assert m["text_emotion"] in (r.label, "neutral")
        elif m["kind"] == "no_audio":
            assert r.modalities == ["vision"] and r.audio_path is None and not probe(r.video_path).has_audio
        elif m["kind"] == "no_video":
            assert r.video_path is None and r.audio_path.endswith(".wav") and "vision" not in r.modalities
        elif m["kind"] == "no_face":
            assert m["face_emotion"] is None and "No face" in r.description


def test_decoded_windows(synth_dir):
    ds = ClipDataset(synth_dir / "manifest.jsonl")
    seen = set()
    for rec, w in zip(ds.records, ds):
        kind = rec.meta["kind"]
        if kind == "no_video":
            assert w.frames is None and w.modalities == MODALITY_AUDIO | MODALITY_TEXT
            assert abs(len(w.audio) - 2 * AUDIO_SAMPLE_RATE) < 400
        else:
            assert w.frames.shape == (16, 224, 224, 3) and w.frames.dtype == np.uint8
            assert w.global_frame.shape == (224, 224, 3)
            assert np.all(np.diff(w.frame_stamps_ns) > 0)
            assert w.end_ns - w.start_ns == 2_000_000_000
        if kind == "no_audio":
            assert w.audio is None and w.transcript is None and w.modalities == MODALITY_VISION
        elif kind != "no_video":
            assert w.audio.dtype == np.float32 and len(w.audio) == 2 * AUDIO_SAMPLE_RATE
            assert np.sqrt(np.mean(w.audio ** 2)) > 0.005  # there is speech in it
            assert w.transcript == rec.subtitle
        assert w.meta["labels"] == rec.labels
        seen.add(kind)
    assert seen == {"consistent", "conflict", "no_audio", "no_video", "no_face"}


def test_faces_differ_from_background(synth_dir):
    recs = {r.meta["kind"]: r for r in read_manifest(synth_dir / "manifest.jsonl")}
    ds = ClipDataset([recs["consistent"], recs["no_face"]])
    face_w, blank_w = ds[0], ds[1]
    # a face moves (talking, blinking, expression) more than an empty textured background
    motion = lambda w: np.abs(np.diff(w.frames.astype(np.int16), axis=0)).mean()
    assert motion(face_w) > motion(blank_w)


def _f0_median(x, sr=AUDIO_SAMPLE_RATE):
    """Median pitch (Hz) from frame-wise autocorrelation over voiced frames."""
    fl, hop = int(0.04 * sr), int(0.01 * sr)
    lo, hi = int(sr / 400), int(sr / 60)
    f0 = []
    for s in range(0, len(x) - fl, hop):
        fr = x[s:s + fl] - x[s:s + fl].mean()
        if np.sqrt(np.mean(fr ** 2)) < 0.02:
            continue
        ac = np.correlate(fr, fr, "full")[fl - 1:]
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.4 * ac[0]:
            f0.append(sr / k)
    return float(np.median(f0))


def test_prosody_is_measurable():
    sentences = ["I put the keys on the table.", "The bus comes every hour."]
    voices = ["en-us+m3", "en-gb+f2", "en-029+m1"]
    stats = {}
    for emo in ("happy", "angry", "sad"):
        rms, f0, dur = [], [], []
        for v in voices:
            for s in sentences:
                x = speech.synthesize(s, speech.EMOTION_PROSODY[emo], v)
                rms.append(np.sqrt(np.mean(x ** 2)))
                f0.append(_f0_median(x))
                dur.append(len(x) / AUDIO_SAMPLE_RATE)
        stats[emo] = (np.mean(rms), np.mean(f0), np.mean(dur))
    assert stats["angry"][0] > 1.5 * stats["sad"][0] and stats["happy"][0] > 1.3 * stats["sad"][0]  # energy
    assert stats["happy"][1] > 1.15 * stats["sad"][1] and stats["angry"][1] > 1.1 * stats["sad"][1]  # pitch
    assert stats["sad"][2] > 1.2 * stats["angry"][2]  # sad is slower


def test_speech_fits_window():
    x = speech.synthesize("I do not think I can do this at all today.", speech.EMOTION_PROSODY["sad"], "en-us+m3",
                          rng=np.random.default_rng(0), max_seconds=1.5)
    assert 0 < len(x) <= 1.5 * AUDIO_SAMPLE_RATE


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cli"), "--num", "3", "--seed", "1", "--workers", "1"]) == 0
    assert "wrote 3 clips" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "cli" / "manifest.jsonl", check_files=True)) == 3
    assert (tmp_path / "cli" / "generation.json").is_file()
    shutil.rmtree(tmp_path / "cli")
