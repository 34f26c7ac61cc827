"""Generate synthetic MMEVerse-format clips: real media files + manifest.jsonl, deterministic from a seed.

    python -m emotion_ros_training.synth.generate --out data/synth --num 100 --seed 0 [--workers 2]

Each clip is ~2 s: a rendered face (15 fps, 224x224 H.264) whose expression carries one MER6 emotion,
espeak-ng speech whose prosody carries one (AAC in the same mp4), and a subtitle whose words carry
the emotion or none. Labels are balanced over MER6. Besides consistent clips there are
  * conflict clips (CA-MER style): face and voice show different emotions, the words are neutral; the
    label is the emotion of the modality named in meta["conflict"] ("video_aligned"/"audio_aligned");
  * missing-modality clips: "no_audio" (silent video, no subtitle), "no_video" (a wav file only),
    "no_face" (video of the background with nobody in it; the voice carries the label).
meta records which emotion each modality carries (face_emotion, voice_emotion, text_emotion).

Clip i depends only on (seed, i) and the plan, so workers can generate clips in any order and the
output bytes are identical for the same arguments.
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
from emotion_ros_training.synth import face as face_mod
from emotion_ros_training.synth import speech as speech_mod
from emotion_ros_training.synth import text as text_mod

GENERATOR_VERSION = 1
KINDS = ("consistent", "conflict", "no_audio", "no_video", "no_face")

ADJECTIVE = {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry", "worried": "worried",
             "surprise": "surprised"}
NOUN = {"neutral": "no particular emotion", "happy": "happiness", "sad": "sadness", "angry": "anger",
        "worried": "worry", "surprise": "surprise"}
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


def make_plan(cfg: SynthConfig) -> list[ClipPlan]:
    """Balanced labels, kinds spread over labels, stratified train/test split; all from the seed."""
    rng = np.random.default_rng([cfg.seed, 0xC0FFEE])
    n = cfg.num
    labels = np.resize(np.array(cfg.labels), n)
    rng.shuffle(labels)
    n_conf = int(round(n * cfg.conflict_fraction))
    n_miss = int(round(n * cfg.missing_fraction))
    kinds = ["conflict"] * n_conf + [("no_audio", "no_video", "no_face")[j % 3] for j in range(n_miss)]
    kinds += ["consistent"] * (n - len(kinds))
    kinds = np.array(kinds[:n])
    rng.shuffle(kinds)
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


def generate_clip(plan: ClipPlan, cfg: SynthConfig, out_dir: str) -> ClipRecord:
    """Render, speak, write and describe one clip."""
    rng = np.random.default_rng([cfg.seed, plan.index])
    sr = AUDIO_SAMPLE_RATE
    n_frames = int(round(cfg.duration_s * cfg.fps))
    n_samples = int(round(cfg.duration_s * sr))
    face_emotion, voice_emotion, text_emotion = _modal_emotions(plan, rng, cfg)
    intensity = float(rng.uniform(0.55, 1.0))
    voice = speech_mod.VOICES[int(rng.integers(len(speech_mod.VOICES)))]
    subtitle = text_mod.sentence(text_emotion, rng) if text_emotion is not None else None

    audio = prosody = None
    if voice_emotion is not None:
        prosody = speech_mod.sample_prosody(voice_emotion, rng, intensity)
        lead = float(rng.uniform(0.05, 0.3))
        speech = speech_mod.synthesize(subtitle, prosody, voice, rng=rng, max_seconds=cfg.duration_s - lead - 0.05)
        gain = float(np.exp(rng.normal(0, 0.15)))  # microphone gain, smaller than the emotion effect
        audio = np.zeros(n_samples, np.float32)
        s0 = int(lead * sr)
        audio[s0:s0 + len(speech)] = speech[: n_samples - s0] * gain
        audio += rng.standard_normal(n_samples).astype(np.float32) * float(rng.uniform(0.0005, 0.004))
        audio = np.clip(audio, -1, 1)

    has_video = plan.kind != "no_video"
    frames = face_info = None
    if has_video:
        talking = _talking_envelope(audio, n_frames, cfg.fps, sr) if audio is not None else None
        frames, face_info = face_mod.render_clip(face_emotion, n_frames, rng, cfg.size, intensity, talking)

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
    description = describe(plan, face_emotion, voice_emotion, text_emotion, face_info, prosody, subtitle)
    v, a = VA[plan.label]
    meta = {
        "kind": plan.kind,
        "conflict": plan.conflict,
        "face_emotion": face_emotion if face_info is not None else None,
        "voice_emotion": voice_emotion,
        "text_emotion": text_emotion,
        "intensity": round(intensity, 3),
        "voice": voice if audio is not None else None,
        "prosody": prosody.to_dict() if prosody is not None else None,
        "face_apex": face_info.get("apex") if face_info else None,
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


def describe(plan: ClipPlan, face_emotion, voice_emotion, text_emotion, face_info, prosody, subtitle) -> str:
    """The multimodal reasoning target: the cues actually rendered, then how they combine."""
    parts = []
    if face_info is not None and face_emotion is not None:
        parts.append(face_mod.describe_face(face_info["apex"]))
    elif plan.kind == "no_face":
        parts.append("No face is visible in the video, so there is no facial expression to read.")
    else:
        parts.append("There is no video, so no facial cues are available.")
    if prosody is not None:
        parts.append(speech_mod.describe_voice(prosody))
    else:
        parts.append("There is no audio, so neither the tone of voice nor any spoken words are available.")
    if subtitle is not None:
        if text_emotion and text_emotion != "neutral":
            parts.append(f'The person says: "{subtitle}", words that express {NOUN[text_emotion]}.')
        else:
            parts.append(f'The person says: "{subtitle}", a matter-of-fact sentence that carries no emotion by itself.')
    lab = plan.label
    adj = ADJECTIVE[lab]
    if plan.kind == "consistent":
        srcs = ["facial expression", "voice"] + (["words"] if text_emotion == lab and lab != "neutral" else [])
        if lab == "neutral":
            parts.append("Face and voice are calm and show no marked emotion, so the person is most likely neutral.")
        else:
            both = "all" if len(srcs) > 2 else "both"
            parts.append(f"The {_join(srcs)} {both} point to {NOUN[lab]}, so the person is most likely {adj}.")
    elif plan.kind == "conflict":
        f_adj, v_adj = ADJECTIVE[face_emotion], ADJECTIVE[voice_emotion]
        trusted = "facial expression" if plan.conflict == "video_aligned" else "voice"
        parts.append(f"The cues conflict: the face looks {f_adj} while the voice sounds {v_adj}, and the words do "
                     f"not settle it. Weighing the {trusted} as the more genuine signal, the person is most likely {adj}.")
    elif plan.kind == "no_audio":
        parts.append(f"Relying on the face alone, the person is most likely {adj}.")
    else:
        cue = "the voice" + (" and the words" if text_emotion == lab and lab != "neutral" else "")
        parts.append(f"Relying on {cue}, the person is most likely {adj}.")
    return " ".join(parts)


def _join(xs: list[str]) -> str:
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]


def _work(args) -> dict:
    plan, cfg, out_dir = args
    return generate_clip(plan, cfg, out_dir).to_dict()


def generate(cfg: SynthConfig, out_dir: str | os.PathLike, progress: bool = False) -> list[ClipRecord]:
    """Write cfg.num clips under out_dir/clips and out_dir/manifest.jsonl; returns the records."""
    if not speech_mod.espeak_available():
        raise RuntimeError("espeak-ng not found: apt-get install espeak-ng (see requirements/apt-training.txt)")
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
            "conflict_fraction": cfg.conflict_fraction, "missing_fraction": cfg.missing_fraction}
    write_text(Path(out_dir, "generation.json"), json.dumps(info, indent=2) + "\n")
    return records


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
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.num < 1:
        ap.error("--num must be >= 1")
    cfg = SynthConfig(num=args.num, seed=args.seed, duration_s=args.duration, size=tuple(args.size),
                      test_fraction=args.test_fraction, conflict_fraction=args.conflict_fraction,
                      missing_fraction=args.missing_fraction, workers=args.workers)
    t0 = time.time()
    records = generate(cfg, args.out, progress=sys.stderr.isatty())
    n_test = sum(r.split == "test" for r in records)
    print(f"wrote {len(records)} clips ({len(records) - n_test} train, {n_test} test) to {args.out} "
          f"in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
