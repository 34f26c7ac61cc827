"""Training recipes: every hyper-parameter of a curriculum run in one dataclass, per named setting.

Why dataclasses and three fixed names: a run is reproducible from ``--recipe NAME`` plus the command line
overrides that train.py records in each checkpoint's state.json, and nothing hides in YAML.

- ``paper``: the paper's section 5.1 settings. AdamW (weight decay 0.05), cosine schedule with 1000
  warm-up steps to a peak of 1e-4, LoRA r=64 alpha=16 on q/v of LLaMA-2-7B-chat, 100k steps over the two
  stages. The paper does not say how the 100k steps split between the stages nor the batch size; we
  assume 50k + 50k and a global batch of 32 (4 GPUs x 8) — both marked as assumptions here.
- ``nano``: the embedded default model (Whisper-base, EfficientNet-Lite0, Gemma-3-270M, frozen and cached)
  sized to train on a 2-core CPU in well under an hour on a few hundred synthetic clips.
- ``tiny``: random miniature model for tests: seconds per stage.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from emotion_ros.model.config import jsonify


@dataclass
class StageRecipe:
    """One curriculum stage (or the single joint run).

    ``recognition_fraction`` only matters for stages with reasoning ("2", "joint"): the share of samples
    that stay plain recognition (Box I, task "emotion", label target); the rest are reasoning samples,
    ``think_fraction`` of them in the <think>/<answer> format (Box II items 3-5), the others free
    reasoning (task "reason", Box II items 1-2, the description as target).
    """

    steps: int
    batch_size: int  # GLOBAL batch (all processes together)
    peak_lr: float
    warmup_steps: int
    weight_decay: float = 0.05
    betas: tuple = (0.9, 0.999)
    min_lr_ratio: float = 0.0  # cosine decays to peak_lr * min_lr_ratio
    grad_clip: float = 1.0  # max global grad norm (0 = off)
    recognition_fraction: float = 0.5
    think_fraction: float = 0.75
    micro_batch: int = 0  # per-process micro batch for gradient accumulation (0 = whole local batch)
    # "token": the loss is the mean over all target tokens of the batch (the usual LM loss: a 100-token
    # reasoning answer weighs 30x a 3-token label). "sample": the mean over samples of each sample's mean
    # token loss, so recognition samples keep their weight in a Stage-2 mixture.
    loss_weighting: str = "token"
    checkpoint_every: int = 100
    log_every: int = 1
    keep_checkpoints: int = 2

    def __post_init__(self):
        if self.loss_weighting not in ("token", "sample"):
            raise ValueError(f"loss_weighting must be 'token' or 'sample', not {self.loss_weighting!r}")


@dataclass
class Recipe:
    name: str
    profile: str  # emotion_ros.model.config profile of the model
    stage1: StageRecipe
    stage2: StageRecipe
    joint: StageRecipe
    reason: StageRecipe  # the reasoning adapter (curriculum stage "reason")
    seed: int = 0
    # Overrides passed to emotion_ros.model.config.get_profile (e.g. {"llm__lora_r": 8}).
    model_overrides: dict = field(default_factory=dict)
    frame_size: tuple | None = None  # decode size (W, H) for clips; None = native
    encode_batch: int = 4  # clips per frozen-encoder call when filling the feature cache
    threads: int = 0  # torch threads per process (0 = cores / processes)
    # bf16 autocast for the trainable forward/backward (fusion, adapter, LLM). Trainable weights and the
    # optimiser stay fp32; the cached encoder features are fp32. Worth it on CPUs with AMX/AVX512-BF16
    # and on GPUs; off for the tiny recipe so tests compare exact fp32 numbers.
    autocast_bf16: bool = False

    def stage(self, name: str) -> StageRecipe:
        key = {"1": "stage1", "2": "stage2", "joint": "joint", "reason": "reason"}.get(str(name))
        if key is None:
            raise ValueError(f"unknown stage {name!r}; expected 1, 2, joint or reason")
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return jsonify(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        d = dict(d)
        for k in ("stage1", "stage2", "joint", "reason"):
            if k not in d and k == "reason":  # recorded before the reasoning stage existed
                d[k] = dataclasses.asdict(get_recipe(d["name"]).reason)
            sd = dict(d[k])
            sd["betas"] = tuple(sd.get("betas", (0.9, 0.999)))
            d[k] = StageRecipe(**sd)
        if d.get("frame_size") is not None:
            d["frame_size"] = tuple(d["frame_size"])
        return cls(**d)

    def model_config(self, **extra):
        """The ModelConfig this recipe trains (profile + recipe overrides + ``extra``)."""
        from emotion_ros.model.config import get_profile

        return get_profile(self.profile, **{**self.model_overrides, **extra})


def paper() -> Recipe:
    # Section 5.1: AdamW wd 0.05, cosine, 1000 warm-up steps, peak 1e-4, LoRA r=64 alpha=16 on q,v
    # (already the `paper` model profile), 100k steps over two stages.
    # ASSUMPTIONS (not in the paper): 50k + 50k split, global batch 32, half of the Stage-2 samples
    # are recognition samples, joint = the same 100k steps with the Stage-2 mixture from scratch.
    s1 = StageRecipe(steps=50_000, batch_size=32, peak_lr=1e-4, warmup_steps=1000, checkpoint_every=1000,
                     log_every=10, recognition_fraction=1.0)
    s2 = dataclasses.replace(s1, recognition_fraction=0.5)
    joint = dataclasses.replace(s2, steps=100_000)
    # ASSUMPTION: the reasoning adapter gets a fifth of the Stage-2 budget.
    reason = dataclasses.replace(s2, steps=10_000, recognition_fraction=0.0, think_fraction=1.0)
    return Recipe("paper", "paper", s1, s2, joint, reason, seed=0, encode_batch=8)


REASON_STEPS = 400  # nano reasoning-adapter steps: ~85 min at ~12.5 s per step of 4 (2 threads, 2-core CPU)


def nano() -> Recipe:
    # Sized for a 2-core CPU: one Gemma-270M forward+backward of the ~290-token multimodal prompt
    # dominates a step (the frozen encoders are cached; the frozen LLM weights are held in bf16 while
    # stepping, training/precision.py): measured ~3.7 s per step of 8 recognition samples with 2 threads on
    # an idle 2-core machine, ~5.5 s with 1 thread. Stage 1 = 3200 samples (~3 epochs of the 576 synthetic
    # training clips + the 500 real tweets of scripts/train_nano.sh). Higher peak LR than the paper because
    # the run is ~200x shorter.
    # Losses are averaged per sample ("sample"): with the usual token mean, Stage 2's ~100-token reasoning
    # answers outweighed its 3-token label answers ~30:1 and 40 steps undid most of Stage 1's label accuracy
    # (measured, docs/ablation_nano/NOTES.md).
    s1 = StageRecipe(steps=400, batch_size=8, peak_lr=1e-3, warmup_steps=10, min_lr_ratio=0.05,
                     checkpoint_every=25, log_every=1, recognition_fraction=1.0, micro_batch=4,
                     loss_weighting="sample")
    # Stage 2 at a tenth of Stage 1's peak LR with 70 % recognition samples (replayed Stage-1 samples), 150
    # steps. Measured on the held-out clips (models/nano/adapters/TRAINING.md): peak 5e-4 / 50 % recognition
    # / 100 steps cost 9.7 label points, peak 2e-4 / 70 % / 100 steps cost 4.8 (clips only) and 1.4 (with
    # the tweets); peak 1e-4 / 70 % / 150 steps GAINED 2.8 (73.6 -> 76.4 %): the paper's Table 10 ordering.
    # The reasoning format itself is enforced by the structured decoder, so Stage 2 only teaches content.
    s2 = dataclasses.replace(s1, steps=150, peak_lr=1e-4, warmup_steps=5, recognition_fraction=0.7,
                             micro_batch=2)
    joint = dataclasses.replace(s2, steps=s1.steps + s2.steps, peak_lr=1e-3, warmup_steps=10)
    # The reasoning adapter (stage "reason"): think targets only, on top of the frozen label model. 1e-3
    # because 3e-4 left the texts loops after 90 steps (held-out think loss 6.99 -> 4.78 nats/token) where
    # 1e-3 reached 3.26 in 100 (TRAINING.md "Reasoning path"). Token-mean loss: all samples are reasoning.
    reason = dataclasses.replace(s1, steps=REASON_STEPS, batch_size=4, peak_lr=1e-3, warmup_steps=10,
                                 min_lr_ratio=0.1, micro_batch=0, recognition_fraction=0.0, think_fraction=1.0,
                                 loss_weighting="token")
    # No model overrides: the shipped weights must load into get_profile("nano") as is (LoRA r=16,
    # alpha=16 on q,v of Gemma-3-270M, the profile's setting).
    return Recipe("nano", "nano", s1, s2, joint, reason, seed=0, encode_batch=4, autocast_bf16=True)


def tiny() -> Recipe:
    # Random miniature model: only checks that the machinery works and that loss falls.
    # LoRA dropout off so a 2-process run can be compared with a 1-process run.
    s1 = StageRecipe(steps=24, batch_size=4, peak_lr=5e-3, warmup_steps=3, checkpoint_every=8,
                     recognition_fraction=1.0, micro_batch=2)
    s2 = dataclasses.replace(s1, steps=12, peak_lr=2e-3, recognition_fraction=0.5, loss_weighting="sample")
    joint = dataclasses.replace(s2, steps=36, peak_lr=5e-3)
    reason = dataclasses.replace(s2, steps=8, recognition_fraction=0.0, think_fraction=0.5)
    # One torch thread: the tiny matrices gain nothing from threads, and on a busy machine two OpenMP
    # threads per process were measured 14x slower than one.
    return Recipe("tiny", "tiny", s1, s2, joint, reason, seed=0, model_overrides={"llm__lora_dropout": 0.0},
                  frame_size=(64, 64), encode_batch=4, threads=1)


RECIPES = {"paper": paper, "nano": nano, "tiny": tiny}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[name]()
