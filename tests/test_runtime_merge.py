"""LoRA merged into the LLM (deployment) vs unmerged: same label probabilities, same greedy tokens."""
import numpy as np
import pytest
import torch

from emotion_ros.model.config import get_profile
from emotion_ros.model.emotion_llama import build_model, window_from_arrays
from emotion_ros.model.llm import EmotionLLM
from emotion_ros.inference.export import load_merged, merge_lora_folder, merged_copy

PROB_ATOL = 1e-5  # fp32: merging changes only the order of the additions
LOGP_ATOL = 1e-3  # the same on log-probabilities (the tiny random LLM's distributions are peaked)


def _logp_err(p, q):
    return float((p.clamp_min(1e-30).log() - q.clamp_min(1e-30).log()).abs().max())


@pytest.fixture(scope="module")
def setup():
    model = build_model(get_profile("tiny"))
    llm = model.llm
    assert llm.has_lora
    # peft initialises LoRA B = 0 (a no-op); make it a real, trained-looking adapter so merging matters
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in llm.model.named_parameters():
            if "lora_" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    rng = np.random.default_rng(0)
    w = window_from_arrays(rng.integers(0, 256, (16, 40, 40, 3), dtype=np.uint8),
                           (0.1 * rng.standard_normal(32000)).astype(np.float32), "I am fine")
    prompt = model.prompts(model.encode([w]), "emotion", model.cfg.labels)[0]
    think = model.prompts(model.encode([w]), "think", model.cfg.labels)[0]
    return model, llm, prompt, think


def _probs(llm, prompt, labels):
    return llm.score_labels(prompt, labels)[0]


def _text(llm, prompt, n):
    return "".join(llm.generate(prompt, max_new_tokens=n, min_new_tokens=n))


def _merged_llm(llm, model_obj):
    return EmotionLLM(model_obj, llm.tokenizer, lora_r=0)


def test_lora_is_not_a_no_op(setup):
    model, llm, prompt, _ = setup
    with llm.model.disable_adapter():
        base = _probs(llm, prompt, model.cfg.labels)
    with_lora = _probs(llm, prompt, model.cfg.labels)
    assert _logp_err(base, with_lora) > 0.05


def test_merged_same_probabilities_and_greedy_tokens(setup):
    model, llm, prompt, think = setup
    merged = _merged_llm(llm, merged_copy(llm))
    assert not merged.has_lora and llm.has_lora  # the running model keeps its adapter
    labels = model.cfg.labels
    p_ref, p_merged = _probs(llm, prompt, labels), _probs(merged, prompt, labels)
    assert float((p_ref - p_merged).abs().max()) < PROB_ATOL
    assert _logp_err(p_ref, p_merged) < LOGP_ATOL
    ref, out = _text(llm, think, 24), _text(merged, think, 24)
    assert ref == out and len(ref) > 0


def test_merged_folder_round_trip(setup, tmp_path):
    model, llm, prompt, think = setup
    folder = merge_lora_folder(llm, tmp_path / "llm")
    files = {p.name for p in folder.iterdir()}
    assert "model.safetensors" in files and "config.json" in files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    m, tok = load_merged(folder)
    loaded = EmotionLLM(m, tok, lora_r=0)
    labels = model.cfg.labels
    p_ref, p_loaded = _probs(llm, prompt, labels), _probs(loaded, prompt, labels)
    assert float((p_ref - p_loaded).abs().max()) < PROB_ATOL and _logp_err(p_ref, p_loaded) < LOGP_ATOL
    assert _text(loaded, think, 16) == _text(llm, think, 16)
