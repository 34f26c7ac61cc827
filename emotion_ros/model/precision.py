"""Numeric precision of the LLM at inference time: float32, bfloat16/float16 (cast), or ``mixed`` (CPU).

Two kinds of LLM work per window, with different bottlenecks:
- prompt passes (the window's ~300 multimodal/text tokens, the label set scored in one pass): matmul
  throughput. bfloat16 runs on the CPU's AMX/AVX-512-BF16 units (~3x the fp32 matmul rate here) and keeps
  the label probabilities within ~0.03 of fp32 on the nano profile;
- one-token decode steps (the reasoning text): reading the weights. Gemma-3-270M reads ~1.1 GB per token in
  fp32; int8 weights cut that to ~0.27 GB.

``mixed`` uses each where it is right: prompt passes in bfloat16, decode steps on an int8 copy of the merged
LLM made by PyTorch's dynamic quantisation (``torch.ao.quantization.quantize_dynamic``: int8 weights with one
scale per output channel, activations quantised per call). Per-call activation scaling is exact per token
only when a call carries one token, which is why the int8 copy is NOT used for prompt passes: there the
multimodal tokens' large activations would set one scale for the whole prompt and wreck the text tokens
(measured: 0/8 nano labels kept). Memory: the bf16 model plus the int8 copy of its linear layers.
LoRA is merged first (a quantised Linear cannot carry a peft adapter). ``torch.ao.quantization`` is marked
as migrating to ``torchao``; its eager fbgemm/onednn kernels are the ones that run without ``torch.compile``.
``mixed`` is for CPUs; on CUDA use ``float16``/``bfloat16`` (or the TensorRT path).
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = ("float32", "bfloat16", "float16", "mixed")


@dataclass
class LLMPrecision:
    name: str
    step_model: nn.Module | None  # runs the one-token decode steps: None = the LLM itself; its int8 copy (mixed)
    step_dtype: torch.dtype | None  # dtype of the embeddings fed to step_model (None = the LLM's)


def set_llm_precision(llm, precision: str) -> LLMPrecision:
    """Put ``llm`` (model.llm.EmotionLLM) in ``precision``, in place; returns what runs the decode steps.
    Called through ``EmotionLLM.set_precision``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown LLM precision {precision!r}; choose one of {PRECISIONS}")
    if precision in ("float32", "bfloat16", "float16"):
        llm.model.to(getattr(torch, precision))
        return LLMPrecision(precision, None, None)
    if llm.device.type != "cpu":
        raise ValueError(f"llm_precision mixed uses PyTorch's CPU int8 kernels; the LLM is on {llm.device}: "
                         "use float16 or bfloat16 there")
    if llm.has_reasoning_adapter:  # decode steps are the reasoning path's: its LoRA folded into the int8 copy
        step = int8_copy(llm.model, merge_adapter=llm.reasoning_adapter)
    else:
        llm.merge_lora()
        step = int8_copy(llm.model)
    llm.model.to(torch.bfloat16)
    return LLMPrecision("mixed", step, torch.float32)


def int8_copy(model: nn.Module, merge_adapter: str | None = None) -> nn.Module:
    """A copy of ``model`` with every nn.Linear dynamically quantised to int8 (per-channel weights).

    The copy shares the original's input embedding module (the caller feeds it ``inputs_embeds``), so only
    the linear layers are duplicated. ``merge_adapter``: ``model`` is a peft model and the copy carries that
    LoRA adapter folded in (the original keeps all its adapters, unmerged)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if torch.backends.quantized.engine not in ("fbgemm", "x86", "onednn", "qnnpack"):
        raise RuntimeError(f"this PyTorch build has no int8 CPU engine (quantized.engine = "
                           f"{torch.backends.quantized.engine!r}); use llm_precision float32 or bfloat16")
    embeddings = model.get_input_embeddings()
    model.set_input_embeddings(nn.Identity())  # not deep-copied: shared below
    try:
        with warnings.catch_warnings():  # deprecation notices of torch.ao (see module docstring)
            warnings.simplefilter("ignore")
            if merge_adapter is None:
                src, inplace = model, False
            else:
                src, inplace = copy.deepcopy(model), True
                src.set_adapter(merge_adapter)
                src = src.merge_and_unload()
            step = quantize_dynamic(src, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8,
                                    inplace=inplace)
    finally:
        model.set_input_embeddings(embeddings)
    step.set_input_embeddings(embeddings)
    return step.eval()
