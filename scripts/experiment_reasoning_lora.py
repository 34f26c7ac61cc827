"""Experiment (issue 16; not part of the shipped pipeline): a SEPARATE reasoning LoRA (peft's second adapter
"reason", r 16 on q/v, started from the checkpoint's label LoRA) on the frozen fusion + modal adapter + LLM,
trained on the `think` targets of the train clips only. Prints and writes (--out) the held-out
teacher-forced think-target loss per token (label LoRA / no LoRA / reasoning LoRA), the structured
decoder's texts with the cue metrics of training/cues.py, and answer vs label-path agreement. The runs in
models/nano/adapters/TRAINING.md ("Reasoning path"):

    .venv/bin/python scripts/experiment_reasoning_lora.py --manifest $W/data/manifest_mixed.jsonl \
        --cache $W/run/feature_cache --steps 100 --lr 1e-3 --eval 12 --out reasoning_lora.json
"""
import argparse
import json
import math
import os
import random
import time

import torch
from peft import LoraConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from emotion_ros.model.prompt import INSTRUCTION_POOLS, format_think_target  # noqa: E402
from emotion_ros_training.curriculum import answer_text  # noqa: E402
from emotion_ros_training.data.manifest import read_manifest  # noqa: E402
from emotion_ros_training.evaluate import (load_checkpoint_model, open_cache, predict_cached,  # noqa: E402
                                           think_cached, think_cue_metrics, think_target_nll)

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--checkpoint", default="models/nano/adapters")
ap.add_argument("--manifest", required=True)
ap.add_argument("--cache", required=True, help="the feature cache of the manifest's clips")
ap.add_argument("--steps", type=int, default=100)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--eval", type=int, default=12, help="held-out (test split) clips with a description")
ap.add_argument("--out", required=True)
args = ap.parse_args()
torch.set_num_threads(1)
STEPS, BATCH, LR, NEVAL, OUT = args.steps, args.batch, args.lr, args.eval, args.out
model, meta = load_checkpoint_model(args.checkpoint)
cache = open_cache(model, meta, args.cache)
recs = read_manifest(args.manifest)
train = [r for r in recs if r.split == "train" and r.description and cache.has(r)]
test = [r for r in recs if r.split == "test" and r.description and cache.has(r)][:NEVAL]
peft_model = model.llm.model
peft_model.add_adapter("reason", LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            bias="none", task_type="CAUSAL_LM"))
sd = dict(peft_model.named_parameters())
for n, p in sd.items():  # the reasoning LoRA starts from the label LoRA (it already reads the modal prefix)
    if ".reason." in n:
        p.data.copy_(sd[n.replace(".reason.", ".default.")].data)
for p in model.parameters():
    p.requires_grad_(False)
params = [p for n, p in peft_model.named_parameters() if ".reason." in n]
print("reason LoRA params", sum(p.numel() for p in params), flush=True)


def nll(adapter):
    """Held-out think-target loss (evaluate's think.target_nll) under one adapter (None: no LoRA)."""
    if adapter is None:
        with peft_model.disable_adapter():
            return think_target_nll(model, cache, test)
    peft_model.set_adapter(adapter)
    return think_target_nll(model, cache, test)


res = {"steps": STEPS, "batch": BATCH, "lr": LR, "train_clips": len(train), "heldout": len(test)}
res["nll_label_lora"] = nll("default")
res["nll_no_lora"] = nll(None)
print(res, flush=True)
peft_model.set_adapter("reason")
for p in params:  # after set_adapter, which sets requires_grad of the adapters itself
    p.requires_grad_(True)
opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
# warm-up over 10 steps, then cosine down to 0.1x
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: min(1.0, (s + 1) / 10) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(s, STEPS) / STEPS))))
rng = random.Random(0)
pool = INSTRUCTION_POOLS["think"]
t0 = time.time()
for step in range(STEPS):
    model.train()
    batch = rng.sample(train, BATCH)
    enc = cache.batch(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(enc, ["think"] * BATCH, [list(r.label_space.labels) for r in batch],
                          [pool[rng.randrange(len(pool))].replace("{labels}", ", ".join(r.label_space.labels))
                           for r in batch],
                          [format_think_target(r.description, answer_text(r)) for r in batch], reduction="mean")
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    if step % 10 == 0 or step == STEPS - 1:
        print(f"step {step} loss {float(loss.detach()):.3f} {time.time() - t0:.0f}s", flush=True)
res["train_s"] = time.time() - t0
res["nll_reason_lora"] = nll("reason")
# label path with the label LoRA, reasoning (the structured decoder) with the reasoning LoRA: evaluate's own loops
peft_model.set_adapter("default")
preds = predict_cached(model, cache, test)
peft_model.set_adapter("reason")
gen = think_cached(model, cache, test)
truth = [r.label for r in test]
res["cues"] = think_cue_metrics(test, gen, preds)
res["answer_accuracy"] = sum(g["answer"] == t for g, t in zip(gen, truth)) / len(gen)
res["label_path_accuracy"] = sum(p["label"] == t for p, t in zip(preds, truth)) / len(gen)
res["texts"] = [g["text"] for g in gen[:8]]
with open(OUT, "w") as f:
    json.dump(res, f, indent=1)
print(json.dumps({k: v for k, v in res.items() if k != "texts"}, indent=1))
print("\n".join(res["texts"][:4]))
