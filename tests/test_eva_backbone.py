"""EVA-ViT-G backbone (emotion_ros.backbones.eva) from a LAVIS-format eva_vit_g.pth.

The reference below is an independent plain-torch EVA (the LAVIS/timm block equations: pre-norm attention
with q/v biases and a zero k bias, exact GELU MLP, LayerNorm eps 1e-6), plus the official model's two
recipes: global = first N-1 blocks at 448 px with the 16x16 -> 32x32 bicubic position interpolation and
ln_vision (LayerNorm eps 1e-5, weight 1, bias 0); temporal = all blocks + a final LayerNorm (eps 1e-6).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emotion_ros.backbones.eva import EvaViTG, eva_weights_file, load_eva_vit_g
from emotion_ros.backbones.pth import WeightFileError
from tests.helpers.official import SMALL_EVA, eva_lavis_state

HEADS = SMALL_EVA["hidden"] // 88
SHAPE = dict(hidden_size=SMALL_EVA["hidden"], layers=SMALL_EVA["layers"], heads=HEADS,
             intermediate_size=SMALL_EVA["intermediate"], patch_size=14, image_size=224, global_size=448,
             global_layers=SMALL_EVA["layers"] - 1)


def _reference(sd, x, n_blocks, final_eps, final_w=None, final_b=None):
    C, P = sd["cls_token"].shape[-1], sd["patch_embed.proj.weight"].shape[-1]
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=P)
    h, w = t.shape[-2:]
    t = t.flatten(2).transpose(1, 2)
    pos = sd["pos_embed"]
    g = int((pos.shape[1] - 1) ** 0.5)
    if (h, w) != (g, g):  # official interpolate_pos_embed
        grid = pos[:, 1:].reshape(1, g, g, C).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)
    t = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), t], 1) + pos
    for i in range(n_blocks):
        b = f"blocks.{i}."
        y = F.layer_norm(t, (C,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], 1e-6)
        bias = torch.cat([sd[b + "attn.q_bias"], torch.zeros_like(sd[b + "attn.q_bias"]), sd[b + "attn.v_bias"]])
        q, k, v = F.linear(y, sd[b + "attn.qkv.weight"], bias).reshape(*y.shape[:2], 3, HEADS, -1).permute(2, 0, 3, 1, 4)
        a = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        t = t + F.linear((a @ v).transpose(1, 2).flatten(2), sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        y = F.layer_norm(t, (C,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], 1e-6)
        y = F.linear(F.gelu(F.linear(y, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
                     sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        t = t + y
    return F.layer_norm(t, (C,), final_w, final_b, final_eps)


@pytest.fixture()
def eva_file(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTION_ROS_CACHE", str(tmp_path / "cache"))
    sd = eva_lavis_state(**SMALL_EVA)
    path = tmp_path / "eva_vit_g.pth"
    torch.save(sd, path)
    return path, sd


def test_both_views_match_the_official_recipes(eva_file):
    path, sd = eva_file
    model = load_eva_vit_g(path, **SHAPE)
    g = torch.Generator().manual_seed(0)
    x448, x224 = torch.randn(2, 3, 448, 448, generator=g), torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad():
        grid, cls = model(x448)
        ref = _reference(sd, x448, SHAPE["global_layers"], 1e-5)  # ln_vision
        d_global = max((grid.flatten(2).transpose(1, 2) - ref[:, 1:]).abs().max().item(),
                       (cls - ref[:, 0]).abs().max().item())
        tgrid, tcls = model(x224)
        tref = _reference(sd, x224, SHAPE["layers"], 1e-6)  # timm's final norm, default init
        d_temporal = (tgrid.flatten(2).transpose(1, 2) - tref[:, 1:]).abs().max().item()
    print(f"EVA vs reference: global (448, {SHAPE['global_layers']} blocks + ln_vision) max abs diff {d_global:.2e}; "
          f"temporal (224, {SHAPE['layers']} blocks + norm) {d_temporal:.2e}")
    assert grid.shape == (2, 176, 32, 32) and cls.shape == (2, 176) and tgrid.shape == (2, 176, 16, 16)
    assert d_global < 1e-4 and d_temporal < 1e-4
    # the two recipes really differ (one block and the final norm)
    assert (grid.flatten(2).transpose(1, 2) - _reference(sd, x448, SHAPE["layers"], 1e-6)[:, 1:]).abs().max() > 1e-2


def test_file_norm_is_used_by_the_temporal_view_and_head_is_ignored(eva_file, tmp_path):
    _, sd = eva_file
    sd = dict(sd)
    sd["norm.weight"], sd["norm.bias"] = 1 + 0.1 * torch.randn(176), 0.1 * torch.randn(176)
    sd["head.weight"], sd["head.bias"] = torch.zeros(10, 176), torch.zeros(10)  # timm drops it (num_classes=0)
    path = tmp_path / "with_norm.pth"
    torch.save({"model": sd}, path)  # the {"model": ...} wrapping is accepted as by the official extractor
    model = load_eva_vit_g(path, **SHAPE)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        got = model(x)[0].flatten(2).transpose(1, 2)
    ref = _reference(sd, x, SHAPE["layers"], 1e-6, sd["norm.weight"], sd["norm.bias"])[:, 1:]
    assert (got - ref).abs().max() < 1e-4


def test_cache_is_reused_and_rebuilt_when_the_file_changes(eva_file):
    path, sd = eva_file
    first = eva_weights_file(path, **SHAPE)
    stamp = first.stat().st_mtime_ns
    assert eva_weights_file(path, **SHAPE) == first and first.stat().st_mtime_ns == stamp  # no reconversion
    sd = dict(sd)
    sd["cls_token"] = sd["cls_token"] + 1
    torch.save(sd, path)
    import os
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    model = load_eva_vit_g(path, **SHAPE)
    torch.testing.assert_close(model.vit.embeddings.class_embedding, sd["cls_token"])


@pytest.mark.parametrize("mutate,pattern", [
    (lambda s: s.pop("blocks.1.attn.v_bias"), r"missing 1: blocks\.1\.attn\.v_bias \[176\]"),
    (lambda s: s.__setitem__("blocks.0.attn.rel_pos_bias", torch.zeros(3)), r"unexpected 1: blocks\.0\.attn\.rel_pos_bias \[3\]"),
    (lambda s: s.__setitem__("blocks.2.mlp.fc1.weight", torch.zeros(8, 176)),
     r"wrong shape 1: blocks\.2\.mlp\.fc1\.weight: file \[8, 176\], model \[352, 176\]"),
    (lambda s: s.__setitem__("blocks.3.norm1.weight", torch.ones(176)), r"unexpected 1: blocks\.3\.norm1\.weight"),
])
def test_mismatched_file_is_one_error(eva_file, tmp_path, mutate, pattern):
    _, sd = eva_file
    sd = dict(sd)
    mutate(sd)
    path = tmp_path / "bad_eva.pth"
    torch.save(sd, path)
    with pytest.raises(WeightFileError, match=r"bad_eva\.pth: does not fit EVA-ViT-G with 3 blocks.*" + pattern):
        load_eva_vit_g(path, **SHAPE)


def test_full_size_skeleton_and_views_in_the_vision_encoder():
    from emotion_ros.model.config import IMAGENET_MEAN, IMAGENET_STD
    from emotion_ros.model.vision_encoder import MultiviewVisionEncoder

    with torch.device("meta"):
        full = EvaViTG()
    n_file = sum(p.numel() for p in full.parameters()) - 2 * 2 * 1408 - 40 * 1408  # minus 2 norms, zero k biases
    assert n_file == 1_011_143_296  # = 40 LAVIS blocks + embeddings: the 1.88 GiB fp16 file
    small = EvaViTG(**SHAPE)
    enc = MultiviewVisionEncoder(small, 448, 224, temporal_mean=IMAGENET_MEAN, temporal_std=IMAGENET_STD,
                                 global_resize="bicubic")
    img = np.random.default_rng(0).integers(0, 256, (1, 100, 100, 3), dtype=np.uint8)
    t = enc.preprocess(img, 224)
    x = torch.as_tensor(img).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    ref = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(t, ref)
    assert enc.global_hw == (32, 32)
    with pytest.raises(ValueError, match="sizes must differ"):
        MultiviewVisionEncoder(small, 224, 224)
