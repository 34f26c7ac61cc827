"""Conv-Attention pre-fusion (paper section 4.3), structured like the official ConvProAttention.

One module for every profile; only the widths differ. The layout and the parameter names follow the
official implementation (github ooochen-30/Emotion-LLaMA-v2, ``conv_pro_module`` in its checkpoints), so an
official checkpoint maps onto it by renaming the prefix only (``emotion_ros.model.official``):

    feats_prep.{0,1,2}        one MLP per stream, in the order audio, global CLS, temporal; each MLP is
                              (Linear, ReLU, Dropout) per layer: d_in -> mlp_hidden -> width, so it ENDS in
                              ReLU + Dropout (Sequential indices 0 and 3 hold the Linears)
    attention_mlp             the same kind of MLP on F_d: 3W -> mlp_hidden -> W
    fc_att                    Linear W -> 3: one raw weight per modality and token (no softmax)
    conv_entry                1x1 Conv1d 3W -> W over the token axis
    conv_module.conv_blocks.i N residual blocks x = SiLU(Conv1d_k(x)) + x ("Switch" = x*sigmoid(x) = SiLU);
                              conv_block.0 is the Conv1d
    fc_final                  Linear W -> out_dim (the fusion stream the modal adapter projects)

With h_m the three MLP outputs [B,T,W]:

    F_d = concat(h_audio, h_global, h_temporal)  [B,T,3W];   F_s = stack(...)  [B,T,W,3]
    a   = fc_att(attention_mlp(F_d))             [B,T,3]
    out = fc_final(F_s @ a + conv_module(conv_entry(F_d)))

In training the global CLS vector is broadcast to T tokens BEFORE its MLP, as the official model does (each
copy gets its own dropout mask); in eval mode the MLP runs once and its output is broadcast (the same values). ``use_attention`` / ``use_conv`` switch a branch off
(its contribution becomes zero) for ablations.
"""
from __future__ import annotations

import torch
from torch import nn

MODALITIES = ("audio", "global", "temporal")  # order of feats_prep and of the attention weights


def _mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    """(Linear, ReLU, Dropout) per layer, as the official MLP helper: indices 0/3 are the Linears."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, d_out), nn.ReLU(), nn.Dropout(dropout))


class ConvBlock(nn.Module):
    """x -> SiLU(Conv1d_k(x)); the residual is added by ConvStack (official ConvBlock: conv_block.0 = conv)."""

    def __init__(self, width: int, kernel_size: int):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x)


class ConvStack(nn.Module):
    """N residual conv blocks on [B, W, T]: x = block(x) + x (official ConvModulePro)."""

    def __init__(self, width: int, num_blocks: int, kernel_size: int):
        super().__init__()
        self.conv_blocks = nn.ModuleList([ConvBlock(width, kernel_size) for _ in range(num_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv_blocks:
            x = block(x) + x
        return x


class ConvAttentionFusion(nn.Module):
    def __init__(self, audio_dim: int, visual_dim: int, mlp_hidden: int = 512, width: int = 128,
                 num_blocks: int = 4, kernel_size: int = 3, out_dim: int = 256, num_tokens: int = 64,
                 use_attention: bool = True, use_conv: bool = True, dropout: float = 0.1):
        super().__init__()
        self.num_tokens = num_tokens
        self.width = width
        self.use_attention = use_attention
        self.use_conv = use_conv
        n_mod = len(MODALITIES)
        self.feats_prep = nn.ModuleList([_mlp(d, mlp_hidden, width, dropout)
                                         for d in (audio_dim, visual_dim, visual_dim)])
        self.attention_mlp = _mlp(n_mod * width, mlp_hidden, width, dropout)
        self.fc_att = nn.Linear(width, n_mod)
        self.conv_entry = nn.Conv1d(n_mod * width, width, kernel_size=1)
        self.conv_module = ConvStack(width, num_blocks, kernel_size)
        self.fc_final = nn.Linear(width, out_dim)
        self.last_attention: torch.Tensor | None = None  # [B, T, 3] of the last forward, for inspection

    def streams(self, audio: torch.Tensor, temporal: torch.Tensor, global_cls: torch.Tensor):
        """(F_d [B,T,3W], F_s [B,T,W,3]) in modality order audio, global, temporal (paper eq. 2)."""
        T = self.num_tokens
        if audio.shape[1] != T or temporal.shape[1] != T:
            raise ValueError(f"fusion expects {T} audio and temporal tokens, got {audio.shape[1]} / "
                             f"{temporal.shape[1]}")
        if self.training:  # official order: broadcast, then the MLP (64 independent dropout masks)
            g = self.feats_prep[1](global_cls.unsqueeze(1).expand(-1, T, -1))
        else:  # same values, 1/64 of the work: the MLP acts per token
            g = self.feats_prep[1](global_cls).unsqueeze(1).expand(-1, T, -1)
        h = [self.feats_prep[0](audio), g, self.feats_prep[2](temporal)]
        return torch.cat(h, dim=-1), torch.stack(h, dim=-1)

    def attention_branch(self, f_d: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
        w = self.fc_att(self.attention_mlp(f_d))  # [B, T, 3] raw weights, no softmax
        self.last_attention = w.detach()
        return torch.matmul(f_s, w.unsqueeze(-1)).squeeze(-1)  # [B, T, W]

    def conv_branch(self, f_d: torch.Tensor) -> torch.Tensor:
        x = self.conv_module(self.conv_entry(f_d.transpose(1, 2)))  # [B, W, T]
        return x.transpose(1, 2)

    def forward(self, audio: torch.Tensor, temporal: torch.Tensor, global_cls: torch.Tensor) -> torch.Tensor:
        """audio [B,64,Da], temporal [B,64,Dv], global_cls [B,Dv] -> fusion tokens [B,64,out_dim]."""
        f_d, f_s = self.streams(audio, temporal, global_cls)
        fused = torch.zeros(f_d.shape[0], f_d.shape[1], self.width, device=f_d.device, dtype=f_d.dtype)
        if self.use_attention:
            fused = fused + self.attention_branch(f_d, f_s)
        if self.use_conv:
            fused = fused + self.conv_branch(f_d)
        return self.fc_final(fused)
