"""Model summary of a profile: parameters per part, trainable parameters, LLM input token layout.

Architectures are instantiated on PyTorch's "meta" device (shapes only, no memory, no weights), so the
summary of ``paper`` (7B) or ``nano`` needs neither the weights nor time. CLI:
``python -m emotion_ros summary --profile tiny`` (registered through ``add_summary_command``).
"""
from __future__ import annotations

import argparse


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def _lora_params(llm, targets, r) -> int:
    from torch import nn

    total = 0
    for name, mod in llm.named_modules():
        if isinstance(mod, nn.Linear) and name.split(".")[-1] in targets:
            total += r * (mod.in_features + mod.out_features)
    return total


def _skeleton(cfg):
    """(audio, vision, llm, fusion, adapter, notes) modules on the meta device."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from emotion_ros.model.adapter import ModalAdapter
    from emotion_ros.model.fusion import ConvAttentionFusion

    notes = []
    a, v, c, f = cfg.audio, cfg.vision, cfg.llm, cfg.fusion
    with torch.device("meta"):
        audio = WhisperEncoder(WhisperConfig(d_model=a.d_model, encoder_layers=a.layers, encoder_attention_heads=a.heads,
                                             encoder_ffn_dim=a.ffn, num_mel_bins=a.n_mels,
                                             max_source_positions=a.max_source_positions))
        if v.backbone == "vit":
            vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=v.hidden_size, num_hidden_layers=v.layers,
                                                      num_attention_heads=v.heads, intermediate_size=v.intermediate_size,
                                                      patch_size=v.patch_size, image_size=v.image_size))
        elif v.backbone == "eva":
            from emotion_ros.backbones.eva import EvaViTG

            vision = EvaViTG(hidden_size=v.hidden_size, layers=v.layers, heads=v.heads,
                             intermediate_size=v.intermediate_size, patch_size=v.patch_size, image_size=v.image_size,
                             global_size=v.global_size, global_layers=v.global_layers)
        else:
            vision = None
        head_dim = c.head_dim or c.hidden_size // c.heads
        if c.arch == "gemma3":
            from transformers import Gemma3ForCausalLM, Gemma3TextConfig

            llm = Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                                                     intermediate_size=c.intermediate_size, num_hidden_layers=c.layers,
                                                     num_attention_heads=c.heads, num_key_value_heads=c.kv_heads,
                                                     head_dim=head_dim, tie_word_embeddings=True))
        else:
            llm = LlamaForCausalLM(LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                                               intermediate_size=c.intermediate_size, num_hidden_layers=c.layers,
                                               num_attention_heads=c.heads, num_key_value_heads=c.kv_heads,
                                               head_dim=head_dim, tie_word_embeddings=False))
        fusion = ConvAttentionFusion(a.d_model, v.feature_dim, f.mlp_hidden, f.width, f.num_blocks, f.kernel_size,
                                     f.out_dim, f.num_tokens, dropout=f.dropout)
        adapter = ModalAdapter(f.out_dim, v.feature_dim, v.feature_dim, a.d_model, c.hidden_size,
                               image_group=v.global_token_group)
    if vision is None:
        try:
            from emotion_ros.backbones.efficientnet import EfficientNetBackbone, _build_network

            vision = EfficientNetBackbone(_build_network())  # architecture only, weights not read
        except Exception as e:  # noqa: BLE001 - the summary still prints the rest
            notes.append(f"vision backbone {v.backbone}/{v.variant} not countable here ({type(e).__name__})")
    return audio, vision, llm, fusion, adapter, notes


def _text_tokens(cfg) -> str:
    from emotion_ros.model.prompt import TEMPLATES, instruction, prompt_segments, sanitize_transcript

    example = sanitize_transcript("I can't believe you did that!")
    segs = prompt_segments(example, "emotion", instruction("emotion", cfg.labels), TEMPLATES[cfg.template])
    text = "".join(v for k, v in segs if k == "text")
    if cfg.llm.kind == "tiny":
        from emotion_ros.model.tokenizer import build_tiny_tokenizer

        n = len(build_tiny_tokenizer()(text, add_special_tokens=False).input_ids) + 1
        return f"{n} (tiny byte tokenizer, example transcript, task 'emotion', Box I #1, incl. BOS)"
    return f"~{len(text) // 4} (depends on tokenizer/transcript; {len(text)} chars in the example prompt)"


def model_summary(cfg) -> str:
    """Human-readable summary of a ModelConfig (see module docstring)."""
    if isinstance(cfg, str):
        from emotion_ros.model.config import get_profile

        cfg = get_profile(cfg)
    audio, vision, llm, fusion, adapter, notes = _skeleton(cfg)
    lora = _lora_params(llm, set(cfg.llm.lora_targets), cfg.llm.lora_r) if cfg.llm.lora_r else 0
    rows = [
        ("audio encoder (Whisper, frozen)", _count(audio), 0),
        (f"vision encoder ({cfg.vision.backbone}{'' if vision is not None else ', not countable'}, frozen)",
         _count(vision), 0),
        ("Conv-Attention fusion", _count(fusion), _count(fusion)),
        ("modal adapter", _count(adapter), _count(adapter)),
        (f"LLM ({cfg.llm.kind}, frozen base)", _count(llm), 0),
        (f"LoRA r={cfg.llm.lora_r} alpha={cfg.llm.lora_alpha} on {','.join(cfg.llm.lora_targets)}", lora, lora),
    ]
    total = sum(r[1] for r in rows)
    train = sum(r[2] for r in rows)
    lay = cfg.token_layout()
    out = [f"Emotion-LLaMAv2 profile '{cfg.name}'", "",
           f"{'part':<52}{'params':>16}{'trainable':>16}"]
    for name, n, t in rows:
        out.append(f"{name:<52}{n:>16,}{t:>16,}")
    out.append(f"{'total':<52}{total:>16,}{train:>16,}")
    out.append(f"trainable share: {100.0 * train / max(total, 1):.2f} %")
    out += ["", "LLM input token layout (prompt order):",
            f"  fusion tokens        {lay['fusion']}",
            f"  image (global) tokens {lay['image']}  (all patch tokens of the middle frame at "
            f"{cfg.vision.global_size}px, no CLS"
            + (f", {cfg.vision.global_token_group} consecutive patches per token)" if cfg.vision.global_token_group > 1
               else ")"),
            f"  video (temporal)     {lay['video']}  ({cfg.vision.num_frames} frames x "
            f"{cfg.vision.temporal_grid}x{cfg.vision.temporal_grid} pooled, {cfg.vision.temporal_size}px)",
            f"  audio tokens         {lay['audio']}  (Whisper states pooled / zero-padded)",
            f"  text tokens          {_text_tokens(cfg)}",
            f"  modality tokens total {sum(lay.values())}",
            "", f"labels: {', '.join(cfg.labels)}"]
    dims = (f"dims: audio {cfg.audio.d_model}-d x {cfg.audio.layers} layers; vision {cfg.vision.feature_dim}-d; "
            f"fusion {cfg.fusion.mlp_hidden}->{cfg.fusion.width} x{cfg.fusion.num_blocks} blocks -> "
            f"{cfg.fusion.out_dim}; LLM {cfg.llm.hidden_size}-d x {cfg.llm.layers} layers")
    out.append(dims)
    out += [f"note: {n}" for n in notes]
    return "\n".join(out)


def _run(args) -> int:
    print(model_summary(args.profile))
    return 0


def add_summary_command(subparsers) -> argparse.ArgumentParser:
    """Register ``summary`` on the CLI's subparsers (called by emotion_ros.app.cli)."""
    p = subparsers.add_parser("summary", help="print the model summary of a profile (no weights needed)")
    p.add_argument("--profile", default="tiny", choices=["tiny", "nano", "paper"], help="model profile (default tiny)")
    p.set_defaults(func=_run)
    return p
