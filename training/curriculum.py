"""The perception-to-cognition curriculum (paper section 4.5): what each stage trains on.

- Stage "1" (perception): every sample is recognition. Task id "emotion", an instruction drawn from
  Box I with the clip's native label list substituted, target = the label.
- Stage "2" (cognition): joint recognition and reasoning, starting from the Stage-1 weights. A share
  ``recognition_fraction`` of samples stays Stage-1 style; the others are reasoning samples with a Box II
  instruction: task "think" (Box II items 3-5, target ``<think>description</think><answer>label</answer>``)
  with probability ``think_fraction``, else task "reason" (Box II items 1-2, target = the description,
  which ends by naming the emotion). Clips without a description are always recognition samples.
- "joint": the paper's single-joint-training baseline (Table 10): the Stage-2 mixture from scratch.
- "reason": the reasoning adapter (emotion_ros.model.llm.REASONING_ADAPTER), trained after the label
  stages on the clips with a description only, every sample a reasoning sample (``think_fraction`` of them
  "think", the others "reason"); the label LoRA and everything else stay frozen, so the label path keeps
  exactly what Stages 1+2 gave it.

Every choice for global sample number k of a stage (which clip, task, instruction) is a pure function
of (seed, stage, k), so a run resumed at any step, or split over any number of processes, sees exactly
the same samples as an uninterrupted single-process run.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from emotion_ros.model.prompt import INSTRUCTION_POOLS, format_think_target
from emotion_ros_training.data.manifest import ClipRecord

STAGES = ("1", "2", "joint", "reason")
STAGE_IDS = {"1": 1, "2": 2, "joint": 3, "reason": 4}


@dataclass(frozen=True)
class Sample:
    """One training sample: the clip, its label set, the task id, the instruction text and the target."""

    record: ClipRecord
    labels: tuple
    task: str
    instruction: str
    target: str
    k: int  # global sample number in the stage (for logs and checks)


def answer_text(record: ClipRecord) -> str:
    """The recognition target: the label (labels joined by ", " for multi-label spaces)."""
    return ", ".join(record.labels) if record.label_space.multi_label else record.label


def epoch_order(n: int, seed: int, stage: str, epoch: int) -> np.ndarray:
    """The clip permutation of one epoch (deterministic from seed, stage and epoch)."""
    rng = np.random.default_rng([int(seed), STAGE_IDS[stage], int(epoch), 0x5EED])
    return rng.permutation(n)


def _choose(record: ClipRecord, stage: str, rng: random.Random, recognition_fraction: float,
            think_fraction: float) -> tuple[str, str, str]:
    labels = list(record.label_space.labels)
    reasoning = (stage in ("2", "joint", "reason") and bool(record.description)
                 and rng.random() >= recognition_fraction)
    if not reasoning:
        pool = INSTRUCTION_POOLS["emotion"]
        return "emotion", pool[rng.randrange(len(pool))].replace("{labels}", ", ".join(labels)), answer_text(record)
    if rng.random() < think_fraction:
        pool = INSTRUCTION_POOLS["think"]
        target = format_think_target(record.description, answer_text(record))
        task = "think"
    else:
        pool = INSTRUCTION_POOLS["reason"]
        target = record.description.strip()
        task = "reason"
    return task, pool[rng.randrange(len(pool))].replace("{labels}", ", ".join(labels)), target


class Curriculum:
    """Maps (step, position in the global batch) to Samples for one stage."""

    def __init__(self, records: Sequence[ClipRecord], stage: str, batch_size: int, seed: int = 0,
                 recognition_fraction: float = 1.0, think_fraction: float = 0.75):
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
        if stage == "reason":
            records = [r for r in records if r.description]
        if not records:
            raise ValueError("no training records" + (" with a description (the reasoning targets)"
                                                      if stage == "reason" else ""))
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.records = list(records)
        self.stage = stage
        self.batch_size = batch_size
        self.seed = seed
        self.recognition_fraction = {"1": 1.0, "reason": 0.0}.get(stage, recognition_fraction)
        self.think_fraction = think_fraction
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def sample(self, k: int) -> Sample:
        """Global sample number k (k = step * batch_size + j)."""
        n = len(self.records)
        epoch, offset = divmod(int(k), n)
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(n, self.seed, self.stage, epoch)}
        rec = self.records[int(self._orders[epoch][offset])]
        rng = random.Random(f"{self.seed}/{self.stage}/{k}")
        task, instr, target = _choose(rec, self.stage, rng, self.recognition_fraction, self.think_fraction)
        return Sample(rec, tuple(rec.label_space.labels), task, instr, target, int(k))

    def batch_indices(self, step: int, rank: int = 0, world: int = 1) -> list[int]:
        """Global sample numbers of this rank's share of the global batch of ``step``: positions j with
        j % world == rank (the same interleaving as torch's DistributedSampler)."""
        if self.batch_size % world:
            raise ValueError(f"global batch {self.batch_size} is not divisible by {world} processes")
        base = int(step) * self.batch_size
        return [base + j for j in range(rank, self.batch_size, world)]

    def batch(self, step: int, rank: int = 0, world: int = 1) -> list[Sample]:
        return [self.sample(k) for k in self.batch_indices(step, rank, world)]

    def position(self, step: int) -> dict:
        """Where the data stream stands before ``step`` (recorded in checkpoints)."""
        k = int(step) * self.batch_size
        epoch, offset = divmod(k, len(self.records))
        return {"next_sample": k, "epoch": epoch, "offset_in_epoch": offset, "num_records": len(self.records)}
