"""Export trained parts for shipping: a trainable checkpoint re-saved with a smaller float type.

    python -m emotion_ros_training.export --checkpoint RUN/stage2/final --out models/nano/adapters [--dtype float16]

Why: the trainable parts are trained in fp32, but fp16 storage halves the shipped files; loading into the
fp32 model (emotion_ros.model.checkpoint.load_trainable, or build_model with trainable_path) upcasts them. The
result is an ordinary emotion_ros.model.checkpoint directory (safetensors + config.json with checksums, LoRA
in peft's format), built for the model config recorded in the source checkpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def export(checkpoint: str, out: str, dtype: str = "float16", metadata: dict | None = None) -> Path:
    from emotion_ros.model.checkpoint import read_config, save_trainable
    from emotion_ros_training.evaluate import load_checkpoint_model

    model, meta = load_checkpoint_model(checkpoint)
    dt = DTYPES[dtype]
    with torch.no_grad():
        for module in model.trainable_modules().values():
            module.to(dt)
        for name, p in model.llm.model.named_parameters():
            if "lora_" in name:
                p.data = p.data.to(dt)
    md = dict(read_config(checkpoint).get("metadata") or {})
    md.update(metadata or {})
    md["exported_from"] = str(checkpoint)
    md["storage_dtype"] = dtype
    model.cfg.trainable_path = None  # the recorded config describes the architecture, not a location
    return save_trainable(model, out, metadata=md)


def size_bytes(directory) -> int:
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emotion_ros_training.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="trained checkpoint folder (e.g. RUN/stage2/final)")
    ap.add_argument("--out", required=True, help="checkpoint folder to write (replaced as a whole, atomically)")
    ap.add_argument("--dtype", default="float16", choices=sorted(DTYPES),
                    help="storage dtype of the trained tensors (loaded back into float32)")
    ap.add_argument("--metadata", help="JSON object merged into the checkpoint's metadata")
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = build_parser()
    ns = ap.parse_args(argv)
    path = export(ns.checkpoint, ns.out, ns.dtype, json.loads(ns.metadata) if ns.metadata else None)
    print(json.dumps({"out": str(path), "bytes": size_bytes(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
