"""Import a released Emotion-LLaMAv2 checkpoint (github ooochen-30/Emotion-LLaMA-v2) into the project's
checkpoint folder (emotion_ros.model.checkpoint), so the ``paper`` profile runs the official model.

The official ``checkpoint_{N|best}.pth`` is ``torch.save({"model": <trainable tensors only>, "optimizer",
"config", "scaler", "epoch"})``. Its 166 trainable tensors (71,536,387 parameters at full size) map onto the
project's parts by name alone, because the project's fusion and adapter have the official structure:

    conv_pro_module.*                                  -> fusion.*          (ConvAttentionFusion, same names)
    llama_proj.*  (5632 -> 4096, 4 patch tokens each)  -> adapter.image.*
    llama_proj_video.* / llama_proj_audio.* / llama_proj_fusion.* -> adapter.video.* / .audio.* / .fusion.*
    llama_model.base_model.model.model.layers.N.self_attn.{q,v}_proj.lora_{A,B}[.default].weight
                                                       -> the same name without "llama_model." / ".default"
                                                          (peft's adapter_model.safetensors naming)

Both peft spellings are accepted (peft 0.2, which the official environment pins, has no adapter-name level;
later peft versions insert ".default."). Everything is strict: every official key must map, every project
tensor must be filled, every shape must fit, else ONE ``WeightFileError`` lists the unmatched keys with their
shapes and nothing is written (the official loader uses ``strict=False`` and would load nothing silently).
``.pth`` files are opened with ``torch.load(weights_only=True)`` only (emotion_ros.backbones.pth).

The architecture is read from the user's files, not assumed: LLaMA and Whisper dimensions from their
``config.json``, EVA's from the tensors of ``eva_vit_g.pth`` (heads = width / 88 as in LAVIS' EVA; global view
= all blocks but the last, as BLIP-2 / the official model: 39 of 40), fusion widths and LoRA rank from the
checkpoint (LoRA alpha from its saved config, default 16); fixed as in the official code: the 4-patch
grouping of the global view and the LoRA targets q_proj/v_proj. The EVA file is converted to the safetensors cache
during the import (emotion_ros.backbones.eva), so the first start is fast and a bad file fails here.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from emotion_ros.backbones.pth import WeightFileError, load_pth
from emotion_ros.io import sha256_file
from emotion_ros.model.config import ModelConfig, get_profile

OFFICIAL_REPO = "github.com/ooochen-30/Emotion-LLaMA-v2"
MODAL_PREFIXES = (("conv_pro_module.", "fusion."), ("llama_proj_fusion.", "adapter.fusion."),
                  ("llama_proj_video.", "adapter.video."), ("llama_proj_audio.", "adapter.audio."),
                  ("llama_proj.", "adapter.image."))
_LORA_RE = re.compile(r"^llama_model\.(base_model\.model\..+)\.(lora_[AB])(\.default)?\.weight$")
EVA_HEAD_DIM = 88  # LAVIS create_eva_vit_g: num_heads = 1408 // 88


# -- expected names and shapes -------------------------------------------------------------------------------
def expected_shapes(cfg: ModelConfig) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(fusion.*/adapter.* shapes, LoRA shapes in peft's saved naming) of ``cfg``, from meta-device skeletons."""
    from torch import nn
    from transformers import LlamaConfig, LlamaForCausalLM

    from emotion_ros.model.adapter import ModalAdapter
    from emotion_ros.model.fusion import ConvAttentionFusion

    a, v, f, c = cfg.audio, cfg.vision, cfg.fusion, cfg.llm
    with torch.device("meta"):
        fusion = ConvAttentionFusion(a.d_model, v.feature_dim, f.mlp_hidden, f.width, f.num_blocks, f.kernel_size,
                                     f.out_dim, f.num_tokens, dropout=f.dropout)
        adapter = ModalAdapter(f.out_dim, v.feature_dim, v.feature_dim, a.d_model, c.hidden_size,
                               image_group=v.global_token_group)
        llm = LlamaForCausalLM(LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                                           intermediate_size=c.intermediate_size, num_hidden_layers=c.layers,
                                           num_attention_heads=c.heads, num_key_value_heads=c.kv_heads,
                                           head_dim=c.head_dim or c.hidden_size // c.heads))
    modal = {f"fusion.{k}": tuple(t.shape) for k, t in fusion.state_dict().items()}
    modal.update({f"adapter.{k}": tuple(t.shape) for k, t in adapter.state_dict().items()})
    lora = {}
    for name, mod in llm.named_modules():
        if isinstance(mod, nn.Linear) and name.split(".")[-1] in c.lora_targets:
            lora[f"base_model.model.{name}.lora_A.weight"] = (c.lora_r, mod.in_features)
            lora[f"base_model.model.{name}.lora_B.weight"] = (mod.out_features, c.lora_r)
    return modal, lora


def official_name(project_key: str) -> str:
    """The official checkpoint's name of a project tensor (the inverse of the import mapping)."""
    for off, ours in MODAL_PREFIXES:
        if project_key.startswith(ours):
            return off + project_key[len(ours):]
    return "llama_model." + project_key


# -- mapping -------------------------------------------------------------------------------------------------
def map_official_state(state: Mapping[str, torch.Tensor], cfg: ModelConfig, path="checkpoint"
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """Official ``ckpt["model"]`` -> (modal tensors, LoRA tensors, report), strictly (see module docstring).

    Works on meta tensors too (shapes only). Tensors are returned as float32 (the official ones are fp32 or
    fp16 depending on how they were saved)."""
    exp_modal, exp_lora = expected_shapes(cfg)
    modal: dict[str, torch.Tensor] = {}
    lora: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}  # project name -> official name it came from
    seen: set[str] = set()  # project names offered (fitting or not)
    spellings = set()
    unexpected, wrong, duplicate = [], [], []
    for key, t in state.items():
        ours = None
        for off, prefix in MODAL_PREFIXES:
            if key.startswith(off):
                ours = prefix + key[len(off):]
                break
        target, expected = modal, exp_modal
        if ours is None:
            m = _LORA_RE.match(key)
            if m:
                ours = f"{m.group(1)}.{m.group(2)}.weight"
                spellings.add("peft>=0.3 (.default.)" if m.group(3) else "peft 0.2 (no adapter name)")
                target, expected = lora, exp_lora
        if ours is None or ours not in expected:
            unexpected.append(f"{key} {list(t.shape)}")
            continue
        if ours in seen:
            duplicate.append(f"{key} and {source.get(ours, ours)}")
            continue
        seen.add(ours)
        source[ours] = key
        if tuple(t.shape) != expected[ours]:
            wrong.append(f"{key}: checkpoint {list(t.shape)}, model {list(expected[ours])}")
            continue
        target[ours] = t.to(torch.float32)
    missing = [f"{official_name(k)} {list(s)}" for k, s in {**exp_modal, **exp_lora}.items() if k not in seen]
    if unexpected or missing or wrong or duplicate:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong),
                             ("both peft spellings of", duplicate)):
            if items:
                parts.append(f"{label} {len(items)}: {'; '.join(sorted(items)[:10])}{' ...' if len(items) > 10 else ''}")
        raise WeightFileError(path, "does not fit the Emotion-LLaMAv2 architecture of these local models "
                                    "(nothing written); " + " | ".join(parts))
    n = sum(t.numel() for t in modal.values()) + sum(t.numel() for t in lora.values())
    report = {"tensors": len(modal) + len(lora), "parameters": n, "peft_spelling": sorted(spellings)}
    return modal, lora, report


# -- architecture from the user's files ----------------------------------------------------------------------
def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise WeightFileError(path, f"missing: {what} needs a Hugging Face folder with config.json")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise WeightFileError(path, f"corrupt JSON ({e})") from None


def eva_shape(state: Mapping[str, torch.Tensor], path) -> dict:
    """EvaViTG dimensions read off a LAVIS eva_vit_g state dict."""
    need = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")
    absent = [k for k in need if k not in state]
    if absent:
        raise WeightFileError(path, f"not a LAVIS EVA-ViT state dict: missing {absent}")
    hidden = int(state["cls_token"].shape[-1])
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("blocks.") and k.split(".")[1].isdigit()})
    if blocks != list(range(len(blocks))) or len(blocks) < 2:
        raise WeightFileError(path, f"EVA blocks must be numbered 0..N-1 with N >= 2, found {blocks[:3]}..{blocks[-3:]}")
    if hidden % EVA_HEAD_DIM:
        raise WeightFileError(path, f"width {hidden} is not a multiple of LAVIS EVA's head size {EVA_HEAD_DIM}")
    return dict(hidden_size=hidden, layers=len(blocks), heads=hidden // EVA_HEAD_DIM,
                intermediate_size=int(state["blocks.0.mlp.fc1.weight"].shape[0]), patch_size=patch,
                image_size=grid * patch, global_layers=len(blocks) - 1)


def _lora_hparams(ckpt: Mapping, model_state: Mapping[str, torch.Tensor]) -> tuple[int, int, list]:
    """(r, alpha, targets): r from the tensors (else the saved config), alpha from the saved config (default 16),
    targets always q_proj/v_proj: the official from_config never passes lora_target_modules on."""
    ranks = {int(t.shape[0]) for k, t in model_state.items() if k.endswith("lora_A.weight")
             or k.endswith("lora_A.default.weight")}
    saved = ckpt.get("config", {}) if isinstance(ckpt, Mapping) else {}
    saved = saved.get("model", {}) if isinstance(saved, Mapping) else {}
    r = ranks.pop() if len(ranks) == 1 else int(saved.get("lora_r", 64))
    return r, int(saved.get("lora_alpha", 16)), ["q_proj", "v_proj"]


def config_for(model_state: Mapping[str, torch.Tensor], ckpt: Mapping, llama: Path, eva_state: Mapping,
               eva: Path, whisper: Path) -> ModelConfig:
    """The paper profile with the dimensions of these local files (see module docstring)."""
    cfg = get_profile("paper", llm__path=str(llama), audio__path=str(whisper), vision__path=str(eva))
    lc = _read_json(llama / "config.json", "--llama")
    if lc.get("model_type") != "llama":
        raise WeightFileError(llama / "config.json", f"model_type {lc.get('model_type')!r}: the official model is "
                                                     "LLaMA-2-7b-chat (model_type 'llama')")
    c = cfg.llm
    c.hidden_size, c.layers, c.heads = lc["hidden_size"], lc["num_hidden_layers"], lc["num_attention_heads"]
    c.kv_heads = lc.get("num_key_value_heads", c.heads)
    c.intermediate_size, c.vocab_size, c.head_dim = lc["intermediate_size"], lc["vocab_size"], lc.get("head_dim")
    c.lora_r, c.lora_alpha, c.lora_targets = _lora_hparams(ckpt, model_state)
    wc = _read_json(whisper / "config.json", "--whisper")
    a = cfg.audio
    a.d_model, a.layers, a.heads = wc["d_model"], wc["encoder_layers"], wc["encoder_attention_heads"]
    a.ffn, a.n_mels, a.max_source_positions = wc["encoder_ffn_dim"], wc["num_mel_bins"], wc["max_source_positions"]
    v = cfg.vision
    for k, val in eva_shape(eva_state, eva).items():
        setattr(v, k, val)
    v.feature_dim = v.hidden_size
    f = cfg.fusion
    get = lambda k, dim, default: int(model_state[k].shape[dim]) if k in model_state else default  # noqa: E731
    f.mlp_hidden = get("conv_pro_module.feats_prep.0.0.weight", 0, f.mlp_hidden)
    f.width = get("conv_pro_module.feats_prep.0.3.weight", 0, f.width)
    f.out_dim = get("conv_pro_module.fc_final.weight", 0, f.out_dim)
    f.kernel_size = get("conv_pro_module.conv_module.conv_blocks.0.conv_block.0.weight", 2, f.kernel_size)
    f.num_blocks = len({k.split(".")[3] for k in model_state if k.startswith("conv_pro_module.conv_module.conv_blocks.")}) \
        or f.num_blocks
    # The global view's 4-patch grouping is fixed in the official model (img_f_dim = num_features * 4): not
    # read from the checkpoint, so a llama_proj of another width is reported as a wrong shape.
    return cfg


# -- the import ----------------------------------------------------------------------------------------------
def _model_state(ckpt, path) -> Mapping[str, torch.Tensor]:
    state = ckpt.get("model") if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise WeightFileError(path, "not an official Emotion-LLaMAv2 checkpoint: no 'model' state dict at the top "
                                    f"level (found {sorted(ckpt)[:6] if isinstance(ckpt, Mapping) else type(ckpt).__name__})")
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise WeightFileError(path, f"'model' holds non-tensors: {bad[:5]}")
    return state


def import_official(checkpoint, llama, eva, whisper, out, merge: bool = False, log=print) -> dict:
    """Convert an official checkpoint into the project's checkpoint folder ``out`` (+ ``out/merged_llm`` with
    ``merge``). Returns a report dict. Raises WeightFileError (one message) before writing anything."""
    from emotion_ros.backbones.eva import eva_weights_file
    from emotion_ros.backbones.eva import _tensor_state as eva_tensor_state
    from emotion_ros.model.checkpoint import write_checkpoint

    checkpoint, llama, eva, whisper = (Path(p).expanduser().resolve() for p in (checkpoint, llama, eva, whisper))
    for p, what in ((llama, "--llama"), (whisper, "--whisper")):
        if not p.is_dir():
            raise WeightFileError(p, f"{what} must be a local Hugging Face folder (nothing is downloaded)")
    ckpt = load_pth(checkpoint)
    state = _model_state(ckpt, checkpoint)
    eva_state = eva_tensor_state(load_pth(eva), eva)
    cfg = config_for(state, ckpt, llama, eva_state, eva, whisper)
    modal, lora, report = map_official_state(state, cfg, checkpoint)
    v = cfg.vision
    log(f"mapped {report['tensors']} tensors, {report['parameters']:,} parameters ({', '.join(report['peft_spelling'])})")
    weights = eva_weights_file(eva, hidden_size=v.hidden_size, layers=v.layers, heads=v.heads,
                               intermediate_size=v.intermediate_size, patch_size=v.patch_size,
                               image_size=v.image_size, global_size=v.global_size, global_layers=v.global_layers)
    log(f"EVA-ViT-G ({v.layers} blocks, global view {v.global_layers}) cached as {weights}")
    from peft import LoraConfig

    lcfg = LoraConfig(r=cfg.llm.lora_r, lora_alpha=cfg.llm.lora_alpha, lora_dropout=cfg.llm.lora_dropout,
                      target_modules=list(cfg.llm.lora_targets), bias="none", task_type="CAUSAL_LM",
                      base_model_name_or_path=str(llama))

    def save_lora(tmp: Path) -> None:
        from safetensors.torch import save_file

        lcfg.save_pretrained(str(tmp))
        save_file({k: t.contiguous() for k, t in lora.items()}, str(tmp / "adapter_model.safetensors"),
                  metadata={"format": "pt"})

    epoch = ckpt.get("epoch") if isinstance(ckpt.get("epoch"), (int, float, str)) else None
    meta = {"imported_from": {"repository": OFFICIAL_REPO, "checkpoint": str(checkpoint),
                              "sha256": sha256_file(checkpoint), "epoch": epoch, **report}}
    folder = write_checkpoint(out, modal, cfg.to_dict(), save_lora, {k: list(t.shape) for k, t in lora.items()}, meta)
    log(f"wrote {folder}")
    report = {**report, "out": str(folder), "model_config": cfg.to_dict()}
    if merge:
        report["merged_llm"] = str(write_merged_llm(llama, lora, lcfg, folder / "merged_llm", cfg.llm.pad_token))
        log(f"wrote the merged LLM {report['merged_llm']}")
    return report


def write_merged_llm(llama: Path, lora: Mapping[str, torch.Tensor], lora_config, out: Path,
                     pad_token: str | None = None) -> Path:
    """LLaMA + LoRA folded in (W += alpha/r * B @ A, peft's merge_and_unload) saved as a Hugging Face folder
    (safetensors, the base folder's dtype: fp16 for LLaMA-2-7b-chat, ~13.5 GB in memory while merging)."""
    from peft import get_peft_model, set_peft_model_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(llama), local_files_only=True, dtype="auto")
    tok = AutoTokenizer.from_pretrained(str(llama), local_files_only=True)
    if pad_token is not None:
        tok.pad_token = pad_token
    model = get_peft_model(base, lora_config)
    dtype = next(base.parameters()).dtype
    res = set_peft_model_state_dict(model, {k: t.to(dtype) for k, t in lora.items()})
    if getattr(res, "unexpected_keys", None):
        raise WeightFileError(out, f"peft did not accept LoRA keys {res.unexpected_keys[:5]}")
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out
