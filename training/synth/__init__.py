"""Synthetic MMEVerse-format data: espeak-ng speech with emotional prosody, rendered faces with
controlled expressions, emotional/neutral subtitles, and generated multimodal descriptions.

CLI: python -m emotion_ros_training.synth.generate --out DIR --num N --seed S
"""
