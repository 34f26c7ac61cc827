"""``python -m emotion_ros import-official``: run the released Emotion-LLaMAv2 (emotion_ros.model.official).

    python -m emotion_ros import-official --checkpoint checkpoint_best.pth --llama Llama-2-7b-chat-hf \\
        --eva eva_vit_g.pth --whisper whisper-large-v3 --out models/paper/official [--merge]

writes the project's checkpoint folder (fusion + adapter safetensors, a peft LoRA folder, config.json with the
paper profile and these local paths); the node then runs it with ``profile: paper`` and
``checkpoint: <out>``. Any mismatch is one error message and nothing is written (exit status 2).
"""
from __future__ import annotations

import argparse
import sys


def _run(args) -> int:
    from emotion_ros.backbones.pth import WeightFileError
    from emotion_ros.model.official import import_official

    try:
        report = import_official(args.checkpoint, args.llama, args.eva, args.whisper, args.out, merge=args.merge)
    except WeightFileError as e:
        print(f"import-official: {e}", file=sys.stderr)
        return 2
    print(f"import-official: {report['tensors']} tensors, {report['parameters']:,} trainable parameters -> "
          f"{report['out']}")
    return 0


def add_import_official_command(subparsers) -> argparse.ArgumentParser:
    """Register ``import-official`` on the CLI's subparsers (called by emotion_ros.app.cli)."""
    p = subparsers.add_parser("import-official", help="import a released Emotion-LLaMAv2 checkpoint for the paper "
                                                      "profile (local files only)")
    p.add_argument("--checkpoint", required=True, help="the official checkpoint_best.pth / checkpoint_N.pth")
    p.add_argument("--llama", required=True, help="local Hugging Face folder of Llama-2-7b-chat-hf")
    p.add_argument("--eva", required=True, help="the LAVIS eva_vit_g.pth (BLIP-2 / MiniGPT-4's EVA-ViT-G)")
    p.add_argument("--whisper", required=True, help="local Hugging Face folder of whisper-large-v3")
    p.add_argument("--out", required=True, help="checkpoint folder to write (replaced atomically)")
    p.add_argument("--merge", action="store_true", help="also write OUT/merged_llm: LLaMA with the LoRA folded in "
                                                        "(W += alpha/r * B @ A), for deployment/export")
    p.set_defaults(func=_run)
    return p
