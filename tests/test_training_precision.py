"""training/precision.py: bf16 copies of the frozen linear weights change no number under bf16 autocast,
and leave the fp32 parameters (and the tied output head) exactly as they were."""
import torch
from torch import nn

from emotion_ros.model.config import get_profile
from emotion_ros.model.emotion_llama import build_model
from emotion_ros.model.llm import Prompt
from emotion_ros_training.precision import frozen_linears_in_bf16


def _frozen_linear_weights(model):
    return {n: m.weight for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and not m.weight.requires_grad}


def test_frozen_bf16_weights_give_the_same_loss_and_are_restored():
    torch.manual_seed(0)
    model = build_model(get_profile("tiny", llm__lora_dropout=0.0)).train()
    llm = model.llm
    emb = torch.randn(2, 20, llm.hidden_size)
    rows = [Prompt.from_embeds(emb[0], torch.ones(20)), Prompt.from_embeds(emb[1], torch.ones(20))]
    targets = ["happy", "it is sad"]
    before = _frozen_linear_weights(model)
    assert before and all(w.dtype == torch.float32 for w in before.values())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = llm.loss(rows, targets, reduction="per_sample")
    with frozen_linears_in_bf16(model) as n:
        assert n == len(before)
        assert all(w.dtype == torch.bfloat16 for w in _frozen_linear_weights(model).values())
        # trainable weights (LoRA) stay fp32
        assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = llm.loss(rows, targets, reduction="per_sample")
        got.sum().backward()  # gradients still reach the trainable parts
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    assert any(p.grad is not None for p in model.parameters() if p.requires_grad)
    after = _frozen_linear_weights(model)
    assert all(after[k] is before[k] for k in before)  # the very same fp32 Parameter objects


def test_disabled_swaps_nothing():
    model = build_model(get_profile("tiny"))
    with frozen_linears_in_bf16(model, enabled=False) as n:
        assert n == 0
