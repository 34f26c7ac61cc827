"""Official-format Emotion-LLaMAv2 test material: checkpoints with the official key names and nesting (github
ooochen-30/Emotion-LLaMA-v2: ``torch.save({"model", "optimizer", "config", "scaler", "epoch"})``), at full
size on the meta device or scaled down with real values, plus the matching small local model folders
(LLaMA, Whisper, LAVIS-format EVA) that ``import-official`` needs. Built from the official SHAPES only
(docs/official_model.md); no official code.

``make_official_files(tmp_path)`` -> OfficialFiles(checkpoint, llama, whisper, eva, state, eva_state); a
node-level test can import them with emotion_ros.model.official.import_official and run the result.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

# Full official sizes (the released checkpoint) and a scaled-down model with the same structure.
FULL = dict(llm_hidden=4096, llm_layers=32, lora_r=64, audio_dim=1280, visual_dim=1408, mlp_hidden=512, width=128,
            out_dim=256, num_blocks=4, kernel=3, group=4)
SMALL = dict(llm_hidden=64, llm_layers=2, lora_r=4, audio_dim=32, visual_dim=176, mlp_hidden=48, width=16,
             out_dim=24, num_blocks=4, kernel=3, group=4)
SMALL_EVA = dict(hidden=176, layers=3, intermediate=352, patch=14, image_size=224)  # 176 = 2 heads of 88


def official_state(llm_hidden, llm_layers, lora_r, audio_dim, visual_dim, mlp_hidden, width, out_dim, num_blocks,
                   kernel, group, device=None, peft_default=False, seed=0) -> dict[str, torch.Tensor]:
    """ckpt["model"] of the official model with these widths (every trainable tensor, official names)."""
    g = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple] = {}

    def lin(name, d_in, d_out):
        shapes[f"{name}.weight"] = (d_out, d_in)
        shapes[f"{name}.bias"] = (d_out,)

    lin("llama_proj", visual_dim * group, llm_hidden)
    lin("llama_proj_video", visual_dim, llm_hidden)
    lin("llama_proj_audio", audio_dim, llm_hidden)
    lin("llama_proj_fusion", out_dim, llm_hidden)
    p = "conv_pro_module."
    for i, d in enumerate((audio_dim, visual_dim, visual_dim)):
        lin(f"{p}feats_prep.{i}.0", d, mlp_hidden)
        lin(f"{p}feats_prep.{i}.3", mlp_hidden, width)
    lin(f"{p}attention_mlp.0", 3 * width, mlp_hidden)
    lin(f"{p}attention_mlp.3", mlp_hidden, width)
    lin(f"{p}fc_att", width, 3)
    shapes[f"{p}conv_entry.weight"], shapes[f"{p}conv_entry.bias"] = (width, 3 * width, 1), (width,)
    for i in range(num_blocks):
        shapes[f"{p}conv_module.conv_blocks.{i}.conv_block.0.weight"] = (width, width, kernel)
        shapes[f"{p}conv_module.conv_blocks.{i}.conv_block.0.bias"] = (width,)
    lin(f"{p}fc_final", width, out_dim)
    ad = ".default" if peft_default else ""
    for layer in range(llm_layers):
        for proj in ("q_proj", "v_proj"):
            base = f"llama_model.base_model.model.model.layers.{layer}.self_attn.{proj}"
            shapes[f"{base}.lora_A{ad}.weight"] = (lora_r, llm_hidden)
            shapes[f"{base}.lora_B{ad}.weight"] = (llm_hidden, lora_r)
    if device == "meta":
        return {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    return {k: 0.1 * torch.randn(s, generator=g) for k, s in shapes.items()}


def eva_lavis_state(hidden, layers, intermediate, patch, image_size, seed=1) -> dict[str, torch.Tensor]:
    """A LAVIS eva_vit_g.pth-format state dict (names as BLIP-2's EVA / timm's Eva) with small random values."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=0.05: scale * torch.randn(*s, generator=g)  # noqa: E731
    n = (image_size // patch) ** 2 + 1
    sd = {"cls_token": r(1, 1, hidden, scale=0.5), "pos_embed": r(1, n, hidden, scale=0.5),
          "patch_embed.proj.weight": r(hidden, 3, patch, patch), "patch_embed.proj.bias": r(hidden)}
    for i in range(layers):
        b = f"blocks.{i}."
        for nrm in ("norm1", "norm2"):
            sd[b + nrm + ".weight"], sd[b + nrm + ".bias"] = 1 + r(hidden), r(hidden)
        sd[b + "attn.qkv.weight"] = r(3 * hidden, hidden)
        sd[b + "attn.q_bias"], sd[b + "attn.v_bias"] = r(hidden), r(hidden)
        sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"] = r(hidden, hidden), r(hidden)
        sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"] = r(intermediate, hidden), r(intermediate)
        sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"] = r(hidden, intermediate), r(hidden)
    return sd


@dataclass
class OfficialFiles:
    checkpoint: Path
    llama: Path
    whisper: Path
    eva: Path
    state: dict
    eva_state: dict


def make_llama_folder(path: Path, hidden: int, layers: int, seed: int = 2) -> Path:
    """A tiny LLaMA Hugging Face folder (random weights, the project's byte tokenizer)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from emotion_ros.model.tokenizer import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                                         max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                         tie_word_embeddings=False))
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def make_whisper_folder(path: Path, d_model: int, seed: int = 3) -> Path:
    """A tiny Whisper Hugging Face folder (128 mel bins like large-v3, 1500 positions = 30 s)."""
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(seed)
    WhisperModel(WhisperConfig(d_model=d_model, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
                               decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=2 * d_model,
                               num_mel_bins=128, max_source_positions=1500, vocab_size=300, pad_token_id=0, bos_token_id=1,
                               eos_token_id=2, decoder_start_token_id=1,
                               max_target_positions=32)).save_pretrained(path, safe_serialization=True)
    return path


def make_official_files(tmp: Path, peft_default: bool = False, **overrides) -> OfficialFiles:
    """Scaled-down official checkpoint + the local folders it belongs to, under ``tmp``."""
    dims = {**SMALL, **overrides}
    state = official_state(**dims, peft_default=peft_default)
    ckpt = tmp / "checkpoint_best.pth"
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
                "config": {"model": {"arch": "emotion_llama_v2", "lora_r": dims["lora_r"], "lora_alpha": 16},
                           "run": {"init_lr": 1e-4}},
                "scaler": {"scale": 65536.0}, "epoch": 9}, ckpt)
    eva_state = eva_lavis_state(**SMALL_EVA)
    eva = tmp / "eva_vit_g.pth"
    torch.save(eva_state, eva)
    llama = make_llama_folder(tmp / "llama", dims["llm_hidden"], dims["llm_layers"])
    whisper = make_whisper_folder(tmp / "whisper", dims["audio_dim"])
    return OfficialFiles(ckpt, llama, whisper, eva, state, eva_state)
