"""(d) Conv-Attention pre-fusion (paper 4.3): both branches are non-trivial and each changes the output."""
import copy

import pytest
import torch

from emotion_ros.model.fusion import ConvAttentionFusion


@pytest.fixture(scope="module")
def fusion_and_inputs():
    torch.manual_seed(0)
    f = ConvAttentionFusion(audio_dim=32, visual_dim=48).eval()
    a = torch.randn(2, 64, 32)
    v = torch.randn(2, 64, 48)
    g = torch.randn(2, 48)
    return f, (a, v, g)


def _ablated(f, **switches):
    g = copy.deepcopy(f)
    for k, val in switches.items():
        setattr(g, k, val)
    return g


def test_output_shape_and_attention_weights(fusion_and_inputs):
    f, x = fusion_and_inputs
    with torch.no_grad():
        out = f(*x)
    assert out.shape == (2, 64, 256)
    assert f.last_attention.shape == (2, 64, 3)  # one weight per token and modality
    # no softmax: weights are not a distribution over modalities
    assert not torch.allclose(f.last_attention.sum(-1), torch.ones(2, 64))


def test_each_branch_is_nontrivial_and_changes_output(fusion_and_inputs):
    f, x = fusion_and_inputs
    with torch.no_grad():
        f_d, f_s = f.streams(*x)
        attn = f.attention_branch(f_d, f_s)
        conv = f.conv_branch(f_d)
        full = f(*x)
        no_attn = _ablated(f, use_attention=False)(*x)
        no_conv = _ablated(f, use_conv=False)(*x)
    assert attn.shape == conv.shape == (2, 64, 128)
    assert attn.abs().mean() > 1e-3 and conv.abs().mean() > 1e-3
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    assert rel(no_attn, full) > 1e-2, "ablating the attention branch must change the output"
    assert rel(no_conv, full) > 1e-2, "ablating the conv branch must change the output"
    # the branches are summed before the output projection
    torch.testing.assert_close(full, f.fc_final(attn + conv))
    torch.testing.assert_close(no_attn, f.fc_final(conv))
    torch.testing.assert_close(no_conv, f.fc_final(attn))


def test_attention_branch_formula(fusion_and_inputs):
    f, (a, v, g) = fusion_and_inputs
    with torch.no_grad():
        ma, mg, mv = f.feats_prep[0](a), f.feats_prep[1](g), f.feats_prep[2](v)
        f_d, f_s = f.streams(a, v, g)
        assert f_d.shape == (2, 64, 384) and f_s.shape == (2, 64, 128, 3)
        torch.testing.assert_close(f_s[..., 1], mg[:, None].expand(-1, 64, -1))  # CLS broadcast to 64
        w = f.fc_att(f.attention_mlp(f_d))
        expected = w[..., 0:1] * ma + w[..., 1:2] * mg[:, None] + w[..., 2:3] * mv
        torch.testing.assert_close(f.attention_branch(f_d, f_s), expected)


def test_conv_branch_is_residual(fusion_and_inputs):
    f, x = fusion_and_inputs
    g = copy.deepcopy(f)
    with torch.no_grad():
        f_d, _ = g.streams(*x)
        for blk in g.conv_module.conv_blocks:  # with zero conv weights and bias, SiLU(0)=0: identities
            blk.conv_block[0].weight.zero_()
            blk.conv_block[0].bias.zero_()
        torch.testing.assert_close(g.conv_branch(f_d), g.conv_entry(f_d.transpose(1, 2)).transpose(1, 2))
    blocks = f.conv_module.conv_blocks
    assert len(blocks) == 4 and blocks[0].conv_block[0].kernel_size == (3,)
    assert f.conv_entry.kernel_size == (1,) and f.conv_entry.in_channels == 384 and f.conv_entry.out_channels == 128


def test_global_context_reaches_every_token(fusion_and_inputs):
    f, (a, v, g) = fusion_and_inputs
    with torch.no_grad():
        base = f(a, v, g)
        moved = f(a, v, g + 1.0)
    assert bool(((moved - base).abs().amax(-1) > 0).all())


def test_both_branches_get_gradients(fusion_and_inputs):
    f, x = fusion_and_inputs
    g = copy.deepcopy(f).train()
    g(*x).pow(2).mean().backward()
    assert g.attention_mlp[0].weight.grad.abs().sum() > 0 and g.fc_att.weight.grad.abs().sum() > 0
    assert g.conv_module.conv_blocks[-1].conv_block[0].weight.grad.abs().sum() > 0


def test_model_level_ablation_changes_prediction():
    import numpy as np

    from emotion_ros.model.config import get_profile
    from emotion_ros.model.emotion_llama import build_model, window_from_arrays

    rng = np.random.default_rng(0)
    w = window_from_arrays(rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
                           (0.1 * rng.standard_normal(16000)).astype(np.float32), "hi")
    full = build_model(get_profile("tiny"))
    enc = full.encode([w])
    outs = {}
    for name, kw in {"full": {}, "no_conv": {"fusion__use_conv": False},
                     "no_attn": {"fusion__use_attention": False}}.items():
        m = build_model(get_profile("tiny", **kw))
        outs[name] = m.streams(enc)["fusion"][0]
    assert not torch.allclose(outs["full"], outs["no_conv"])
    assert not torch.allclose(outs["full"], outs["no_attn"])
