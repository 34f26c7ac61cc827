"""Analytic cost of one window of the ``paper`` profile, and which accelerator reaches real time.

FLOPs and bytes per stage come from the profile's configuration (emotion_ros.model.config.get_profile("paper"),
the official Emotion-LLaMAv2 layout): Whisper-large-v3 encoder on the 30 s padded input (1500 positions: the
official audio features pool all of them, so the released checkpoint needs it; the real-length option, 2 s ->
100 positions, is shown as the cheaper alternative that changes the features), EVA-ViT-G on the 448 px global
frame (39 blocks) and on 16 temporal frames at 224 px (40 blocks; with and without the per-frame cache: at hop
0.5 s only 4 of the 16 temporal instants are new), Conv-Attention fusion + modal adapter, LLaMA-2-7B prefill
of the whole multimodal prompt (64 fusion + 256 image + 64 video + 64 audio = 448 tokens + text) + the
one-pass label scoring, and the decode cost per reasoning token.

Counting rules: a matmul of [m,k]x[k,n] is 2mkn FLOPs; attention adds 4 n^2 d per layer (QK^T and AV);
norms, softmax, activations and the conv stem's elementwise work are ignored (< 1 %). Bytes: every weight is
read once per forward pass (batch 1, weights do not stay in cache between passes) plus the KV cache read
per decoded token; activations are ignored (they stay in on-chip/L2 memory at these sizes or are small).
The physical limit of a stage on a device is max(FLOPs / peak FLOP/s, bytes / memory bandwidth); a
window is real-time capable when the sum over stages is below the hop. Real kernels reach 40-70 % of
the compute peak, so the ``@50%`` column is the realistic one.

    .venv/bin/python benchmarks/cost_model.py [--hop 0.5] [--window 2] [--weight-bytes 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Public peak figures: dense (no structured sparsity) FP16/BF16 tensor-core FLOP/s with FP32 accumulate,
# and DRAM bandwidth. Sources: NVIDIA data sheets / architecture white papers.
DEVICES = [
    # name, peak FLOP/s, bandwidth B/s, memory bytes
    ("Jetson AGX Orin 64GB (GPU)", 42.5e12, 204.8e9, 64e9),   # 170 sparse INT8 TOPS GPU -> ~42.5 dense FP16
    ("RTX 4090", 165.2e12, 1008e9, 24e9),
    ("A100 SXM 80GB", 312e12, 2039e9, 80e9),
    ("H100 SXM 80GB", 989e12, 3350e9, 80e9),
]


@dataclass
class Cost:
    name: str
    flops: float
    bytes: float
    note: str = ""


def transformer(n_tokens: int, d: int, layers: int, ffn: int, kv_dim: int | None = None, gated: bool = False):
    """(FLOPs, parameter count) of a pre-norm transformer stack on n tokens (no embedding / head)."""
    kv_dim = kv_dim or d
    attn_params = 2 * d * d + 2 * d * kv_dim  # q, o + k, v
    mlp_params = (3 if gated else 2) * d * ffn
    params = layers * (attn_params + mlp_params)
    flops = 2 * params * n_tokens + layers * 4 * n_tokens * n_tokens * d
    return flops, params


def window_costs(window_s: float = 2.0, hop_s: float = 0.5, weight_bytes: float = 2.0, transcript_tokens: int = 20,
                 text_tokens: int | None = None) -> tuple[list[Cost], dict]:
    from emotion_ros.model.config import get_profile
    from emotion_ros.model.prompt import instruction

    cfg = get_profile("paper")
    a, v, f, l = cfg.audio, cfg.vision, cfg.fusion, cfg.llm
    wb = weight_bytes
    costs = []

    # -- Whisper-large-v3 encoder: conv stem (k=3) + transformer on T/2 positions
    mel_frames = int(window_s * 100)
    pos = mel_frames // 2
    stem = 2 * (mel_frames * a.n_mels * a.d_model * 3 + pos * a.d_model * a.d_model * 3)
    fl, params = transformer(pos, a.d_model, a.layers, a.ffn)
    stem_params = a.n_mels * a.d_model * 3 + a.d_model * a.d_model * 3
    real = Cost("audio: Whisper-large-v3 encoder, real length", fl + stem, (params + stem_params) * wb,
                f"{pos} positions")
    fl30, _ = transformer(1500, a.d_model, a.layers, a.ffn)
    padded = Cost("audio: Whisper-large-v3 encoder, 30 s padded input", fl30 + 15 * stem,
                  (params + stem_params) * wb, "1500 positions")
    if a.padded:  # the profile's (official) setting is the label path; the other one is the alternative
        costs.append(padded)
        padded = Cost(real.name + " (option: not the official features)", real.flops, real.bytes, real.note)
    else:
        costs.append(real)

    # -- EVA-ViT-G (patch embed + transformer; +1 CLS)
    def vit(size, layers):
        n = (size // v.patch_size) ** 2 + 1
        fl, p = transformer(n, v.hidden_size, layers, v.intermediate_size)
        patch = 2 * (n - 1) * 3 * v.patch_size ** 2 * v.hidden_size
        return fl + patch, p + 3 * v.patch_size ** 2 * v.hidden_size, n

    g_layers = v.global_layers or v.layers
    g_fl, g_params, g_n = vit(v.global_size, g_layers)
    t_fl, vit_params, t_n = vit(v.temporal_size, v.layers)
    new_frames = max(1, round(v.num_frames * hop_s / window_s))
    costs.append(Cost(f"vision: EVA-ViT-G global {v.global_size}, {g_layers} blocks", g_fl, g_params * wb,
                      f"{g_n} tokens"))
    costs.append(Cost(f"vision: EVA-ViT-G temporal 224, {new_frames} new frames (frame cache)", new_frames * t_fl,
                      vit_params * wb, f"{new_frames}x{t_n} tokens"))
    temporal_all = Cost("vision: temporal, all 16 frames (naive)", v.num_frames * t_fl, vit_params * wb)

    # -- fusion + adapter
    T = f.num_tokens
    k_img = v.global_token_group  # patch tokens concatenated per image token (official: 4 -> 256 tokens)
    n_img = (v.global_size // v.patch_size) ** 2 // k_img
    mlp = lambda n, i, h, o: 2 * n * (i * h + h * o)  # noqa: E731
    W = f.width
    fus = (mlp(T, a.d_model, f.mlp_hidden, W) + mlp(T, v.hidden_size, f.mlp_hidden, W)
           + mlp(1, v.hidden_size, f.mlp_hidden, W)  # global CLS: one MLP pass, broadcast (eval)
           + mlp(T, 3 * W, f.mlp_hidden, W) + 2 * T * W * 3  # attention_mlp + fc_att
           + 2 * T * 3 * W * W + f.num_blocks * 2 * T * W * W * f.kernel_size  # conv_entry + blocks
           + 2 * T * W * f.out_dim)
    H = l.hidden_size
    adapter = 2 * H * (T * f.out_dim + n_img * k_img * v.hidden_size + T * v.hidden_size + T * a.d_model)
    fus_params = ((a.d_model + 2 * v.hidden_size) * f.mlp_hidden + 3 * f.mlp_hidden * W  # feats_prep
                  + 3 * W * f.mlp_hidden + f.mlp_hidden * W + W * 3  # attention_mlp + fc_att
                  + 3 * W * W + f.num_blocks * W * W * f.kernel_size + W * f.out_dim  # conv + fc_final
                  + H * (f.out_dim + k_img * v.hidden_size + v.hidden_size + a.d_model))  # adapter
    costs.append(Cost("fusion + modal adapter", fus + adapter, fus_params * wb))

    # -- LLaMA-2-7B: prompt = text + 64 fusion + n_img (256) image + 64 video + 64 audio tokens
    if text_tokens is None:
        instr = instruction("emotion", cfg.labels)
        # LLaMA's SentencePiece: ~1.3 tokens per English word; template markers ~ 20 tokens
        text_tokens = int(1.3 * len(instr.split())) + 20 + transcript_tokens
    n_stream = T + n_img + v.num_frames * v.temporal_grid ** 2 + a.num_tokens
    P = text_tokens + n_stream
    kv_dim = l.kv_heads * (l.head_dim or H // l.heads)
    fl, llm_params = transformer(P, H, l.layers, l.intermediate_size, kv_dim, gated=True)
    head = 2 * H * l.vocab_size
    labels = len(cfg.labels)
    costs.append(Cost("LLM prefill (LLaMA-2-7B)", fl + head, llm_params * wb + H * l.vocab_size * wb,
                      f"{P} prompt tokens ({n_stream} multimodal)"))
    lab_fl, _ = transformer(labels, H, l.layers, l.intermediate_size, kv_dim, gated=True)
    kv_bytes = 2 * l.layers * P * kv_dim * 2  # fp16 KV cache
    costs.append(Cost("LLM label set, one pass", lab_fl + labels * 4 * l.layers * P * H + labels * head,
                      llm_params * wb + H * l.vocab_size * wb + kv_bytes, f"{labels} labels x 1 token + EOS"))
    dec_fl, _ = transformer(1, H, l.layers, l.intermediate_size, kv_dim, gated=True)
    decode = Cost("LLM decode, per reasoning token", dec_fl + 4 * l.layers * P * H + head,
                  llm_params * wb + H * l.vocab_size * wb + kv_bytes)
    extras = {"padded_audio": padded, "temporal_all": temporal_all, "decode": decode, "prompt_tokens": P,
              "weights_bytes": (params + vit_params + fus_params + llm_params + 2 * H * l.vocab_size) * wb}
    return costs, extras


def device_time(c: Cost, peak: float, bw: float) -> float:
    return max(c.flops / peak, c.bytes / bw)


def table(costs, extras, hop_s: float, efficiency: float = 0.5) -> str:
    lines = ["Per window (paper profile):", "",
             "| stage | GFLOP | GB read | note |", "|---|---|---|---|"]
    for c in costs + [extras["padded_audio"], extras["temporal_all"], extras["decode"]]:
        lines.append(f"| {c.name} | {c.flops / 1e9:,.0f} | {c.bytes / 1e9:.2f} | {c.note} |")
    tf = sum(c.flops for c in costs)
    tb = sum(c.bytes for c in costs)
    lines += [f"| **label path total (official features, frame cache)** | **{tf / 1e9:,.0f}** | **{tb / 1e9:.1f}** | "
              f"prompt {extras['prompt_tokens']} tokens |", "",
              f"Real time at hop {hop_s} s needs {tf / hop_s / 1e12:.1f} TFLOP/s and {tb / hop_s / 1e9:.0f} GB/s "
              f"sustained; weights {extras['weights_bytes'] / 1e9:.1f} GB.", "",
              f"| device | peak TFLOP/s | GB/s | label path: physical limit ms | bound by | @{int(efficiency * 100)}% "
              f"of peak ms | real time at hop {hop_s} s? | naive (all 16 frames) limit ms "
              f"| reasoning tok/s limit | weights fit |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    naive = [extras["temporal_all"] if "temporal" in c.name else c for c in costs]  # audio: the profile's
    for name, peak, bw, mem in DEVICES:
        t = sum(device_time(c, peak, bw) for c in costs)
        compute = sum(c.flops / peak for c in costs)
        bound = "compute" if compute >= sum(c.bytes / bw for c in costs) else "bandwidth"
        real = sum(max(c.flops / (peak * efficiency), c.bytes / bw) for c in costs)
        tn = sum(device_time(c, peak, bw) for c in naive)
        tok = 1 / device_time(extras["decode"], peak, bw)
        verdict = "yes" if real < hop_s else ("only at the limit" if t < hop_s else "no")
        lines.append(f"| {name} | {peak / 1e12:.0f} | {bw / 1e9:.0f} | {t * 1e3:.0f} | {bound} | {real * 1e3:.0f} | "
                     f"{verdict} | {tn * 1e3:.0f} | {tok:.0f} | {'yes' if extras['weights_bytes'] < 0.9 * mem else 'no'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=float, default=2.0, help="window length (s)")
    ap.add_argument("--hop", type=float, default=0.5, help="hop (s): the time budget per window")
    ap.add_argument("--weight-bytes", type=float, default=2.0, help="2 = fp16/bf16, 1 = int8, 0.5 = int4")
    ap.add_argument("--efficiency", type=float, default=0.5, help="fraction of the compute peak real kernels reach")
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    costs, extras = window_costs(args.window, args.hop, args.weight_bytes)
    print(table(costs, extras, args.hop, args.efficiency))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "stages": [c.__dict__ for c in costs],
            "extras": {k: (v.__dict__ if isinstance(v, Cost) else v) for k, v in extras.items()},
            "devices": [{"name": n, "peak_flops": p, "bandwidth": b, "memory": m} for n, p, b, m in DEVICES],
            "args": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
