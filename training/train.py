"""Train one curriculum stage: fusion + modal adapter + LoRA on cached frozen-encoder features.

    python -m emotion_ros_training.train --recipe tiny|nano|paper --manifest M --stage 1|2|joint|reason --out DIR [--resume]
    torchrun --nproc_per_node 2 -m emotion_ros_training.train ...      # same command, several processes

Output, per stage, in ``DIR/stage<S>/``:
- ``checkpoints/step_NNNNNNN/``: resumable state, written atomically (temporary dir + rename):
  ``trainable/`` (emotion_ros.model.checkpoint: fusion/adapter safetensors + peft LoRA), ``optimizer.safetensors``
  (AdamW moments), ``rng.safetensors`` (every process's torch RNG), ``state.json`` (step, recipe, data
  position, optimiser hyper-parameters, scheduler state, Python/NumPy RNG states, file checksums).
  ``latest.json`` points at the newest; older ones beyond ``keep_checkpoints`` are removed.
- ``final/``: the trained parts (emotion_ros.model.checkpoint format) once the stage completes.
- ``metrics.jsonl`` (one JSON object per step: step, stage, loss, lr, time ...), ``loss.png``,
  ``eval.json`` (held-out metrics when --eval-split is given).
Stage 2 starts from ``DIR/stage1/final`` unless ``--init`` names another checkpoint. Stage "reason" (the
reasoning adapter, training/curriculum.py) starts from ``--init`` (default ``DIR/stage2/final``): it adds the
second LoRA as a copy of the label LoRA and trains only that; its checkpoints hold the whole model's trained
parts, the reasoning LoRA under ``reason/``.

A stage folder that already holds a run (checkpoints or final weights) is refused unless ``--resume``
(continue it) or ``--overwrite`` (delete it and start again) says what to do: a fresh start deletes the
earlier run's checkpoints, and a Stage 2 may have been built on its weights.

Resume (``--resume``) restores everything from the latest checkpoint and continues at the saved step.
Data order and dropout depend only on (seed, stage, step), so an interrupted + resumed run computes
exactly the steps of an uninterrupted one (no step repeated or lost); log lines written after the
checkpoint by the interrupted run are dropped. SIGINT/SIGTERM finish the current step, save and exit.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from emotion_ros.io import atomic_dir, sha256_file, write_json, write_text

from emotion_ros_training import distributed as D
from emotion_ros_training.curriculum import STAGES, Curriculum
from emotion_ros_training.precision import frozen_linears_in_bf16
from emotion_ros_training.recipes import Recipe, get_recipe
from emotion_ros_training.threads import torch_threads

STATE_FORMAT = "emotion_ros.train_state/1"


class RunExistsError(RuntimeError):
    """The stage folder already holds a run, and neither --resume nor --overwrite says what to do with it."""


@dataclass
class TrainArgs:
    recipe: str
    manifest: str
    stage: str
    out: str
    resume: bool = False
    overwrite: bool = False  # start again over an existing run of this stage (its checkpoints are deleted)
    init: str | None = None  # trainable checkpoint to start from (default for stage 2: OUT/stage1/final)
    cache: str | None = None  # feature cache root (default OUT/feature_cache)
    split: str = "train"
    eval_split: str | None = None  # e.g. "test": held-out metrics at the end of the stage
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    micro_batch: int | None = None
    checkpoint_every: int | None = None
    seed: int | None = None
    stop_after: int | None = None  # stop after this many steps in this invocation (simulated interruption)
    modalities: tuple = ("audio", "vision", "text")  # train with only these inputs (ablations)
    model_overrides: dict = field(default_factory=dict)  # extra get_profile overrides
    progress: bool = True
    threads: int | None = None
    max_records: int | None = None


# -- small helpers ------------------------------------------------------------------------------------
def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine down to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_seed(seed: int, stage: str, step: int, rank: int) -> int:
    """Seed of the torch RNG for (stage, step, rank): dropout masks independent of interruptions."""
    h = hashlib.sha256(f"{seed}/{stage}/{step}/{rank}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)



def _parse_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


# -- optimiser / RNG state <-> safetensors + JSON ---------------------------------------------------------
def optimizer_to_files(opt: torch.optim.Optimizer, names: list[str]) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"state.{idx}.{key}"] = t.detach().cpu().clone().contiguous()
    groups = json.loads(json.dumps(sd["param_groups"], default=lambda o: list(o) if isinstance(o, tuple) else str(o)))
    return tensors, {"param_groups": groups, "param_names": names}


def optimizer_from_files(opt: torch.optim.Optimizer, tensors: dict, meta: dict, names: list[str]) -> None:
    if meta["param_names"] != names:
        raise ValueError("checkpoint optimizer was saved for different trainable parameters")
    state: dict = {}
    for key, val in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = val
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_json() -> dict:
    py = random.getstate()
    npst = np.random.get_state()
    return {"python": [py[0], list(py[1]), py[2]],
            "numpy": [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])]}


def restore_rng_json(d: dict) -> None:
    v, st, g = d["python"]
    random.setstate((v, tuple(st), g))
    n = d["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))


# -- the trainer --------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, args: TrainArgs, info: D.DistInfo | None = None, model=None):
        if args.stage not in STAGES:
            raise ValueError(f"--stage must be one of {STAGES}")
        self.args = args
        self.info = info or D.DistInfo()
        self.recipe: Recipe = get_recipe(args.recipe)
        if args.seed is not None:
            self.recipe.seed = args.seed
        sr = self.recipe.stage(args.stage)
        overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size),
                                         ("peak_lr", args.lr), ("micro_batch", args.micro_batch),
                                         ("checkpoint_every", args.checkpoint_every)) if v is not None}
        self.sr = dataclasses.replace(sr, **overrides)
        if self.sr.batch_size % self.info.world:
            raise ValueError(f"global batch {self.sr.batch_size} must be divisible by {self.info.world} processes")
        self.out = Path(args.out)
        self.stage_dir = self.out / f"stage{args.stage}"
        self.ckpt_root = self.stage_dir / "checkpoints"
        self.metrics_path = self.stage_dir / "metrics.jsonl"
        self.cfg = self.recipe.model_config(**args.model_overrides)
        self.model = model
        self._stop = False

    # -- setup -------------------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        if self.info.is_main:
            print(f"[train stage {self.args.stage}] {msg}", file=sys.stderr, flush=True)

    def existing_run(self) -> str | None:
        """What an earlier run of this stage left in its folder (checkpoints, final weights), or None."""
        found = []
        steps = sorted(p.name for p in self.ckpt_root.glob("step_*") if p.is_dir()) if self.ckpt_root.is_dir() else []
        if steps:
            found.append(f"checkpoints up to {steps[-1]}")
        if (self.stage_dir / "final").is_dir():
            found.append("final weights")
        return ", ".join(found) or None

    def check_existing_run(self) -> None:
        """Refuse to start over an earlier run unless told: a fresh start deletes its checkpoints."""
        if self.args.resume and self.args.overwrite:
            raise ValueError("--resume continues the existing run and --overwrite deletes it: give one of them")
        found = self.existing_run()
        if found is None:
            return
        if self.args.resume:
            if self.latest_checkpoint() is None:  # nothing to continue from: a fresh start would delete it
                raise RunExistsError(f"{self.stage_dir} holds {found} but no checkpoint to resume from: pass "
                                     f"--overwrite instead of --resume to delete it and start again")
            return
        if not self.args.overwrite:
            raise RunExistsError(
                f"{self.stage_dir} already holds a stage-{self.args.stage} run ({found}): pass --resume to "
                f"continue it, or --overwrite to delete it and start again")
        stage2 = self.out / "stage2"
        note = (f"; note: {stage2} was trained from the Stage-1 weights being replaced"
                if self.args.stage == "1" and stage2.is_dir() else "")
        self._log(f"--overwrite: deleting the earlier run in {self.stage_dir} ({found}){note}")

    def setup(self) -> None:
        from emotion_ros.model.emotion_llama import build_model

        self.check_existing_run()
        from emotion_ros_training.data.manifest import read_manifest
        from emotion_ros_training.features import FeatureCache

        threads = self.args.threads or self.recipe.threads or max(1, (os.cpu_count() or 1) // self.info.world)
        torch.set_num_threads(threads)
        if self.info.is_main:
            self.stage_dir.mkdir(parents=True, exist_ok=True)
        D.barrier(self.info)
        t0 = time.time()
        if self.model is None:
            self.model = build_model(self.cfg, device=self.info.device)
        self._log(f"model {self.cfg.name} built in {time.time() - t0:.1f}s")
        records = [r for r in read_manifest(self.args.manifest) if r.split == self.args.split]
        if self.args.max_records:
            records = records[: self.args.max_records]
        if not records:
            raise ValueError(f"{self.args.manifest}: no records in split {self.args.split!r}")
        eval_records = []
        if self.args.eval_split:
            eval_records = [r for r in read_manifest(self.args.manifest) if r.split == self.args.eval_split]
        from emotion_ros_training.features import run_cache_root

        cache_root = self.args.cache or str(run_cache_root(self.out))
        self.cache_root = str(Path(cache_root).resolve())
        self.cache = FeatureCache(cache_root, self.cfg, self.cfg.vision.num_frames, self.recipe.frame_size)
        t0 = time.time()
        usable = self.cache.ensure(records + eval_records, self.model, self.recipe.encode_batch, self.info.rank,
                                   self.info.world, self.args.progress, lambda: D.barrier(self.info))
        ok = {r.clip_id for r in usable}
        self.records = [r for r in records if r.clip_id in ok]
        self.eval_records = [r for r in eval_records if r.clip_id in ok]
        self._log(f"features: {self.cache.stats.to_dict()} in {time.time() - t0:.1f}s "
                  f"({len(self.records)} train clips, cache {self.cache.dir})")
        self.curriculum = Curriculum(self.records, self.args.stage, self.sr.batch_size, self.recipe.seed,
                                     self.sr.recognition_fraction, self.sr.think_fraction)
        resuming = self.args.resume and self.latest_checkpoint() is not None
        if self.args.stage == "reason":
            self._add_reasoning_adapter(load_init=not resuming)
        self.names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=self.sr.peak_lr, betas=tuple(self.sr.betas),
                                     weight_decay=self.sr.weight_decay)
        sr = self.sr
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, sr.warmup_steps, sr.steps, sr.min_lr_ratio))
        self.step = 0
        if resuming:
            self.load_checkpoint(self.latest_checkpoint())
        else:
            init = self.args.init
            if self.args.stage == "reason":
                init = None  # loaded by _add_reasoning_adapter
            elif init is None and self.args.stage == "2":
                init = str(self.out / "stage1" / "final")
                if not Path(init).is_dir():
                    raise FileNotFoundError(f"stage 2 starts from the Stage-1 weights: {init} does not exist "
                                            f"(run --stage 1 first or pass --init)")
            if init:
                from emotion_ros.model.checkpoint import load_trainable

                load_trainable(self.model, init)
                self._log(f"initialised from {init}")
            D.broadcast_params(self.params, self.info)
            if self.info.is_main:  # a fresh run (checked above) starts a fresh log, no older state or weights
                if self.metrics_path.exists():
                    self.metrics_path.unlink()
                if self.ckpt_root.exists():
                    shutil.rmtree(self.ckpt_root)
                if (self.stage_dir / "final").exists():  # an interrupted fresh run must not leave the old weights
                    shutil.rmtree(self.stage_dir / "final")
                for name in ("eval.json", "loss.png"):
                    (self.stage_dir / name).unlink(missing_ok=True)
        D.barrier(self.info)

    def _add_reasoning_adapter(self, load_init: bool) -> None:
        """Stage "reason": the label model (``--init``, default OUT/stage2/final) frozen, the reasoning LoRA
        added as a copy of its label LoRA and the only trainable part."""
        from emotion_ros.model.checkpoint import load_trainable

        if load_init:
            init = self.args.init or str(self.out / "stage2" / "final")
            if not Path(init).is_dir():
                raise FileNotFoundError(f"the reasoning adapter is trained on a finished label model: {init} does "
                                        f"not exist (run --stage 2 first or pass --init)")
            load_trainable(self.model, init)
            self._log(f"initialised from {init}")
        llm = self.model.llm
        if not llm.has_reasoning_adapter:
            llm.add_reasoning_adapter()
        for name, p in self.model.named_parameters():
            p.requires_grad_(f".{llm.reasoning_adapter}." in name)

    # -- checkpoints -------------------------------------------------------------------------------
    def latest_checkpoint(self) -> Path | None:
        pointer = self.ckpt_root / "latest.json"
        if not pointer.is_file():
            return None
        try:
            name = json.loads(pointer.read_text())["checkpoint"]
        except (ValueError, KeyError):
            raise ValueError(f"{pointer}: corrupt pointer file") from None
        path = self.ckpt_root / name
        return path if path.is_dir() else None

    def _gather_rng(self) -> list[torch.Tensor]:
        mine = torch.get_rng_state()
        if not self.info.enabled:
            return [mine]
        import torch.distributed as dist

        out = [torch.empty_like(mine) for _ in range(self.info.world)]
        dist.all_gather(out, mine)
        return out

    def save_checkpoint(self) -> Path | None:
        rng = self._gather_rng()
        if not self.info.is_main:
            D.barrier(self.info)
            return None
        from emotion_ros.model.checkpoint import save_trainable

        self.ckpt_root.mkdir(parents=True, exist_ok=True)
        name = f"step_{self.step:07d}"
        final = self.ckpt_root / name
        with atomic_dir(final, fsync=True) as tmp:  # a killed run never leaves half a checkpoint
            save_trainable(self.model, tmp / "trainable", metadata={"stage": self.args.stage, "step": self.step})
            opt_t, opt_meta = optimizer_to_files(self.opt, self.names)
            save_file(opt_t, str(tmp / "optimizer.safetensors"))
            save_file({f"torch_cpu.rank{r}": t for r, t in enumerate(rng)}, str(tmp / "rng.safetensors"))
            state = {
                "format": STATE_FORMAT,
                "stage": self.args.stage,
                "step": self.step,
                "total_steps": self.sr.steps,
                "world_size": self.info.world,
                "recipe": self.recipe.to_dict(),
                "stage_recipe": dataclasses.asdict(self.sr),
                "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.args).items()},
                "data_position": self.curriculum.position(self.step),
                "optimizer": opt_meta,
                "scheduler": self.sched.state_dict(),
                "rng": rng_json(),
                "encoder_hash": self.cache.enc_hash,
                "files": {f: sha256_file(tmp / f) for f in ("optimizer.safetensors", "rng.safetensors")},
                "saved_unix": time.time(),
            }
            write_json(tmp / "state.json", state)
        write_json(self.ckpt_root / "latest.json", {"checkpoint": name, "step": self.step}, fsync=True)
        steps = sorted(p for p in self.ckpt_root.glob("step_*") if p.is_dir())
        for old in steps[: max(0, len(steps) - self.sr.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        for pattern in (".step_*.tmp", ".step_*.old.*", ".step_*.tmp-*"):  # left by a killed run
            for stale in self.ckpt_root.glob(pattern):
                shutil.rmtree(stale, ignore_errors=True)
        D.barrier(self.info)
        return final

    def load_checkpoint(self, path: Path) -> None:
        from emotion_ros.model.checkpoint import load_trainable

        state = json.loads((path / "state.json").read_text())
        if state.get("format") != STATE_FORMAT or state.get("stage") != self.args.stage:
            raise ValueError(f"{path}: not a stage-{self.args.stage} training checkpoint")
        for f, sha in state["files"].items():
            if sha256_file(path / f) != sha:
                raise ValueError(f"{path / f}: SHA-256 differs from state.json (corrupt checkpoint)")
        if state["stage_recipe"]["batch_size"] != self.sr.batch_size:
            raise ValueError(f"{path}: saved with global batch {state['stage_recipe']['batch_size']}, "
                             f"this run uses {self.sr.batch_size}: the data order would differ")
        load_trainable(self.model, path / "trainable")
        optimizer_from_files(self.opt, load_file(str(path / "optimizer.safetensors")), state["optimizer"], self.names)
        self.sched.load_state_dict(state["scheduler"])
        rng = load_file(str(path / "rng.safetensors"))
        key = f"torch_cpu.rank{self.info.rank}"
        if key in rng:
            torch.set_rng_state(rng[key])
        restore_rng_json(state["rng"])
        self.step = int(state["step"])
        if self.info.is_main and self.metrics_path.exists():  # drop lines logged after the checkpoint
            kept = []
            for line in self.metrics_path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut by the interruption
                if rec.get("kind") == "train" and rec.get("step", 0) > self.step:
                    continue
                kept.append(line)
            write_text(self.metrics_path, "".join(k + "\n" for k in kept))
        self._log(f"resumed from {path} at step {self.step}")

    # -- one optimiser step ------------------------------------------------------------------------
    def train_step(self) -> dict:
        from emotion_ros_training.features import keep_modalities

        model, info = self.model, self.info
        torch.manual_seed(step_seed(self.recipe.seed, self.args.stage, self.step, info.rank))
        samples = self.curriculum.batch(self.step, info.rank, info.world)
        ntok_global = D.all_reduce_sum(sum(len(model.llm.target_ids(s.target)) for s in samples), info)
        per_sample = self.sr.loss_weighting == "sample"
        # the global loss is a sum over the global batch divided by this (tokens, or samples)
        denom = D.all_reduce_sum(len(samples), info) if per_sample else ntok_global
        micro = self.sr.micro_batch or len(samples)
        self.opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        tasks: dict[str, int] = {}
        for i in range(0, len(samples), micro):
            chunk = samples[i:i + micro]
            enc = self.cache.batch([s.record for s in chunk])
            if tuple(sorted(self.args.modalities)) != ("audio", "text", "vision"):
                enc = keep_modalities(enc, self.args.modalities)
            with torch.autocast(device_type=torch.device(info.device).type, dtype=torch.bfloat16,
                                enabled=self.recipe.autocast_bf16):
                loss = model.loss(enc, [s.task for s in chunk], [list(s.labels) for s in chunk],
                                  [s.instruction for s in chunk], [s.target for s in chunk],
                                  reduction="per_sample" if per_sample else "sum")
                if per_sample:
                    loss = loss.sum()
            # the gradient summed over micro-batches and processes = that of the global mean
            (loss / denom).backward()
            loss_sum += float(loss.detach())
            for s in chunk:
                tasks[s.task] = tasks.get(s.task, 0) + 1
        D.all_reduce_grads(self.params, info)
        gnorm = float("nan")
        if self.sr.grad_clip and self.sr.grad_clip > 0:
            gnorm = float(torch.nn.utils.clip_grad_norm_(self.params, self.sr.grad_clip))
        lr = self.opt.param_groups[0]["lr"]
        self.opt.step()
        self.sched.step()
        self.step += 1
        for t in ("emotion", "reason", "think"):
            tasks[t] = int(D.all_reduce_sum(tasks.get(t, 0), info))
        return {"loss": D.all_reduce_sum(loss_sum, info) / denom, "lr": lr, "grad_norm": gnorm,
                "tokens": int(ntok_global), "tasks": tasks}

    # -- the loop ----------------------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        self._stop = True
        self._log(f"signal {signum}: finishing the current step, then saving")

    def run(self) -> dict:
        with torch_threads(None):  # setup() picks the thread count; in-process callers get theirs back
            return self._run()

    def _finished(self) -> dict | None:
        """The result of an already completed stage when resuming it (nothing is rebuilt or re-run)."""
        pointer = self.ckpt_root / "latest.json"
        if not (self.args.resume and pointer.is_file() and (self.stage_dir / "final").is_dir()):
            return None
        try:
            step = int(json.loads(pointer.read_text())["step"])
        except (ValueError, KeyError):
            return None
        if step < self.sr.steps or (self.args.eval_split and not (self.stage_dir / "eval.json").is_file()):
            return None
        self._log(f"already complete at step {step}: nothing to do")
        return {"stage": self.args.stage, "step": step, "total_steps": self.sr.steps, "interrupted": False,
                "seconds": 0.0, "steps_this_run": 0, "final": str(self.stage_dir / "final"), "already_done": True}

    def _run(self) -> dict:
        from tqdm import tqdm

        done = self._finished()
        if done is not None:
            return done
        self.setup()
        total = self.sr.steps
        handlers = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread
            pass
        bar = tqdm(total=total, initial=self.step, desc=f"stage {self.args.stage}", unit="step",
                   disable=not (self.args.progress and self.info.is_main), dynamic_ncols=True)
        t_start = time.time()
        done_here = 0
        interrupted = False
        log = open(self.metrics_path, "a") if self.info.is_main else None
        try:
            # bf16 copies of the frozen weights only while stepping (same numbers under autocast)
            with frozen_linears_in_bf16(self.model, self.recipe.autocast_bf16):
                while self.step < total:
                    t0 = time.time()
                    out = self.train_step()
                    done_here += 1
                    rec = {"kind": "train", "stage": self.args.stage, "step": self.step, "loss": out["loss"],
                           "lr": out["lr"], "grad_norm": out["grad_norm"], "tokens": out["tokens"],
                           "tasks": out["tasks"], "step_time": time.time() - t0, "time": time.time(),
                           "world_size": self.info.world}
                    if log is not None and (self.step % self.sr.log_every == 0 or self.step == total):
                        log.write(json.dumps(rec) + "\n")
                        log.flush()
                    bar.update(1)
                    bar.set_postfix(loss=f"{out['loss']:.4f}", lr=f"{out['lr']:.2e}")
                    stop_req = D.any_flag(self._stop, self.info)
                    limit = self.args.stop_after is not None and done_here >= self.args.stop_after
                    if self.step % self.sr.checkpoint_every == 0 or self.step == total or stop_req or limit:
                        self.save_checkpoint()
                    if (stop_req or limit) and self.step < total:
                        interrupted = True
                        break
        finally:
            bar.close()
            if log is not None:
                log.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)
        result = {"stage": self.args.stage, "step": self.step, "total_steps": total, "interrupted": interrupted,
                  "seconds": time.time() - t_start, "steps_this_run": done_here,
                  "train_clips": len(self.records), "cache": self.cache.stats.to_dict()}
        if not interrupted:
            result.update(self.finish())
        return result

    def finish(self) -> dict:
        """Final weights, loss plot and (optionally) held-out metrics of a completed stage."""
        from emotion_ros.model.checkpoint import save_trainable

        out = {}
        final = self.stage_dir / "final"
        if self.info.is_main:
            save_trainable(self.model, final, metadata={
                "stage": self.args.stage, "steps": self.step, "recipe": self.recipe.name,
                "stage_recipe": dataclasses.asdict(self.sr), "seed": self.recipe.seed,
                "manifest": str(self.args.manifest), "modalities": list(self.args.modalities),
                "feature_cache": self.cache_root,
                "world_size": self.info.world})
            try:
                from emotion_ros_training.plots import plot_losses

                plot_losses(self.metrics_path, self.stage_dir / "loss.png")
            except Exception as e:  # a plot must never lose a trained stage
                self._log(f"loss plot failed: {e}")
        out["final"] = str(final)
        if self.eval_records and self.info.is_main:
            from emotion_ros_training.evaluate import evaluate_cached

            t0 = time.time()
            metrics = evaluate_cached(self.model, self.cache, self.eval_records, modalities=self.args.modalities,
                                      progress=self.args.progress)
            metrics["seconds"] = time.time() - t0
            write_json(self.stage_dir / "eval.json", metrics)
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps({"kind": "eval", "stage": self.args.stage, "step": self.step,
                                    "split": self.args.eval_split, "accuracy": metrics["overall"]["accuracy"],
                                    "time": time.time()}) + "\n")
            out["eval"] = {"accuracy": metrics["overall"]["accuracy"], "n": metrics["overall"]["n"],
                           "chance": metrics["chance"]}
            self._log(f"held-out ({self.args.eval_split}) accuracy {metrics['overall']['accuracy']:.3f} "
                      f"on {metrics['overall']['n']} clips (chance {metrics['chance']['uniform']:.3f})")
        D.barrier(self.info)
        return out


def train(args: TrainArgs, model=None) -> dict:
    """Run one stage in this process (joining torch.distributed when launched by torchrun)."""
    info = D.init()
    try:
        return Trainer(args, info, model=model).run()
    finally:
        D.shutdown()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emotion_ros_training.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", required=True, choices=["tiny", "nano", "paper"],
                    help="model profile + optimiser/schedule settings (emotion_ros_training.recipes)")
    ap.add_argument("--manifest", required=True, help="MMEVerse-format JSONL manifest")
    ap.add_argument("--stage", required=True, choices=list(STAGES),
                    help="1 perception (labels), 2 cognition (labels + reasoning, from stage 1), joint (both from scratch)")
    ap.add_argument("--out", required=True, help="run directory (stage<S>/ subfolders are created)")
    ap.add_argument("--resume", action="store_true", help="continue from the stage's latest checkpoint")
    ap.add_argument("--overwrite", action="store_true",
                    help="delete an existing run of this stage and start again (without --resume or --overwrite an "
                         "existing run is refused)")
    ap.add_argument("--init", help="trainable checkpoint to start from (stage 2 default: OUT/stage1/final)")
    ap.add_argument("--cache", help="feature cache root (default OUT/feature_cache)")
    ap.add_argument("--split", default="train", help="manifest split trained on (default train)")
    ap.add_argument("--eval-split", help="evaluate this split at the end of the stage (e.g. test)")
    ap.add_argument("--steps", type=int, help="optimiser steps of the stage (default: the recipe's)")
    ap.add_argument("--batch-size", type=int, help="GLOBAL batch size")
    ap.add_argument("--lr", type=float, help="peak learning rate")
    ap.add_argument("--micro-batch", type=int, help="samples per forward pass (gradient accumulation); default: the recipe's")
    ap.add_argument("--checkpoint-every", type=int, help="steps between resumable checkpoints (default: the recipe's)")
    ap.add_argument("--seed", type=int, help="seed of data order, dropout and initialisation (default: the recipe's)")
    ap.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after N steps of this invocation")
    ap.add_argument("--modalities", default="audio,vision,text", help="inputs kept, e.g. 'audio' (ablations)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="model config override, e.g. fusion__use_attention=false")
    ap.add_argument("--threads", type=int, help="torch threads per process (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--max-records", type=int, help="train on the first N clips of the split only (quick tries)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def args_from_cli(ns: argparse.Namespace) -> TrainArgs:
    overrides = {}
    for item in ns.override:
        if "=" not in item:
            raise SystemExit(f"--override expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k] = _parse_value(v)
    mods = tuple(m.strip() for m in ns.modalities.split(",") if m.strip())
    return TrainArgs(recipe=ns.recipe, manifest=ns.manifest, stage=ns.stage, out=ns.out, resume=ns.resume,
                     overwrite=ns.overwrite,
                     init=ns.init, cache=ns.cache, split=ns.split, eval_split=ns.eval_split, steps=ns.steps,
                     batch_size=ns.batch_size, lr=ns.lr, micro_batch=ns.micro_batch,
                     checkpoint_every=ns.checkpoint_every, seed=ns.seed, stop_after=ns.stop_after,
                     modalities=mods, model_overrides=overrides, progress=not ns.no_progress,
                     threads=ns.threads, max_records=ns.max_records)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    ns = build_parser().parse_args(argv)
    try:
        result = train(args_from_cli(ns))
    except RunExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
