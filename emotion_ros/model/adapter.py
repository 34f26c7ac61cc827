"""Modal adapter (paper 4.4): one trainable linear projection per stream into the LLM embedding width.

``image_group`` k > 1 concatenates k consecutive global patch tokens before the image Linear: the official
model views EVA-ViT-G's 1024 patch tokens of the 448 px frame (32x32 grid, row-major) as 256 tokens of
4 x 1408 = 5632 features (token j = patches 4j..4j+3, feature index t*1408 + c), so the image stream is 256
tokens instead of 1024. The official parameter names map as: llama_proj -> image, llama_proj_video -> video,
llama_proj_audio -> audio, llama_proj_fusion -> fusion.
"""
from __future__ import annotations

import torch
from torch import nn

STREAMS = ("fusion", "image", "video", "audio")  # prompt order of the modality segments


class ModalAdapter(nn.Module):
    def __init__(self, fusion_dim: int, image_dim: int, video_dim: int, audio_dim: int, llm_dim: int,
                 image_group: int = 1, face_dim: int = 0):
        super().__init__()
        if image_group < 1:
            raise ValueError(f"image_group must be >= 1, got {image_group}")
        self.image_group = image_group
        self.fusion = nn.Linear(fusion_dim, llm_dim)
        self.image = nn.Linear(image_dim * image_group, llm_dim)
        self.video = nn.Linear(video_dim, llm_dim)
        self.audio = nn.Linear(audio_dim, llm_dim)
        if face_dim:  # the face-expression stream (emotion_ros/model/face_encoder.py), where the profile has it
            self.face = nn.Linear(face_dim, llm_dim)

    def group_image(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, N, C] patch tokens -> [B, N/k, k*C] (k = image_group)."""
        k = self.image_group
        if k == 1:
            return patches
        B, N, C = patches.shape
        if N % k:
            raise ValueError(f"{N} global patch tokens cannot be grouped by {k}")
        return patches.reshape(B, N // k, k * C)

    def forward(self, **streams: torch.Tensor) -> dict[str, torch.Tensor]:
        """Project each given stream (keyword = stream name) -> dict of [B, N, llm_dim]."""
        if "image" in streams:
            streams = {**streams, "image": self.group_image(streams["image"])}
        return {name: getattr(self, name)(x) for name, x in streams.items()}
