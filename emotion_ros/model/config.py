"""Model configuration: plain dataclasses for every part of Emotion-LLaMAv2, and the three profiles.

Profiles (``get_profile``):
- ``tiny``: every part random and miniature (built from configs in milliseconds) for tests.
- ``nano``: the embedded default; pretrained weights that ship inside registry packages, loaded by
  ``emotion_ros.backbones.*`` (Whisper-base encoder, EfficientNet-Lite0, Gemma-3-270M GGUF).
- ``paper``: the paper's configuration (Whisper-large-v3, EVA-ViT-G 448/224, LLaMA-2-7B-chat,
  LoRA r=64 alpha=16 on q/v). Weights come only from local paths given by the user; nothing is ever
  downloaded, and building without a path raises an error that names the missing path.

Everything is JSON-safe through ``ModelConfig.to_dict()`` / ``ModelConfig.from_dict()`` so a checkpoint
can record exactly which architecture its trainable weights belong to.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE
from emotion_ros.model.prompt import LABEL_SETS


# OpenAI CLIP normalisation (EVA-CLIP uses the same statistics).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# ImageNet normalisation: what the official temporal-view feature extractor (timm, torchvision) uses.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AudioEncoderConfig:
    """Whisper encoder dimensions + where its weights come from.

    source: "random" (built from these dims), "whisper_ct2" (nano package via
    emotion_ros.backbones.whisper_ct2) or "hf" (a local Hugging Face Whisper folder at ``path``).
    """

    source: str = "random"
    path: str | None = None
    d_model: int = 32
    layers: int = 2
    heads: int = 2
    ffn: int = 64
    n_mels: int = 80
    max_source_positions: int = 1500
    num_tokens: int = 64
    sample_rate: int = AUDIO_SAMPLE_RATE
    max_seconds: float = 30.0  # Whisper's context: longer audio is cut to the last 30 s
    # False: run on the real length (fast). True: classic 30 s padding (what Whisper was trained on;
    # ~15x the compute for a 2 s window). Training caches and inference must use the same setting.
    padded: bool = False
    # With padded=True: False pools only the real positions; True pools all 1500 states of the padded
    # 30 s input, encoded silence included -- what the official feature extractor does (a 3 s clip then
    # fills ~6 of the 64 tokens with speech), so the released checkpoint expects it.
    pool_padding: bool = False


@dataclass
class VisionEncoderConfig:
    """Image backbone shared by the global and the temporal view.

    backbone: "vit" (transformers CLIPVisionModel; random from these dims, or a local HF folder at
    ``path``), "eva" (EVA-ViT-G, emotion_ros.backbones.eva: random from these dims, or source "lavis" =
    the LAVIS ``eva_vit_g.pth`` at ``path``) or "efficientnet" (emotion_ros.backbones.efficientnet, nano).
    ``image_size`` is the ViT's native size; other sizes interpolate its position embeddings.
    The official model treats the two views differently; the fields below say how (None = same as the
    global view): ``global_layers`` blocks for the global view (the temporal view runs all ``layers``),
    the temporal view's normalisation, the global view's resize filter, and ``global_token_group`` k
    (k consecutive global patch tokens concatenated into one LLM token by the modal adapter).
    """

    backbone: str = "vit"
    source: str = "random"
    path: str | None = None
    global_size: int = 48
    temporal_size: int = 32
    num_frames: int = 16
    temporal_grid: int = 2
    # ViT dims (ignored by efficientnet)
    hidden_size: int = 32
    layers: int = 2
    heads: int = 2
    intermediate_size: int = 64
    patch_size: int = 8
    image_size: int = 32
    # efficientnet
    variant: str = "lite0"
    feature_dim: int = 32  # channels of the grid / pooled vector (= hidden_size for a ViT)
    image_mean: tuple = CLIP_MEAN
    image_std: tuple = CLIP_STD
    global_layers: int | None = None
    temporal_mean: tuple | None = None
    temporal_std: tuple | None = None
    global_resize: str = "bilinear"  # "bilinear" | "bicubic" (antialiased either way)
    global_token_group: int = 1


@dataclass
class FusionConfig:
    """Conv-Attention pre-fusion (paper 4.3 + reference implementation facts)."""

    mlp_hidden: int = 512
    width: int = 128
    num_blocks: int = 4
    kernel_size: int = 3
    out_dim: int = 256
    num_tokens: int = 64
    use_attention: bool = True
    use_conv: bool = True
    dropout: float = 0.1  # after every ReLU of the MLPs (official value; only active in training)


@dataclass
class FaceConfig:
    """The face-expression stream (emotion_ros/model/face_encoder.py): a real-face expression expert's
    per-frame probabilities as prompt tokens. source: "fer" (the packaged FER2013 mini-Xception + face
    detector, emotion_ros.backbones.fer), "random" (a deterministic stand-in for tests)."""

    enabled: bool = False
    source: str = "fer"
    detect_every: int = 4  # run the face detector on every k-th temporal frame, reuse its box between


@dataclass
class LLMConfig:
    """Language model + LoRA.

    kind: "tiny" (random LlamaForCausalLM from the dims below and the byte-level tiny tokenizer),
    "gemma3-gguf" (emotion_ros.backbones.gemma_gguf.load_gemma) or "hf" (local folder ``path``).
    The dims below describe the architecture; for "hf"/"gemma3-gguf" they are only used to size a
    weightless skeleton for the model summary (the real config comes from the weights).
    """

    kind: str = "tiny"
    path: str | None = None
    arch: str = "llama"  # "llama" | "gemma3" (skeleton only)
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int | None = None
    intermediate_size: int = 128
    vocab_size: int = 260  # tiny: the byte-level tokenizer size (emotion_ros.model.tokenizer)
    lora_r: int = 4
    lora_alpha: int = 8
    lora_dropout: float = 0.05
    lora_targets: list = field(default_factory=lambda: ["q_proj", "v_proj"])
    max_new_tokens: int = 64
    pad_token: str | None = None  # set on the tokenizer of an "hf" LLM (the official model pads with "$$")


@dataclass
class ModelConfig:
    name: str = "tiny"
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    vision: VisionEncoderConfig = field(default_factory=VisionEncoderConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    labels: list = field(default_factory=lambda: list(LABEL_SETS["MER6"]))
    # Trained fusion/adapter/LoRA checkpoint directory (emotion_ros.model.checkpoint); None = untrained.
    trainable_path: str | None = None
    max_transcript_chars: int = 500
    seed: int = 0
    # Prompt template by name (emotion_ros.model.prompt.TEMPLATES): "default", or the official strings
    # "official-stage1" / "official-stage2" that the released checkpoints were trained with.
    template: str = "default"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        return jsonify(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of to_dict; unknown keys raise so a typo never passes silently."""
        data = dict(data)
        subs = {"audio": AudioEncoderConfig, "vision": VisionEncoderConfig,
                "fusion": FusionConfig, "llm": LLMConfig, "face": FaceConfig}
        kwargs = {}
        for key, value in data.items():
            if key in subs:
                kwargs[key] = _build(subs[key], value)
            else:
                kwargs[key] = value
        return _build(cls, kwargs)

    def token_layout(self) -> dict[str, int]:
        """Number of LLM input tokens per modality stream (text excluded)."""
        v = self.vision
        if v.backbone in ("vit", "eva"):
            n_global = (v.global_size // v.patch_size) ** 2
        else:  # EfficientNet: stride 32
            n_global = (v.global_size // 32) ** 2
        layout = {
            "fusion": self.fusion.num_tokens,
            "image": n_global // v.global_token_group,
            "video": v.num_frames * v.temporal_grid ** 2,
            "audio": self.audio.num_tokens,
        }
        if self.face.enabled:
            layout["face"] = v.num_frames  # one token per temporal frame
        return layout


@dataclass
class InferenceOptions:
    """How the model stages run at inference (not what they compute: every preset gives the same labels up to
    float rounding; tests/test_inference_parity.py checks it). Each speed-up is an option of the stage it
    speeds up, so the naive, reference and optimised pipelines are one code path:

    - frame_cache (vision encoder): backbone outputs of up to this many camera frames are kept across
      overlapping windows (window 2 s / hop 0.5 s: 12 of a window's 16 frames were encoded for the previous
      window) and a frame repeated inside a window is encoded once; 0 = every frame of every window encoded.
    - audio_padded (audio encoder): Whisper on the classic 30 s padded input (15x the work for a 2 s window)
      instead of the window's real length.
    - prefix_kv (LLM): the key/value cache of the constant prompt head is computed once, and the window's
      [head | multimodal tokens] prefix is shared by the label path and the reasoning path of that window.
    - label_scoring (LLM): "tree" = the whole label set in ONE forward with a tree attention mask; "batched" =
      the prefix cache repeated over the labels (one batch of L rows); "per_label" = one full forward of
      prompt + label per label (the textbook way).
    - share_encoding, window_states (engine): reasoning reuses the label path's encoding and prefix of the
      same window (kept for the last ``window_states`` windows).
    - label_priority (engine): a pending label pass makes the reasoning stream wait before its next token.
    """

    frame_cache: int = 256
    audio_padded: bool = False
    prefix_kv: bool = True
    label_scoring: str = "tree"
    share_encoding: bool = True
    window_states: int = 4
    label_priority: bool = True

    PRESETS = ("optimised", "reference", "naive")

    def __post_init__(self):
        if self.label_scoring not in ("tree", "batched", "per_label"):
            raise ValueError(f"label_scoring must be tree, batched or per_label, not {self.label_scoring!r}")
        if self.frame_cache < 0 or self.window_states < 0:
            raise ValueError("frame_cache and window_states must be >= 0")

    @classmethod
    def preset(cls, name: str) -> "InferenceOptions":
        """optimised: every speed-up; reference: none of the caches (what a plain forward of the model does);
        naive: also 30 s padded Whisper and one LLM pass per label (the benchmark's baseline)."""
        if name == "optimised":
            return cls()
        if name == "reference":
            return cls(frame_cache=0, prefix_kv=False, label_scoring="batched", share_encoding=False)
        if name == "naive":
            return cls(frame_cache=0, audio_padded=True, prefix_kv=False, label_scoring="per_label",
                       share_encoding=False, label_priority=False)
        raise ValueError(f"unknown pipeline preset {name!r}; choose one of {cls.PRESETS}")


def jsonify(obj):
    """Dataclass ``asdict`` output made JSON-friendly (tuples -> lists, recursively)."""
    if isinstance(obj, dict):
        return {k: jsonify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonify(v) for v in obj]
    return obj


def _build(cls, values: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    values = dict(values)
    for f in dataclasses.fields(cls):
        if f.name in values and f.name in ("image_mean", "image_std", "temporal_mean", "temporal_std") \
                and values[f.name] is not None:
            values[f.name] = tuple(values[f.name])
    return cls(**values)


PROFILES = ("tiny", "nano", "paper")


def _tiny() -> ModelConfig:
    return ModelConfig(name="tiny")


def _nano() -> ModelConfig:
    return ModelConfig(
        name="nano",
        audio=AudioEncoderConfig(source="whisper_ct2", d_model=512, layers=6, heads=8, ffn=2048, n_mels=80),
        vision=VisionEncoderConfig(
            backbone="efficientnet", source="package", variant="lite0", feature_dim=1280,
            global_size=224, temporal_size=224, hidden_size=1280, layers=0, heads=0, intermediate_size=0,
            patch_size=32, image_size=224,
            # EfficientNet-Lite preprocessing (x-127)/128, recorded for reference: the multiview encoder
            # always uses the backbone object's own image_mean/image_std.
            image_mean=(127.0 / 255.0,) * 3, image_std=(128.0 / 255.0,) * 3,
        ),
        llm=LLMConfig(kind="gemma3-gguf", arch="gemma3", hidden_size=640, layers=18, heads=4, kv_heads=1,
                      head_dim=256, intermediate_size=2048, vocab_size=262144,
                      lora_r=16, lora_alpha=16, lora_dropout=0.05, lora_targets=["q_proj", "v_proj"],
                      max_new_tokens=128),
        # The face stream: a real-face expert (BlazeFace + fer's FER2013 mini-Xception, emotion_ros.backbones.fer)
        # in the prompt; the only part of nano trained on real people.
        face=FaceConfig(enabled=True),
    )


def _paper() -> ModelConfig:
    """The official Emotion-LLaMAv2 (github ooochen-30/Emotion-LLaMA-v2), module for module; the facts are in
    the comments (source files of that repository in brackets). Its checkpoints import with
    ``python -m emotion_ros import-official`` (emotion_ros.model.official)."""
    return ModelConfig(
        name="paper",
        # Whisper-large-v3 encoder: 1280-d, 32 layers, 20 heads, FFN 5120, 128 mel bins; the official
        # features: 30 s padded input, all 1500 states average-pooled to 64 [my_utils/extract_features.py].
        audio=AudioEncoderConfig(source="hf", d_model=1280, layers=32, heads=20, ffn=5120, n_mels=128,
                                 padded=True, pool_padding=True),
        # EVA-ViT-G from the LAVIS eva_vit_g.pth: 1408-d, 16 heads, MLP 6144, patch 14, native 224.
        # Global view [models/emotion_llama_v2.py, eva_vit.py]: 448 px (bicubic resize, CLIP statistics,
        # 16x16 -> 32x32 bicubic position embeddings), 39 blocks, then ln_vision; 1024 patch tokens viewed as
        # 256 tokens of 4 x 1408. Temporal view [extract_features.py]: timm eva_giant_patch14_224 = all 40
        # blocks + its final LayerNorm, 224 px, ImageNet statistics, 2x2 pooled per frame.
        vision=VisionEncoderConfig(backbone="eva", source="lavis", hidden_size=1408, layers=40, heads=16,
                                   intermediate_size=6144, patch_size=14, image_size=224,
                                   global_size=448, temporal_size=224, feature_dim=1408,
                                   global_layers=39, global_resize="bicubic", global_token_group=4,
                                   image_mean=CLIP_MEAN, image_std=CLIP_STD,
                                   temporal_mean=IMAGENET_MEAN, temporal_std=IMAGENET_STD),
        # ConvProAttention(dims=[1280, 1408, 1408], layers="512,128", dropout=0.1, output_dim=256) = defaults
        # LLaMA-2-7B-chat, pad token "$$", stop = EOS id 2 [models/base_model.py, minigpt_base.py]
        llm=LLMConfig(kind="hf", arch="llama", hidden_size=4096, layers=32, heads=32, kv_heads=32,
                      intermediate_size=11008, vocab_size=32000, lora_r=64, lora_alpha=16,
                      lora_dropout=0.05, lora_targets=["q_proj", "v_proj"], max_new_tokens=256, pad_token="$$"),
        template="official-stage2",
    )


def get_profile(name: str, **overrides) -> ModelConfig:
    """Return a fresh ModelConfig of profile ``name`` with overrides applied.

    Overrides: top-level fields by name (``labels=[...]``, ``trainable_path=...``) or sub-config fields
    as ``<section>__<field>`` (``llm__path="/models/llama2"``, ``audio__path=...``, ``vision__path=...``,
    ``fusion__use_conv=False``).
    """
    builders = {"tiny": _tiny, "nano": _nano, "paper": _paper}
    if name not in builders:
        raise ValueError(f"unknown profile {name!r}; choose one of {list(builders)}")
    cfg = builders[name]()
    for key, value in overrides.items():
        if "__" in key:
            section, attr = key.split("__", 1)
            sub = getattr(cfg, section, None)
            if sub is None or not dataclasses.is_dataclass(sub) or not hasattr(sub, attr):
                raise ValueError(f"unknown override {key!r}")
            setattr(sub, attr, value)
        else:
            if not hasattr(cfg, key):
                raise ValueError(f"unknown override {key!r}")
            setattr(cfg, key, value)
    if cfg.vision.backbone in ("vit", "eva"):
        cfg.vision.feature_dim = cfg.vision.hidden_size
    return cfg
