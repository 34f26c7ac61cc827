"""Synthetic MMEVerse data: determinism, label shares, held-out voices, conflict/missing samples, recorded cues
and augmentation, decoding, prosody of every engine."""
import hashlib
import os
import shutil
from collections import Counter

import numpy as np
import pytest

from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE, MODALITY_AUDIO, MODALITY_TEXT, MODALITY_VISION
from emotion_ros_training.data.manifest import MER6, read_manifest
from emotion_ros_training.data.media import ClipDataset, probe
from emotion_ros_training import cues as C
from emotion_ros_training.synth import augment, describe, face, speech
from emotion_ros_training.synth.generate import SynthConfig, generate, main, make_plan

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
    assert counts["neutral"] == round(0.35 * N)  # neutral is the common class
    others = [counts[lab] for lab in MER6.labels if lab != "neutral"]
    assert max(others) - min(others) <= 1 and sum(others) == N - counts["neutral"]
    assert {r.split for r in recs} == {"train", "test"}
    kinds = Counter(r.meta["kind"] for r in recs)
    assert kinds["conflict"] == 3 and kinds["no_audio"] == kinds["no_video"] == kinds["no_face"] == 1
    for r in recs:
        m = r.meta
        assert r.think_target.endswith(f"<answer>{r.label}</answer>") and m["think"] == r.think_target
        assert r.description.endswith(f"most likely {describe.ADJECTIVE[r.label]}.")
        cues = m["cues"]
        assert cues["words"] == r.subtitle
        assert (cues["face"] is not None) == (m["face_emotion"] is not None)
        assert (cues["voice"] is not None) == ("audio" in r.modalities) == (m["augment"] is not None)
        if m["voice"]:
            assert speech.is_test_voice(m["voice"]) == (r.split == "test")  # voices held out by split
        if m["kind"] == "conflict":
            assert m["face_emotion"] != m["voice_emotion"] and m["text_emotion"] == "neutral"
            carrier = m["face_emotion"] if m["conflict"] == "video_aligned" else m["voice_emotion"]
            assert carrier == r.label and r.label != "neutral"
            win = cues["winner"]
            assert win["modality"] == ("face" if m["conflict"] == "video_aligned" else "voice")
            strong, weak = (m["face_intensity"], m["voice_intensity"])[:: 1 if win["modality"] == "face" else -1]
            assert strong >= 0.85 and weak <= 0.6  # the winner is the stronger cue
            assert "conflict" in r.description or "disagree" in r.description
            assert ("facial expression" if win["modality"] == "face" else "voice") in r.description.split(". ")[-2] + \
                r.description.split(". ")[-1]
        elif m["kind"] == "consistent":
            assert m["face_emotion"] == m["voice_emotion"] == r.label
            assert m["text_emotion"] in (r.label, "neutral")
        elif m["kind"] == "no_audio":
            assert r.modalities == ["vision"] and r.audio_path is None and not probe(r.video_path).has_audio
        elif m["kind"] == "no_video":
            assert r.video_path is None and r.audio_path.endswith(".wav") and "vision" not in r.modalities
        elif m["kind"] == "no_face":
            assert m["face_emotion"] is None and r.description.split(". ")[0] + "." in describe.NO_FACE


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


def test_reference_descriptions_name_the_recorded_cues(synth_dir):
    """The Stage-2 targets score perfectly on the cue metrics, vary, and copy no instruction."""
    from emotion_ros.model.prompt import BOX_I, BOX_II

    recs = read_manifest(synth_dir / "manifest.jsonl")
    items = [{"text": r.think_target, "cues": r.meta["cues"], "instruction": ins.replace("\u2605", "x")}
             for r in recs for ins in BOX_I + BOX_II]
    m = C.cue_metrics(items)
    assert m["face_cue_accuracy"] == 1.0 and m["voice_cue_accuracy"] == 1.0 and m["words_accuracy"] == 1.0
    assert m["face_cue_n"] > 0 and m["voice_cue_n"] > 0
    assert m["instruction_copy_rate"] == 0.0
    # a description with a wrong cue fails: swap every clip's facial cues with another clip's
    faces = [r for r in recs if r.meta["cues"]["face"]]
    wrong = [{"text": a.think_target, "cues": {"face": b.meta["cues"]["face"]}} for a, b in zip(faces, faces[1:] + faces[:1])
             if C.face_families_recorded(a.meta["cues"]["face"]) != C.face_families_recorded(b.meta["cues"]["face"])]
    assert wrong and C.cue_metrics(wrong)["face_cue_accuracy"] == 0.0


def test_every_phrasing_is_read_back_as_its_cue():
    """Each of the >= 4 phrasings per cue value names exactly that cue in training/cues.py's vocabulary."""
    for region, keys in describe.FACE_PHRASES.items():
        assert set(keys) == set(face.FACE_CUES[region])
        for key, phrases in keys.items():
            fam = C.face_families_recorded([{"region": region, "aus": list(face.FACE_CUES[region][key][0])}])[region]
            assert len(set(phrases)) >= 4
            for p in phrases:
                assert C.face_families_named(p) == {region: fam}, p
    for dim, vals in describe.VOICE_PHRASES.items():
        for val, phrases in vals.items():
            assert len(set(phrases)) >= 4
            exp = "yes" if dim == "pauses" else C.VOICE_COARSE[dim][val]
            for p in phrases:
                assert C.voice_values_named(p) == {dim: {exp}}, p
    for frames in (describe.FACE_FRAMES, describe.VOICE_FRAMES, describe.CONFLICT, describe.CONSISTENT,
                   describe.WORDS_EMOTIONAL, describe.WORDS_NEUTRAL, describe.NO_AUDIO, describe.NO_FACE):
        assert len(set(frames)) >= 4


def test_plan_neutral_share_and_stratified_split():
    plans = make_plan(SynthConfig(num=720, seed=2024))
    labels = Counter(p.label for p in plans)
    assert labels["neutral"] == 252 and all(labels[x] == 93 or labels[x] == 94 for x in MER6.labels if x != "neutral")
    test = Counter(p.label for p in plans if p.split == "test")
    assert sum(test.values()) == 144 and abs(test["neutral"] - 0.35 * 144) <= 3
    assert all(p.label != "neutral" for p in plans if p.kind == "conflict")


def test_voices_split_disjoint_and_engines():
    assert not set(speech.TRAIN_VOICES) & set(speech.TEST_VOICES)
    for pool in (speech.TRAIN_VOICES, speech.TEST_VOICES):
        assert {speech.split_voice(v)[0] for v in pool} == {"espeak", "flite", "festival"}
    assert len(speech.TRAIN_VOICES) >= 60 and len(speech.TEST_VOICES) >= 30
    rng = np.random.default_rng(0)
    assert all(speech.is_test_voice(speech.pick_voice(rng, "test")) for _ in range(50))
    assert not any(speech.is_test_voice(speech.pick_voice(rng, "train")) for _ in range(50))


@pytest.mark.skipif(not all(speech.engines_available().values()), reason="flite/festival not installed (apt-training.txt)")
@pytest.mark.parametrize("voice", ["flite:slt", "flite:rms", "festival:kal_diphone", "festival:cmu_us_slt_arctic_hts"])
def test_other_engines_carry_prosody(voice):
    s = "I put the keys on the table."
    out = {e: speech.synthesize(s, speech.EMOTION_PROSODY[e], voice, rng=np.random.default_rng(0)) for e in ("happy", "sad")}
    assert _f0_median(out["happy"]) > 1.2 * _f0_median(out["sad"])
    lvl = {e: speech.speech_level(x) for e, x in out.items()}
    assert lvl["happy"] > 1.6 * lvl["sad"]  # 125 % vs 60 % after level normalisation
    assert len(out["sad"]) > 1.2 * len(out["happy"])  # slower


def test_augmentation_keeps_the_emotional_pitch_difference():
    """Worst case of the speaker stage: happy shifted down, sad shifted up by the full range, both stretched."""
    s = "I put the keys on the table."
    lo = [{"step": "pitch_shift", "stage": "speaker", "semitones": -augment.PITCH_SEMITONES},
          {"step": "tempo", "stage": "speaker", "rate": augment.TEMPO_RANGE[1]}]
    hi = [{"step": "pitch_shift", "stage": "speaker", "semitones": augment.PITCH_SEMITONES},
          {"step": "tempo", "stage": "speaker", "rate": augment.TEMPO_RANGE[0]}]
    weak = 0.55  # the lowest intensity the generator uses
    rng = np.random.default_rng(1)
    happy = augment.apply(speech.synthesize(s, speech.sample_prosody("happy", rng, weak), "espeak:en-us+m3"), lo,
                          AUDIO_SAMPLE_RATE, "speaker")
    sad = augment.apply(speech.synthesize(s, speech.sample_prosody("sad", rng, weak), "espeak:en-us+m3"), hi,
                        AUDIO_SAMPLE_RATE, "speaker")
    assert _f0_median(happy) > 1.1 * _f0_median(sad)
    assert len(sad) > 1.05 * len(happy)


def test_augmentation_chain_is_seeded_and_recorded():
    x = speech.synthesize("The box is on the shelf.", speech.EMOTION_PROSODY["neutral"], "espeak:en-gb+f2")
    w = np.zeros(2 * AUDIO_SAMPLE_RATE, np.float32)
    w[800:800 + len(x)] = x
    steps = set()
    for seed in range(12):
        chain = augment.sample_chain(np.random.default_rng(seed))
        assert chain == augment.sample_chain(np.random.default_rng(seed))
        a = augment.apply(w, chain, AUDIO_SAMPLE_RATE, "channel")
        assert np.array_equal(a, augment.apply(w, chain, AUDIO_SAMPLE_RATE, "channel")) and len(a) == len(w)
        steps.update(s["step"] for s in chain)
    assert {"pitch_shift", "tempo", "noise", "reverb"} <= steps
    noisy = augment.apply(w, [{"step": "noise", "stage": "channel", "color": "white", "snr_db": 10.0, "seed": 3}],
                          AUDIO_SAMPLE_RATE, "channel")
    snr = 10 * np.log10(np.mean(w ** 2) / np.mean((noisy - w) ** 2))
    assert abs(snr - 10.0) < 1.0
    mp3 = augment.mp3_roundtrip(w, AUDIO_SAMPLE_RATE, 64)
    assert len(mp3) == len(w) and np.corrcoef(w, mp3)[0, 1] > 0.9  # realigned after the codec delay
