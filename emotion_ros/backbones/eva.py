"""EVA-ViT-G (the ``paper`` profile's image encoder) from the user's local LAVIS ``eva_vit_g.pth``.

What the official Emotion-LLaMAv2 does with that one file (github ooochen-30/Emotion-LLaMA-v2):
- global view (models/eva_vit.py + emotion_llama_v2.py): 448 px, position embeddings bicubic-interpolated
  16x16 -> 32x32 (align_corners=False, fp32, once), the first **39** blocks, no final norm, then
  ``ln_vision`` = LayerNorm(1408) with torch's default eps 1e-5 and default initialisation (it is in no
  checkpoint); the CLS after ln_vision is the fusion's global vector, the 1024 patch tokens the image stream;
- temporal view (my_utils/extract_features.py): timm ``eva_giant_patch14_224`` on the same file = all **40**
  blocks + timm's final LayerNorm (eps 1e-6; the file's ``norm.*`` if it has one, else weight 1 / bias 0),
  224 px, then 2x2 pooling per frame in the vision encoder.
``EvaViTG`` holds the 40 blocks once and runs either recipe; like the rest of the project (frame cache,
ONNX exports per size) it tells the views apart by the input size: ``global_size`` inputs take the global
recipe, every other size the temporal one.

Why transformers and not timm: timm (0.9.12 .. 1.0.31, checked) imports torchvision at ``import timm``
(timm/layers/create_norm.py), and PyPI's torchvision cannot load beside the project's CPU torch 2.13.0 (its
_C.so links libtorch_cuda.so: "operator torchvision::nms does not exist"); ``pip install timm`` would
replace torch by a 2.14 CUDA build. transformers' ``Blip2VisionModel`` is BLIP-2's port of this same
EVA-ViT-G (pre-norm blocks, q/v biases, exact GELU, LayerNorm eps 1e-6) and is already a dependency, so
its embedding + encoder layers run the blocks here; the equations are checked against a plain-torch EVA
block in tests/test_eva_backbone.py.

Weights: the .pth is opened once with ``torch.load(weights_only=True)``, mapped key by key (strict: every
key used or named in ``IGNORED_KEYS``, every parameter filled, else ONE error listing what is unmatched),
and the result is cached as safetensors in the user cache (emotion_ros.backbones.cache); later starts read
the safetensors. LAVIS key names equal timm's Eva names: ``cls_token``, ``pos_embed``,
``patch_embed.proj.*``, ``blocks.i.{norm1, attn.qkv.weight, attn.q_bias, attn.v_bias, attn.proj, norm2,
mlp.fc1, mlp.fc2}``; the separate q/v biases become transformers' fused qkv bias ``cat(q, 0, v)``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emotion_ros.backbones import cache
from emotion_ros.backbones.pth import WeightFileError, load_pth
from emotion_ros.io import sha256_file, write_json

CONVERTER_VERSION = 1
WEIGHTS_FILE = "eva_vit_g.safetensors"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

BLOCK_KEYS = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.q_bias", "attn.v_bias", "attn.proj.weight",
              "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
              "mlp.fc2.bias")
# Keys a LAVIS/EVA-CLIP file may carry that the official model never uses (timm drops them too).
IGNORED_KEYS = {
    "head.weight": "classifier/projection head: the official temporal extractor builds timm with num_classes=0",
    "head.bias": "classifier/projection head: the official temporal extractor builds timm with num_classes=0",
}


class EvaViTG(nn.Module):
    """VisionBackbone: forward(pixels [B,3,S,S]) -> (grid [B,C,S/14,S/14] without CLS, pooled CLS [B,C]).

    S == global_size: the first ``global_layers`` blocks + ``ln_vision``; any other S: all blocks +
    ``vit.post_layernorm`` (timm's final norm). Position embeddings are interpolated for any grid size.
    """

    view_by_size = True  # the vision encoder must keep the global and temporal sizes distinct

    def __init__(self, hidden_size: int = 1408, layers: int = 40, heads: int = 16, intermediate_size: int = 6144,
                 patch_size: int = 14, image_size: int = 224, global_size: int = 448, global_layers: int | None = None,
                 image_mean: tuple = CLIP_MEAN, image_std: tuple = CLIP_STD):
        super().__init__()
        from transformers import Blip2VisionConfig, Blip2VisionModel

        cfg = Blip2VisionConfig(hidden_size=hidden_size, intermediate_size=intermediate_size,
                                num_hidden_layers=layers, num_attention_heads=heads, image_size=image_size,
                                patch_size=patch_size, hidden_act="gelu", layer_norm_eps=1e-6, qkv_bias=True)
        self.vit = Blip2VisionModel(cfg)
        self.ln_vision = nn.LayerNorm(hidden_size)  # eps 1e-5, as the official (torch default)
        self.global_layers = layers if global_layers is None else int(global_layers)
        if not 0 < self.global_layers <= layers:
            raise ValueError(f"global_layers must be in 1..{layers}, got {global_layers}")
        self.feature_dim = hidden_size
        self.patch_size = patch_size
        self.image_size = image_size
        self.global_size = global_size
        self.image_mean = tuple(image_mean)
        self.image_std = tuple(image_std)

    @property
    def num_layers(self) -> int:
        return len(self.vit.encoder.layers)

    def position_table(self, h: int, w: int) -> torch.Tensor:
        """[1, 1+h*w, C]: the native table, or its patch part bicubic-interpolated to h x w (in fp32)."""
        table = self.vit.embeddings.position_embedding
        g = int(round((table.shape[1] - 1) ** 0.5))
        if (h, w) == (g, g):
            return table
        cls, grid = table[:, :1], table[:, 1:].float()
        grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return torch.cat([cls.float(), grid], dim=1).to(table.dtype)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"expected pixel_values [B,3,S,S], got {tuple(pixel_values.shape)}")
        emb = self.vit.embeddings
        B, size = pixel_values.shape[0], pixel_values.shape[-1]
        x = emb.patch_embedding(pixel_values.to(emb.patch_embedding.weight.dtype))  # [B, C, h, w]
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([emb.class_embedding.expand(B, 1, -1).to(x.dtype), x], dim=1)
        x = x + self.position_table(h, w).to(x.dtype)
        is_global = size == self.global_size
        for layer in self.vit.encoder.layers[:self.global_layers if is_global else self.num_layers]:
            x = layer(x)
        norm = self.ln_vision if is_global else self.vit.post_layernorm
        x = norm(x.float()).to(x.dtype)  # the official LayerNorm computes in fp32
        grid = x[:, 1:].transpose(1, 2).reshape(B, x.shape[-1], h, w)
        return grid, x[:, 0]


def _tensor_state(obj, path) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]  # the official extractor accepts {"model": state_dict} too
    if not isinstance(obj, Mapping) or not obj:
        raise WeightFileError(path, f"expected a state dict of tensors, found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise WeightFileError(path, f"expected a state dict of tensors; not tensors: {bad[:5]}")
    return obj


def map_lavis_state(src: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                    path) -> tuple[dict[str, torch.Tensor], dict]:
    """LAVIS/timm-named EVA tensors -> the full state dict of ``EvaViTG`` (names/shapes from ``expected``).

    Raises WeightFileError naming every missing key, unexpected key and wrong shape at once. Returns
    (state, notes); notes say where the two final norms came from.
    """
    n_layers = 1 + max(int(k.split(".")[3]) for k in expected if k.startswith("vit.encoder.layers."))
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing, wrong = [], []

    def want(src_key: str, dst_key: str, shape) -> torch.Tensor | None:
        if src_key not in src:
            missing.append(f"{src_key} {list(shape)}")
            return None
        used.add(src_key)
        t = src[src_key]
        if tuple(t.shape) != tuple(shape):
            wrong.append(f"{src_key}: file {list(t.shape)}, model {list(shape)}")
            return None
        return t

    def put(src_key: str, dst_key: str) -> None:
        t = want(src_key, dst_key, expected[dst_key].shape)
        if t is not None:
            out[dst_key] = t

    put("cls_token", "vit.embeddings.class_embedding")
    put("pos_embed", "vit.embeddings.position_embedding")
    put("patch_embed.proj.weight", "vit.embeddings.patch_embedding.weight")
    put("patch_embed.proj.bias", "vit.embeddings.patch_embedding.bias")
    for i in range(n_layers):
        s, d = f"blocks.{i}.", f"vit.encoder.layers.{i}."
        for a, b in (("norm1", "layer_norm1"), ("norm2", "layer_norm2"), ("attn.proj", "self_attn.projection"),
                     ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
            put(f"{s}{a}.weight", f"{d}{b}.weight")
            put(f"{s}{a}.bias", f"{d}{b}.bias")
        put(f"{s}attn.qkv.weight", f"{d}self_attn.qkv.weight")
        dim = expected[f"{d}self_attn.qkv.bias"].shape[0] // 3
        q = want(f"{s}attn.q_bias", "", (dim,))
        v = want(f"{s}attn.v_bias", "", (dim,))
        if q is not None and v is not None:
            out[f"{d}self_attn.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
    notes = {}
    if "norm.weight" in src or "norm.bias" in src:
        put("norm.weight", "vit.post_layernorm.weight")
        put("norm.bias", "vit.post_layernorm.bias")
        notes["temporal_final_norm"] = "file norm.weight/norm.bias"
    else:
        C = expected["vit.post_layernorm.weight"].shape[0]
        out["vit.post_layernorm.weight"], out["vit.post_layernorm.bias"] = torch.ones(C), torch.zeros(C)
        notes["temporal_final_norm"] = "default LayerNorm (weight 1, bias 0): the file has no norm.*, as timm leaves it"
    C = expected["ln_vision.weight"].shape[0]
    out["ln_vision.weight"], out["ln_vision.bias"] = torch.ones(C), torch.zeros(C)
    notes["ln_vision"] = "default LayerNorm (weight 1, bias 0), as the official model (never trained, in no file)"
    ignored = sorted(k for k in src if k in IGNORED_KEYS)
    if ignored:
        notes["ignored"] = {k: IGNORED_KEYS[k] for k in ignored}
    unexpected = sorted(f"{k} {list(src[k].shape)}" for k in src if k not in used and k not in IGNORED_KEYS)
    unfilled = sorted(set(expected) - set(out))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:8])}"
                         f"{' ...' if len(unexpected) > 8 else ''}")
        if wrong:
            parts.append(f"wrong shape {len(wrong)}: {'; '.join(wrong[:8])}{' ...' if len(wrong) > 8 else ''}")
        raise WeightFileError(path, f"does not fit EVA-ViT-G with {n_layers} blocks (LAVIS eva_vit_g.pth "
                                    f"names expected); " + "; ".join(parts))
    assert not unfilled, unfilled  # every model tensor is produced above
    return out, notes


def _source_key(path: Path, shape: dict) -> dict:
    st = path.stat()
    return {"converter": CONVERTER_VERSION, "path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
            **shape}


def eva_weights_file(path, verify_cache: bool = False, **shape) -> Path:
    """The cached safetensors of ``path`` converted for an EvaViTG of ``shape`` (converting on first use)."""
    from safetensors.torch import save_file

    src = Path(path).expanduser().resolve()
    if not src.is_file():
        raise WeightFileError(src, "file not found (the LAVIS eva_vit_g.pth; nothing is downloaded)")
    key = _source_key(src, shape)
    with torch.device("meta"):
        expected = EvaViTG(**shape).state_dict()

    def build(tmp: Path) -> None:
        state, notes = map_lavis_state(_tensor_state(load_pth(src), src), expected, src)
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / WEIGHTS_FILE),
                  metadata={"format": "emotion_ros.eva_vit_g/1"})
        write_json(tmp / cache.META_NAME, {"source": key, "source_sha256": sha256_file(src),
                                           "files": cache.describe_files(tmp, [WEIGHTS_FILE]), "notes": notes})

    name = "eva-vit-g-" + hashlib.sha256(str(src).encode()).hexdigest()[:12]
    return cache.build_entry(name, key, build, verify_cache) / WEIGHTS_FILE


def load_eva_vit_g(path, hidden_size: int = 1408, layers: int = 40, heads: int = 16, intermediate_size: int = 6144,
                   patch_size: int = 14, image_size: int = 224, global_size: int = 448,
                   global_layers: int | None = 39, image_mean: tuple = CLIP_MEAN, image_std: tuple = CLIP_STD,
                   dtype: torch.dtype = torch.float32, verify_cache: bool = False) -> EvaViTG:
    """EvaViTG with the weights of the LAVIS file ``path`` (eval mode). Built on the meta device and filled
    from the cached safetensors (no random initialisation of 1 B parameters)."""
    from safetensors.torch import load_file

    shape = dict(hidden_size=hidden_size, layers=layers, heads=heads, intermediate_size=intermediate_size,
                 patch_size=patch_size, image_size=image_size, global_size=global_size, global_layers=global_layers)
    weights = eva_weights_file(path, verify_cache, **shape)
    with torch.device("meta"):
        model = EvaViTG(**shape, image_mean=image_mean, image_std=image_std)
    state = {k: v.to(dtype) for k, v in load_file(str(weights)).items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
