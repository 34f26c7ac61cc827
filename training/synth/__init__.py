"""Synthetic MMEVerse-format data: speech with emotional prosody from three engines (espeak-ng, flite,
festival; ~127 voices, train/test split by voice), a seeded audio augmentation chain (audiomentations),
rendered faces with controlled expressions, emotional/neutral subtitles, neutral as the common class, the
cues every clip renders recorded in its manifest record, and Stage-2 descriptions of those cues.

CLI: python -m emotion_ros_training.synth.generate --out DIR --num N --seed S
     python -m emotion_ros_training.synth.realism --per-class 24 --seed 2026   (real-face expert check)
"""
