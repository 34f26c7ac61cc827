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
from emotion_ros.model.prompt import INSTRUCTION_POOLS, format_think_target, parse_answer  # noqa: E402
from emotion_ros.model.prompt import instruction as make_instruction  # noqa: E402
from emotion_ros_training.data.manifest import read_manifest  # noqa: E402
from emotion_ros_training.evaluate import load_checkpoint_model, open_cache, think_cue_metrics  # noqa: E402

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
peft_model.add_adapter("reason", LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"], bias="none",
                                            task_type="CAUSAL_LM"))
sd = dict(peft_model.named_parameters())
for n, p in sd.items():  # the reasoning LoRA starts from the label LoRA (it already reads the modal prefix)
    if ".reason." in n:
        p.data.copy_(sd[n.replace(".reason.", ".default.")].data)
for p in model.parameters():
    p.requires_grad_(False)
params = [p for n, p in peft_model.named_parameters() if ".reason." in n]
for p in params:
    p.requires_grad_(True)
print("reason LoRA params", sum(p.numel() for p in params), flush=True)

def nll(adapter):
    model.eval(); tot = 0.0
    with torch.no_grad():
        for r in test:
            enc = cache.load(r)
            if adapter is None:
                with peft_model.disable_adapter():
                    tot += float(model.loss(enc, "think", [list(r.label_space.labels)], None, [format_think_target(r.description, r.label)]))
            else:
                peft_model.set_adapter(adapter)
                tot += float(model.loss(enc, "think", [list(r.label_space.labels)], None, [format_think_target(r.description, r.label)]))
    return tot / len(test)

res = {"steps": STEPS, "batch": BATCH, "lr": LR, "train_clips": len(train), "heldout": len(test)}
res["nll_label_lora"] = nll("default"); res["nll_no_lora"] = nll(None)
print(res, flush=True)
peft_model.set_adapter("reason")
for p in params:
    p.requires_grad_(True)
opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, STEPS) / STEPS))))
rng = random.Random(0); t0 = time.time()
for step in range(STEPS):
    model.train()
    batch = rng.sample(train, BATCH)
    pool = INSTRUCTION_POOLS["think"]
    enc = cache.batch(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(enc, ["think"] * BATCH, [list(r.label_space.labels) for r in batch],
                          [pool[rng.randrange(len(pool))].replace("{labels}", ", ".join(r.label_space.labels)) for r in batch],
                          [format_think_target(r.description, r.label) for r in batch], reduction="mean")
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); sched.step()
    if step % 10 == 0 or step == STEPS - 1:
        print(f"step {step} loss {float(loss):.3f} {time.time() - t0:.0f}s", flush=True)
res["train_s"] = time.time() - t0
res["nll_reason_lora"] = nll("reason")
model.eval(); gen, preds = [], []
with torch.no_grad():
    for r in test:
        enc = cache.load(r); labels = list(r.label_space.labels)
        peft_model.set_adapter("default")
        pr = model.llm.score_labels(model.prompts(enc, "emotion", labels)[0], labels)[0]
        preds.append({"label": labels[int(torch.argmax(pr))]})
        peft_model.set_adapter("reason")
        prompt = model.prompts(enc, "think", labels)[0]
        text = "".join(model.llm.generate(prompt, model.reasoning_rules("think", labels, 160)))
        gen.append({"clip_id": r.clip_id, "text": text, "answer": parse_answer(text, labels),
                    "instruction": make_instruction("think", labels), "truth": r.label})
res["cues"] = think_cue_metrics(test, gen, preds)
res["answer_accuracy"] = sum(g["answer"] == g["truth"] for g in gen) / len(gen)
res["label_path_accuracy"] = sum(p["label"] == g["truth"] for p, g in zip(preds, gen)) / len(gen)
res["texts"] = [g["text"] for g in gen[:8]]
json.dump(res, open(OUT, "w"), indent=1)
print(json.dumps({k: v for k, v in res.items() if k != "texts"}, indent=1)); print("\n".join(res["texts"][:4]))
