"""Generate synthetic MMEVerse-format clips: real media files + manifest.jsonl, deterministic from a seed.

    python -m emotion_ros_training.synth.generate --out data/synth --num 100 --seed 0 [--workers 2]

Each clip is ~2 s: a rendered face (15 fps, 224x224 H.264) whose expression carries one MER6 emotion,
synthetic speech whose prosody carries one (AAC in the same mp4), and a subtitle whose words carry
the emotion or none. The speech comes from one of ~127 voices of three engines (speech.py: espeak-ng,
flite, festival); train and test clips use disjoint voices (speech.TEST_VOICES), so the test split
measures emotion recognition on voices never heard in training. Each clip's audio then goes through a
seeded augmentation chain (augment.py: pitch/tempo, reverb, noise, telephone band, MP3, resampling,
clipping), recorded in meta["augment"]. Neutral, the common class of real conversations, is
`neutral_fraction` (35 %) of the clips, the other five emotions share the rest equally. Besides
consistent clips there are
  * conflict clips (CA-MER style): face and voice show different emotions, the words are neutral; the
    label is the emotion of the modality named in meta["conflict"] ("video_aligned"/"audio_aligned"),
    and that modality is rendered strongly (intensity 0.85-1) while the other is weak (0.4-0.6), so the
    winner is visible in the clip and the description can say why it wins;
  * missing-modality clips: "no_audio" (silent video, no subtitle), "no_video" (a wav file only),
    "no_face" (video of the background with nobody in it; the voice carries the label).
meta records which emotion each modality carries (face_emotion, voice_emotion, text_emotion) and the
cues the clip renders (meta["cues"]: facial action units of the apex frame, vocal cues as words, the
words, and on conflict clips the winner and why); the Stage-2 description (describe.py) names these.

Clip i depends only on (seed, i) and the plan, so workers can generate clips in any order and the
output bytes are identical for the same arguments (and the same engine/package versions: the Debian TTS
packages of requirements/apt-training.txt and audiomentations==0.43.1).

Cost (scripts/train_nano.sh's --num 720 --seed 2024 --workers 2, measured on the shared 2-core machine under a
load of ~4 from other jobs): 234 s wall, 151 s CPU (user+sys), i.e. ~80 s on an idle 2-core machine; festival
(~16 % of the voiced clips, 0.3-0.6 s per call) and the augmentation (~30 ms per clip) are most of the increase
over the espeak-ng-only generator. generation.json records the label / kind / engine / voice / augmentation
shares of the run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE
from emotion_ros.io import write_text
from emotion_ros_training.data.manifest import MER6, ClipRecord, think_target, write_manifest
from emotion_ros_training.data.media import write_media
from emotion_ros_training.synth import augment as augment_mod
from emotion_ros_training.synth import describe as describe_mod
from emotion_ros_training.synth import face as face_mod
from emotion_ros_training.synth import speech as speech_mod
from emotion_ros_training.synth import text as text_mod
from emotion_ros_training.synth.describe import ADJECTIVE, NOUN  # noqa: F401  (re-exported)

GENERATOR_VERSION = 2  # 2: three engines + held-out voices, augmentation, neutral 35 %, recorded cues
KINDS = ("consistent", "conflict", "no_audio", "no_video", "no_face")
SLOW_VOICES = ("sad", "worried")  # slow rate / pauses: their subtitles are drawn short so they fit at their own pace
# circumplex-style prototypes (valence, arousal in [-1, 1]) scaled by intensity
VA = {"neutral": (0.0, 0.0), "happy": (0.8, 0.5), "sad": (-0.7, -0.5), "angry": (-0.6, 0.8),
      "worried": (-0.5, 0.4), "surprise": (0.3, 0.8)}


@dataclass
class SynthConfig:
    num: int = 100
    seed: int = 0
    duration_s: float = 2.0
    fps: int = 15
    size: tuple[int, int] = (224, 224)
    test_fraction: float = 0.2
    conflict_fraction: float = 0.1
    missing_fraction: float = 0.12
    emotional_text_prob: float = 0.5  # chance that the subtitle's words carry the emotion
    neutral_fraction: float = 0.35  # share of neutral clips; the other labels share the rest equally
    augment: bool = True  # the audio augmentation chain of augment.py
    labels: tuple[str, ...] = MER6.labels
    workers: int = 1


@dataclass
class ClipPlan:
    index: int
    label: str
    kind: str
    split: str
    conflict: str | None = None  # "video_aligned" | "audio_aligned"
    meta: dict = field(default_factory=dict)


def plan_labels(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """cfg.num labels: round(neutral_fraction * num) neutral, the others cycled equally; shuffled."""
    n = cfg.num
    others = [x for x in cfg.labels if x != "neutral"]
    if "neutral" in cfg.labels and others:
        n_neu = int(round(n * cfg.neutral_fraction))
        labels = np.array(["neutral"] * n_neu + list(np.resize(np.array(others), n - n_neu)))
    else:
        labels = np.resize(np.array(cfg.labels), n)
    rng.shuffle(labels)
    return labels


def make_plan(cfg: SynthConfig) -> list[ClipPlan]:
    """Labels (neutral_fraction neutral), kinds spread over labels, stratified train/test split; all from the seed.

    Conflict clips get non-neutral labels (a "neutral winner" of a face/voice conflict is not a cue a clip
    can show); the stratified split keeps every kind/label in both splits in proportion."""
    if not 0 <= cfg.neutral_fraction <= 1:
        raise ValueError(f"neutral_fraction must be in [0, 1], got {cfg.neutral_fraction}")
    rng = np.random.default_rng([cfg.seed, 0xC0FFEE])
    n = cfg.num
    labels = plan_labels(cfg, rng)
    n_conf = int(round(n * cfg.conflict_fraction))
    n_miss = int(round(n * cfg.missing_fraction))
    kinds = np.array(["consistent"] * n, dtype=object)
    emotive = [i for i in rng.permutation(n) if labels[i] != "neutral"]
    conf_idx = emotive[:n_conf]
    kinds[conf_idx] = "conflict"
    rest = [i for i in rng.permutation(n) if kinds[i] == "consistent"]
    for j, i in enumerate(rest[:n_miss]):
        kinds[i] = ("no_audio", "no_video", "no_face")[j % 3]
    # systematic test sampling over (kind, label, random) order keeps every kind/label in both splits
    order = sorted(range(n), key=lambda i: (kinds[i], labels[i], rng.random()))
    split = ["train"] * n
    offset = rng.random()
    for j, i in enumerate(order):
        if np.floor((j + 1) * cfg.test_fraction + offset) > np.floor(j * cfg.test_fraction + offset):
            split[i] = "test"
    plans = []
    for i in range(n):
        conflict = None
        if kinds[i] == "conflict":
            conflict = ("video_aligned", "audio_aligned")[int(rng.integers(2))]
        plans.append(ClipPlan(index=i, label=str(labels[i]), kind=str(kinds[i]), split=split[i], conflict=conflict))
    return plans


def _modal_emotions(plan: ClipPlan, rng: np.random.Generator, cfg: SynthConfig) -> tuple:
    """(face, voice, text) emotions; None = that modality is absent."""
    lab = plan.label
    others = [x for x in cfg.labels if x != lab]
    text_emotion = lab if (lab != "neutral" and rng.random() < cfg.emotional_text_prob) else "neutral"
    if plan.kind == "consistent":
        return lab, lab, text_emotion
    if plan.kind == "conflict":
        distractor = others[int(rng.integers(len(others)))]
        if plan.conflict == "video_aligned":
            return lab, distractor, "neutral"
        return distractor, lab, "neutral"
    if plan.kind == "no_audio":
        return lab, None, None
    if plan.kind == "no_video":
        return None, lab, text_emotion
    if plan.kind == "no_face":
        return None, lab, text_emotion
    raise ValueError(plan.kind)


def _talking_envelope(audio: np.ndarray, n_frames: int, fps: int, sr: int) -> np.ndarray:
    hop = sr // fps
    env = np.array([np.sqrt(np.mean(audio[i * hop:(i + 1) * hop] ** 2)) if i * hop < len(audio) else 0.0
                    for i in range(n_frames)])
    peak = env.max() if env.size and env.max() > 0 else 1.0
    return np.clip(env / peak, 0, 1)


def _intensities(plan: ClipPlan, rng: np.random.Generator) -> tuple[float, float, float]:
    """(label intensity, face intensity, voice intensity). On conflict clips the label's modality is strong
    and the other weak: the winner is the stronger cue, which the clip shows and the description names."""
    intensity = float(rng.uniform(0.55, 1.0))
    strong, weak = float(rng.uniform(0.85, 1.0)), float(rng.uniform(0.4, 0.6))
    if plan.kind != "conflict":
        return intensity, intensity, intensity
    if plan.conflict == "video_aligned":
        return strong, strong, weak
    return strong, weak, strong


def generate_clip(plan: ClipPlan, cfg: SynthConfig, out_dir: str) -> ClipRecord:
    """Render, speak, augment, write and describe one clip."""
    rng = np.random.default_rng([cfg.seed, plan.index])
    sr = AUDIO_SAMPLE_RATE
    n_frames = int(round(cfg.duration_s * cfg.fps))
    n_samples = int(round(cfg.duration_s * sr))
    face_emotion, voice_emotion, text_emotion = _modal_emotions(plan, rng, cfg)
    intensity, face_intensity, voice_intensity = _intensities(plan, rng)
    voice = speech_mod.pick_voice(rng, plan.split)
    slow_voice = voice_emotion in SLOW_VOICES
    subtitle = None
    if text_emotion is not None:
        subtitle = (text_mod.short_sentence if slow_voice else text_mod.sentence)(text_emotion, rng)
    chain = augment_mod.sample_chain(rng) if cfg.augment else []

    audio = prosody = heard = None
    if voice_emotion is not None:
        prosody = speech_mod.sample_prosody(voice_emotion, rng, voice_intensity)
        lead = float(rng.uniform(0.03, 0.12) if slow_voice else rng.uniform(0.05, 0.3))  # slow speech needs the room
        avail = cfg.duration_s - lead - 0.05
        tempo = augment_mod.tempo_factor(chain)
        # a slower tempo lengthens the utterance by 1/tempo: speak it short enough to still fit
        speech, spoken = speech_mod.synthesize(subtitle, prosody, voice, rng=rng, max_seconds=avail * min(1.0, tempo),
                                               return_prosody=True)
        speech = augment_mod.apply(speech, chain, sr, "speaker")[: int(avail * sr)]
        heard = speech_mod.effective_prosody(spoken, augment_mod.pitch_semitones(chain), tempo)
        gain = float(np.exp(rng.normal(0, 0.15)))  # microphone gain, smaller than the emotion effect
        audio = np.zeros(n_samples, np.float32)
        s0 = int(lead * sr)
        audio[s0:s0 + len(speech)] = speech[: n_samples - s0] * gain
        audio += rng.standard_normal(n_samples).astype(np.float32) * float(rng.uniform(0.0005, 0.004))
        audio = augment_mod.apply(audio, chain, sr, "channel")
        audio = np.clip(audio, -1, 1)

    has_video = plan.kind != "no_video"
    frames = face_info = None
    if has_video:
        talking = _talking_envelope(audio, n_frames, cfg.fps, sr) if audio is not None else None
        frames, face_info = face_mod.render_clip(face_emotion, n_frames, rng, cfg.size, face_intensity, talking)

    clip_id = f"synth_{plan.index:06d}"
    os.makedirs(os.path.join(out_dir, "clips"), exist_ok=True)
    if has_video:
        path = os.path.join(out_dir, "clips", clip_id + ".mp4")
        write_media(path, frames, cfg.fps, audio, sr)
        video_path, audio_path = path, (path if audio is not None else None)
    else:
        path = os.path.join(out_dir, "clips", clip_id + ".wav")
        write_media(path, None, cfg.fps, audio, sr)
        video_path, audio_path = None, path

    modalities = []
    if audio_path:
        modalities.append("audio")
    if video_path:
        modalities.append("vision")
    if subtitle:
        modalities.append("text")
    has_face = face_info is not None and face_emotion is not None
    cues = clip_cues(plan, face_emotion if has_face else None, voice_emotion, text_emotion,
                     face_info if has_face else None, heard, voice if audio is not None else None, subtitle)
    description = describe_mod.describe(cues, plan.label, plan.kind, np.random.default_rng([cfg.seed, plan.index, 1]))
    v, a = VA[plan.label]
    meta = {
        "kind": plan.kind,
        "conflict": plan.conflict,
        "face_emotion": face_emotion if has_face else None,
        "voice_emotion": voice_emotion,
        "text_emotion": text_emotion,
        "intensity": round(intensity, 3),
        "face_intensity": round(face_intensity, 3) if has_face else None,
        "voice_intensity": round(voice_intensity, 3) if audio is not None else None,
        "voice": voice if audio is not None else None,
        "voice_split": ("test" if speech_mod.is_test_voice(voice) else "train") if audio is not None else None,
        "prosody": prosody.to_dict() if prosody is not None else None,
        "prosody_heard": heard.to_dict() if heard is not None else None,
        "augment": chain if audio is not None else None,
        "face_apex": face_info.get("apex") if face_info else None,
        "cues": cues,
        "think": think_target(description, plan.label),
        "generator": {"name": "emotion_ros_training.synth.generate", "version": GENERATOR_VERSION, "seed": cfg.seed,
                      "index": plan.index},
    }
    return ClipRecord(
        clip_id=clip_id, dataset="SYNTH", split=plan.split, label_space=MER6, labels=[plan.label],
        video_path=video_path, audio_path=audio_path, subtitle=subtitle,
        valence=round(v * intensity, 3), arousal=round(a * intensity, 3),
        description=description, modalities=modalities, meta=meta,
    )


def clip_cues(plan: ClipPlan, face_emotion, voice_emotion, text_emotion, face_info, heard, voice, subtitle) -> dict:
    """The cues a clip renders, as recorded in meta["cues"]:

    face: [{region, key, aus}] of the apex frame (face.face_cues) or None; voice: {pitch, intonation, rate,
    loudness[, pauses]} as words from the prosody heard after augmentation (speech.voice_cues; a dimension the
    voice's engine does not render is left out) or None; words: the transcript or None; text_emotion; on
    conflict clips face_emotion, voice_emotion and winner {modality, emotion, reason}."""
    cues: dict = {
        "face": face_mod.face_cues(face_info["apex"]) if face_info is not None else None,
        "voice": speech_mod.voice_cues(heard, speech_mod.controls(voice)) if heard is not None else None,
        "words": subtitle,
        "text_emotion": text_emotion,
    }
    if plan.kind == "conflict":
        win = "face" if plan.conflict == "video_aligned" else "voice"
        cues.update(face_emotion=face_emotion, voice_emotion=voice_emotion,
                    winner={"modality": win, "emotion": plan.label,
                            "reason": f"the {win} shows its emotion strongly, the other modality only weakly; "
                                      "the words are neutral"})
    return cues


def describe(plan: ClipPlan, face_emotion, voice_emotion, text_emotion, face_info, prosody, subtitle,
             rng: np.random.Generator | None = None, voice: str | None = None) -> str:
    """The multimodal reasoning target: the cues actually rendered, then how they combine (describe.py)."""
    cues = clip_cues(plan, face_emotion, voice_emotion, text_emotion, face_info, prosody,
                     voice or "espeak:en-us+m3", subtitle)
    return describe_mod.describe(cues, plan.label, plan.kind, rng if rng is not None else np.random.default_rng(0))


def _work(args) -> dict:
    plan, cfg, out_dir = args
    return generate_clip(plan, cfg, out_dir).to_dict()


def generate(cfg: SynthConfig, out_dir: str | os.PathLike, progress: bool = False) -> list[ClipRecord]:
    """Write cfg.num clips under out_dir/clips and out_dir/manifest.jsonl; returns the records."""
    if not speech_mod.espeak_available():
        raise RuntimeError("espeak-ng not found: apt-get install espeak-ng (see requirements/apt-training.txt)")
    engines = speech_mod.engines_available()
    missing = [e for e, ok in engines.items() if not ok]
    if missing:  # their clips fall back to espeak-ng voices; say so rather than silently changing the data
        print(f"synth: speech engine(s) {missing} not installed; their clips use espeak-ng voices "
              "(apt-get install flite festival festvox-us-slt-hts festvox-kallpc16k)", file=sys.stderr)
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    plans = make_plan(cfg)
    jobs = [(p, cfg, out_dir) for p in plans]
    if cfg.workers > 1 and len(jobs) > 1:
        with get_context("spawn" if sys.platform == "darwin" else "fork").Pool(cfg.workers) as pool:
            it = pool.imap(_work, jobs, chunksize=1)
            dicts = list(_progress(it, len(jobs), progress))
    else:
        dicts = list(_progress(map(_work, jobs), len(jobs), progress))
    records = [ClipRecord.from_dict(d) for d in dicts]
    write_manifest(os.path.join(out_dir, "manifest.jsonl"), records)
    info = {"generator": "emotion_ros_training.synth.generate", "version": GENERATOR_VERSION, "seed": cfg.seed,
            "num": cfg.num, "duration_s": cfg.duration_s, "fps": cfg.fps, "size": list(cfg.size),
            "label_space": MER6.to_dict(), "test_fraction": cfg.test_fraction,
            "conflict_fraction": cfg.conflict_fraction, "missing_fraction": cfg.missing_fraction,
            "neutral_fraction": cfg.neutral_fraction, "augment": cfg.augment, "engines": engines,
            "train_voices": len(speech_mod.TRAIN_VOICES), "test_voices": len(speech_mod.TEST_VOICES),
            "stats": generation_stats(records)}
    write_text(Path(out_dir, "generation.json"), json.dumps(info, indent=2) + "\n")
    return records


def generation_stats(records: list[ClipRecord]) -> dict:
    """Label / kind / engine / augmentation shares and voice counts per split (written to generation.json)."""
    from collections import Counter

    n = len(records)
    out: dict = {"labels": dict(Counter(r.label for r in records)), "kinds": dict(Counter(r.meta["kind"] for r in records))}
    for split in ("train", "test"):
        rs = [r for r in records if r.split == split]
        voices = [r.meta.get("voice") for r in rs if r.meta.get("voice")]
        out[split] = {"n": len(rs), "labels": dict(Counter(r.label for r in rs)), "distinct_voices": len(set(voices)),
                      "engines": dict(Counter(v.split(":")[0] for v in voices))}
    steps = Counter(s["step"] for r in records for s in (r.meta.get("augment") or []))
    n_audio = sum(r.meta.get("augment") is not None for r in records)
    out["augment_share"] = {k: round(v / max(1, n_audio), 3) for k, v in sorted(steps.items())}
    out["n"] = n
    return out


def _progress(it, total, enabled):
    if not enabled:
        yield from it
        return
    from tqdm import tqdm

    yield from tqdm(it, total=total, desc="synth clips", unit="clip")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emotion_ros_training.synth.generate",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory (clips/ + manifest.jsonl)")
    ap.add_argument("--num", type=int, default=100, help="number of clips")
    ap.add_argument("--seed", type=int, default=0, help="random seed (same arguments, same bytes)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes rendering clips")
    ap.add_argument("--duration", type=float, default=2.0, help="clip length in seconds")
    ap.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("W", "H"), help="frame size in pixels")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="share of clips in split test (per label)")
    ap.add_argument("--conflict-fraction", type=float, default=0.1,
                    help="share of conflict clips (face and voice show different emotions)")
    ap.add_argument("--missing-fraction", type=float, default=0.12,
                    help="share of missing-modality clips (no audio, no video, no face)")
    ap.add_argument("--neutral-fraction", type=float, default=0.35,
                    help="share of neutral clips (the other emotions share the rest equally)")
    ap.add_argument("--no-augment", action="store_true", help="no audio augmentation chain")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.num < 1:
        ap.error("--num must be >= 1")
    cfg = SynthConfig(num=args.num, seed=args.seed, duration_s=args.duration, size=tuple(args.size),
                      test_fraction=args.test_fraction, conflict_fraction=args.conflict_fraction,
                      missing_fraction=args.missing_fraction, neutral_fraction=args.neutral_fraction,
                      augment=not args.no_augment, workers=args.workers)
    t0 = time.time()
    records = generate(cfg, args.out, progress=sys.stderr.isatty())
    n_test = sum(r.split == "test" for r in records)
    print(f"wrote {len(records)} clips ({len(records) - n_test} train, {n_test} test) to {args.out} "
          f"in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
