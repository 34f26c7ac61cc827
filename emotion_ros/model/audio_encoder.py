"""Audio encoder: Whisper encoder on the window's real length, pooled to a fixed number of tokens.

transformers' ``WhisperEncoder.forward`` insists on 3000 mel frames (30 s). A 2 s window padded to 30 s
costs 15x the compute, so this wrapper runs the same modules itself on the real length: log-mel of the
real audio (rounded up to an even number of frames so the stride-2 conv stem lands on whole positions),
conv1/conv2 + GELU, the positional embeddings sliced to the real number of positions, the layers, the
final layer norm. ``padded=True`` (InferenceOptions.audio_padded) computes the classic 30 s padded input
(then keeps the real positions): what Whisper was trained on, ~15x the compute for a 2 s window;
tests/test_model_audio.py measures the agreement. ``pool_padding=True`` (with padded; a property of the
model, not a speed option) keeps all 1500 states of the padded input instead, encoded silence included: the
official Emotion-LLaMAv2 features are made that way (my_utils/extract_features.py), so its checkpoint expects
them. ``run_states`` replaces the PyTorch encoder by another runtime (onnxruntime, TensorRT:
emotion_ros.inference.backends); mel and pooling stay here.

The variable-length states are then normalised to ``num_tokens`` (64) as the paper says: "1D adaptive
average pooling and zero-padding" — longer sequences are average-pooled to 64, shorter ones are kept and
zero-padded, with a mask that marks the real tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import WhisperFeatureExtractor

from emotion_ros.ingest.errors import InputError
from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE

HOP_LENGTH = 160
N_FFT = 400
CHUNK_SECONDS = 30


@dataclass
class AudioTokens:
    tokens: torch.Tensor  # [B, num_tokens, D]
    mask: torch.Tensor  # [B, num_tokens] float 1 = real token, 0 = padding / missing audio


class AudioEncoder(nn.Module):
    """Frozen Whisper encoder + pooling to ``num_tokens`` tokens. Input: float32 mono 16 kHz arrays."""

    def __init__(self, whisper_encoder: nn.Module, num_tokens: int = 64, sample_rate: int = AUDIO_SAMPLE_RATE,
                 max_seconds: float = CHUNK_SECONDS, padded: bool = False, pool_padding: bool = False):
        super().__init__()
        if pool_padding and not padded:
            raise ValueError("pool_padding=True needs padded=True (it pools the 30 s padded encoder output)")
        self.padded = padded  # default mode of forward()
        self.pool_padding = pool_padding
        self.encoder = whisper_encoder
        self.run_states = None  # mel [B, n_mels, T] -> states [B, T/2, D]; None = encode_mel (docstring)
        self.num_tokens = num_tokens
        self.sample_rate = sample_rate
        self.n_mels = whisper_encoder.config.num_mel_bins
        self.dim = whisper_encoder.config.d_model
        self.max_positions = whisper_encoder.config.max_source_positions
        self.max_samples = int(min(max_seconds, CHUNK_SECONDS) * sample_rate)
        # Built from explicit parameters: nothing is read from a hub.
        self.features = WhisperFeatureExtractor(
            feature_size=self.n_mels, sampling_rate=sample_rate, hop_length=HOP_LENGTH,
            chunk_length=CHUNK_SECONDS, n_fft=N_FFT,
        )

    # -- mel ---------------------------------------------------------------------------------------
    def log_mel(self, audio: np.ndarray, padded: bool = False) -> torch.Tensor:
        """[n_mels, T] log-mel. Real length: T = ceil(samples / 320) * 2 (even); padded: T = 3000."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise InputError("audio_not_mono", f"expected mono samples [N], got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise InputError("audio_not_finite", "audio contains NaN or Inf samples")
        if audio.size > self.max_samples:
            audio = audio[-self.max_samples:]  # keep the most recent 30 s
        if padded:
            feats = self.features(audio, sampling_rate=self.sample_rate, padding="max_length",
                                  return_tensors="pt")
            return feats["input_features"][0]
        step = 2 * HOP_LENGTH
        n = max(step, -(-audio.size // step) * step)
        if n != audio.size:
            audio = np.concatenate([audio, np.zeros(n - audio.size, np.float32)])
        feats = self.features(audio, sampling_rate=self.sample_rate, padding="longest", return_tensors="pt")
        mel = feats["input_features"][0]
        assert mel.shape[-1] == n // HOP_LENGTH, mel.shape
        return mel

    # -- encoder -----------------------------------------------------------------------------------
    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, T] (T even, T/2 <= max positions) -> states [B, T/2, D] without 30 s padding."""
        enc = self.encoder
        x = F.gelu(enc.conv1(mel))
        x = F.gelu(enc.conv2(x))
        x = x.permute(0, 2, 1)
        n_pos = x.shape[1]
        if n_pos > enc.embed_positions.num_embeddings:
            raise ValueError(f"audio too long: {n_pos} positions > {enc.embed_positions.num_embeddings}")
        x = x + enc.embed_positions.weight[:n_pos].unsqueeze(0)
        x = F.dropout(x, p=enc.dropout, training=enc.training)
        for layer in enc.layers:
            x = layer(x, None)
        return enc.layer_norm(x)

    def _encode(self, mel: torch.Tensor) -> torch.Tensor:
        w = self.encoder.conv1.weight
        mel = mel.to(w.device, w.dtype)
        return self.run_states(mel) if self.run_states is not None else self.encode_mel(mel)

    def states(self, audio: np.ndarray, padded: bool = False) -> torch.Tensor:
        """Encoder states of one clip's real positions: [n_real, D] (padded with pool_padding: all 1500)."""
        mel = self.log_mel(audio, padded=False)
        n_real = mel.shape[-1] // 2
        if padded:
            out = self._encode(self.log_mel(audio, padded=True).unsqueeze(0))[0]
            return out if self.pool_padding else out[:n_real]
        return self._encode(mel.unsqueeze(0))[0]

    # -- pooling -----------------------------------------------------------------------------------
    def pool(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[n, D] -> ([num_tokens, D], [num_tokens]): adaptive average pool if n > num_tokens, else zero-pad."""
        n = states.shape[0]
        k = self.num_tokens
        mask = torch.zeros(k, device=states.device, dtype=states.dtype)
        if n >= k:
            pooled = F.adaptive_avg_pool1d(states.t().unsqueeze(0), k)[0].t()
            mask[:] = 1
            return pooled, mask
        pooled = torch.zeros(k, states.shape[1], device=states.device, dtype=states.dtype)
        pooled[:n] = states
        mask[:n] = 1
        return pooled, mask

    def forward(self, audios: list, padded: bool | None = None) -> AudioTokens:
        """audios: list of float32 mono arrays or None (missing -> zero tokens, zero mask)."""
        padded = self.padded if padded is None else padded
        device = self.encoder.conv1.weight.device
        dtype = self.encoder.conv1.weight.dtype
        B = len(audios)
        tokens = torch.zeros(B, self.num_tokens, self.dim, device=device, dtype=dtype)
        mask = torch.zeros(B, self.num_tokens, device=device, dtype=dtype)
        # Group clips of equal mel length so they run as one batch (exact: no masking needed).
        groups: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for i, audio in enumerate(audios):
            if audio is None or np.asarray(audio).size == 0:
                continue
            if padded:
                st = self.states(audio, padded=True)
                tokens[i], mask[i] = self.pool(st)
                continue
            mel = self.log_mel(audio)
            groups.setdefault(mel.shape[-1], []).append((i, mel))
        for items in groups.values():
            st = self._encode(torch.stack([m for _, m in items]))
            for (i, _), s in zip(items, st):
                tokens[i], mask[i] = self.pool(s)
        return AudioTokens(tokens=tokens, mask=mask)
