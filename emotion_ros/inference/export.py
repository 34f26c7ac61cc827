"""Deployment exports: merged-LoRA LLM folder, ONNX graphs of the encoders and of fusion+adapter, GGUF.

Why each exists
- ``merge_lora_folder``: peft's ``merge_and_unload`` folds LoRA into q/v weights, so the deployed LLM is
  an ordinary Hugging Face model (no adapter math per token) that any runtime can load; saved as
  safetensors + tokenizer files.
- ``export_onnx``: the frozen encoders and the small trained fusion/adapter as ONNX graphs with a
  dynamic batch axis and fixed token counts, for onnxruntime (TensorRT EP / CUDA EP / CPU EP) or a
  TensorRT engine (``backends.build_tensorrt_engine``). Files:
    audio_encoder.onnx   mel [B, n_mels, T] -> states [B, T/2, D]    (T dynamic too: the real window length;
                          the 64-token pooling stays outside, in numpy-cheap PyTorch)
    vision_<S>.onnx      pixels [B, 3, S, S] -> grid [B, C, h, w], pooled [B, C]   (one per view size)
    fusion_adapter.onnx  audio [B,64,Da], temporal [B,64,C], global_cls [B,C], global_patches [B,n,C]
                          -> fusion/image/video/audio embeddings [B, N, H] (masks are applied outside)
  plus manifest.json (shapes, opset, the model config) so a backend can check it matches its model.
- ``export_merged_gguf``: the merged LLM as a GGUF in the storage types of the GGUF it came from (the nano
  LLM is the packaged Q4_K_M Gemma file): every tensor is copied as is except the LoRA-merged ones, which are
  re-quantised to their original type with the ``gguf`` package. llama.cpp then runs exactly the deployed
  model (benchmarks/bench_pipeline.py compares its decode speed with ours).

Exports use the TorchScript-based ONNX exporter (``dynamo=False``): the dynamo exporter needs
``onnxscript``, which is not a project dependency.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from torch import nn

from emotion_ros.io import write_json

OPSET = 17
MANIFEST = "manifest.json"


# -- LoRA merge ------------------------------------------------------------------------------------------
def merged_copy(llm) -> nn.Module:
    """A merged (LoRA folded in) deep copy of an EmotionLLM's causal LM; the original stays untouched."""
    model = copy.deepcopy(llm.model)
    if hasattr(model, "peft_config"):
        model = model.merge_and_unload()
    return model.eval()


def merge_lora_folder(llm, out_dir: str | os.PathLike) -> Path:
    """Write the merged LLM + tokenizer as a Hugging Face folder (safetensors). Returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = merged_copy(llm)
    # A model dequantised from GGUF by transformers still carries its quantizer and refuses to save;
    # its weights are plain fp32 tensors by then, so dropping the quantizer record is safe.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        for attr in ("is_quantized", "quantization_method"):
            if hasattr(model, attr):
                try:
                    setattr(model, attr, False if attr == "is_quantized" else None)
                except Exception:  # read-only property on some versions
                    pass
    model.save_pretrained(out, safe_serialization=True)
    llm.tokenizer.save_pretrained(out)
    return out


def load_merged(folder: str | os.PathLike, dtype=torch.float32):
    """(causal LM, tokenizer) from a merged folder, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype).eval()
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)


# -- ONNX ------------------------------------------------------------------------------------------------
class _AudioStates(nn.Module):
    def __init__(self, audio_encoder):
        super().__init__()
        self.audio_encoder = audio_encoder

    def forward(self, mel):
        return self.audio_encoder.encode_mel(mel)


class _VisionBackbone(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, pixels):
        grid, pooled = self.backbone(pixels)
        return grid, pooled


class FusionAdapter(nn.Module):
    """Conv-Attention fusion + modal adapter as one graph (unmasked outputs)."""

    def __init__(self, fusion, adapter):
        super().__init__()
        self.fusion = fusion
        self.adapter = adapter

    def forward(self, audio_tokens, temporal_tokens, global_cls, global_patches):
        fused = self.fusion(audio_tokens, temporal_tokens, global_cls)
        p = self.adapter(fusion=fused, image=global_patches, video=temporal_tokens, audio=audio_tokens)
        return p["fusion"], p["image"], p["video"], p["audio"]


def _export(module, args, path, input_names, output_names, dynamic_axes):
    import warnings

    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False,
                          do_constant_folding=True)


def onnx_files(model) -> dict[str, str]:
    """File name per graph for this model's view sizes."""
    v = model.vision_encoder
    names = {"audio": "audio_encoder.onnx", "fusion_adapter": "fusion_adapter.onnx",
             f"vision_{v.global_size}": f"vision_{v.global_size}.onnx"}
    names[f"vision_{v.temporal_size}"] = f"vision_{v.temporal_size}.onnx"
    return names


def export_onnx(model, out_dir: str | os.PathLike, window_seconds: float = 2.0) -> Path:
    """Export audio encoder, vision backbone (each view size) and fusion+adapter of an EmotionLLaMA."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    a, v = model.audio_encoder, model.vision_encoder
    files = onnx_files(model)
    dev = model.device
    # audio: mel of a window of the deployment length (T stays a dynamic axis anyway)
    T = max(2, int(round(window_seconds * a.sample_rate / 160 / 2)) * 2)
    mel = torch.zeros(2, a.n_mels, T, device=dev)
    _export(_AudioStates(a), (mel,), out / files["audio"], ["mel"], ["states"],
            {"mel": {0: "batch", 2: "frames"}, "states": {0: "batch", 1: "positions"}})
    for size in sorted({v.global_size, v.temporal_size}):
        x = torch.zeros(2, 3, size, size, device=dev)
        _export(_VisionBackbone(v.backbone), (x,), out / files[f"vision_{size}"], ["pixels"], ["grid", "pooled"],
                {"pixels": {0: "batch"}, "grid": {0: "batch"}, "pooled": {0: "batch"}})
    n_tok = model.fusion.num_tokens
    args = (torch.zeros(2, a.num_tokens, a.dim, device=dev), torch.zeros(2, v.num_temporal_tokens, v.dim, device=dev),
            torch.zeros(2, v.dim, device=dev), torch.zeros(2, v.num_global_tokens, v.dim, device=dev))
    _export(FusionAdapter(model.fusion, model.adapter), args, out / files["fusion_adapter"],
            ["audio_tokens", "temporal_tokens", "global_cls", "global_patches"],
            ["fusion", "image", "video", "audio"],
            {k: {0: "batch"} for k in ("audio_tokens", "temporal_tokens", "global_cls", "global_patches",
                                       "fusion", "image", "video", "audio")})
    manifest = {
        "opset": OPSET, "files": files, "window_seconds": window_seconds,
        "audio": {"n_mels": a.n_mels, "dim": a.dim, "num_tokens": a.num_tokens},
        "vision": {"global_size": v.global_size, "temporal_size": v.temporal_size, "dim": v.dim,
                   "global_tokens": v.num_global_tokens, "temporal_tokens": v.num_temporal_tokens},
        "fusion_tokens": n_tok, "llm_hidden": model.llm.hidden_size,
        "fingerprint": weights_fingerprint(model),
        "config": model.cfg.to_dict(),
    }
    write_json(out / MANIFEST, manifest)  # last: its presence marks a complete export (onnx_up_to_date)
    return out


def weights_fingerprint(model) -> str:
    """Short digest of the exported modules' weights, so stale ONNX files are detected (and re-exported)."""
    import hashlib

    h = hashlib.blake2b(digest_size=12)
    for mod in (model.audio_encoder, model.vision_encoder.backbone, model.fusion, model.adapter):
        for name, t in sorted(mod.state_dict().items()):
            t = t.detach().float().cpu().reshape(-1)
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            # sum + a strided sample: cheap and sensitive to any retraining
            h.update(t.sum().numpy().tobytes())
            h.update(t[:: max(1, t.numel() // 64)].numpy().tobytes())
    return h.hexdigest()


def onnx_up_to_date(model, out_dir: str | os.PathLike) -> bool:
    out = Path(out_dir)
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("fingerprint") != weights_fingerprint(model):
        return False
    return all((out / f).exists() for f in manifest.get("files", {}).values())


# -- GGUF ------------------------------------------------------------------------------------------------
def export_merged_gguf(llm, base_gguf: str | os.PathLike, out_file: str | os.PathLike) -> Path:
    """Write ``llm`` (EmotionLLM, LoRA merged on a copy) as ``base_gguf`` with the LoRA target weights replaced.

    ``base_gguf`` must be the file the LLM's base weights were loaded from (checked: every replaced tensor's
    base must dequantise to the unmerged weight). Metadata and untouched tensors are copied byte for byte.
    """
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, get_tensor_name_map
    from gguf.quants import dequantize, quantize

    if not llm.has_lora:
        raise ValueError("export_merged_gguf needs the LLM with its LoRA still attached (not merged in place): "
                         "it replaces the LoRA target weights of the base file")
    targets = set()
    for cfg in llm.model.peft_config.values():
        targets |= set(cfg.target_modules)
    base_state = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                  for k, v in llm.model.state_dict().items() if "lora_" not in k}
    merged = merged_copy(llm).state_dict()
    reader = GGUFReader(str(base_gguf))
    arch = reader.fields["general.architecture"].contents()
    n_blocks = int(reader.fields[f"{arch}.block_count"].contents())
    names = get_tensor_name_map(gguf_arch(arch), n_blocks)
    replace = {}
    for hf_name, w in merged.items():
        parts = hf_name.split(".")
        if len(parts) < 2 or parts[-2] not in targets or parts[-1] != "weight":
            continue
        gname = names.get_name(hf_name.removeprefix("model."), try_suffixes=(".weight",))
        if gname is None:
            raise ValueError(f"no GGUF name for {hf_name}")
        replace[gname] = (hf_name, w)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(out_file), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        sub = field.types[-1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), field.types[0], sub_type=sub)
    done = set()
    for t in reader.tensors:
        data = t.data
        if t.name in replace:
            hf_name, w = replace[t.name]
            base = base_state.get(hf_name)
            if base is None or not torch.allclose(torch.from_numpy(dequantize(t.data, t.tensor_type)),
                                                  base.float(), atol=1e-6):
                raise ValueError(f"{base_gguf} is not the base of this LLM ({t.name} differs)")
            data = quantize(w.float().numpy(), t.tensor_type)
            done.add(t.name)
        writer.add_tensor(t.name, data, raw_shape=data.shape if t.data.dtype == data.dtype else None,
                          raw_dtype=t.tensor_type)
    if done != set(replace):
        raise ValueError(f"tensors missing from {base_gguf}: {sorted(set(replace) - done)}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def gguf_arch(name: str):
    """gguf.MODEL_ARCH member of an architecture name as written in GGUF metadata (e.g. 'gemma3')."""
    from gguf import MODEL_ARCH_NAMES

    for arch, arch_name in MODEL_ARCH_NAMES.items():
        if arch_name == name:
            return arch
    raise ValueError(f"unknown GGUF architecture {name!r}")
