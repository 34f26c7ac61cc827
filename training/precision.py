"""Frozen linear weights held in bfloat16 while training under bf16 autocast.

Why: autocast re-casts a weight to bf16 at every use unless the weight requires grad, so the frozen LLM's
~270M fp32 weights (tied output head included) were converted on every forward and again in every backward:
a fifth of a nano training step (measured, 2-core CPU). Casting them once gives the same bf16 values autocast
would have produced, so the numbers do not change; the trainable LoRA/fusion/adapter weights and the
optimiser stay fp32. The fp32 parameters are put back on exit (evaluation, export and the inference code
expect them), which also restores weight tying (the output head shares the input embedding).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


@contextmanager
def frozen_linears_in_bf16(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Inside the block every nn.Linear of ``model`` whose weight is frozen carries a bf16 copy of it;
    yields how many were swapped. Use only under ``torch.autocast(dtype=torch.bfloat16)``."""
    swapped: list[tuple[nn.Linear, nn.Parameter]] = []
    if enabled:
        for module in model.modules():
            w = getattr(module, "weight", None)
            if isinstance(module, nn.Linear) and isinstance(w, nn.Parameter) and not w.requires_grad \
                    and w.dtype == torch.float32:
                swapped.append((module, w))
                module.weight = nn.Parameter(w.detach().to(torch.bfloat16), requires_grad=False)
    try:
        yield len(swapped)
    finally:
        for module, w in swapped:
            module.weight = w
