"""Issue 15: the `paper` profile is the official Emotion-LLaMAv2 and imports its checkpoint.

Official-format checkpoints come from tests/helpers/official.py (official key names and nesting; full size on
the meta device, or scaled down with values). The official equations are re-implemented here in plain torch
from the published structure, independently of emotion_ros.model.fusion.
"""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emotion_ros.backbones.pth import WeightFileError
from emotion_ros.model.config import ModelConfig, get_profile
from emotion_ros.model.official import import_official, map_official_state
from tests.helpers.official import FULL, SMALL, make_official_files, official_state

FULL_PARAMS = 71_536_387  # 33,554,432 LoRA + 35,143,680 projections + 2,838,275 Conv-Attention


def test_full_size_meta_checkpoint_maps_every_key():
    for peft_default in (False, True):  # peft 0.2 spelling and peft >= 0.3 (".default.")
        state = official_state(**FULL, device="meta", peft_default=peft_default)
        modal, lora, report = map_official_state(state, get_profile("paper"))
        assert len(state) == 166 and report["tensors"] == 166
        assert len(modal) == 38 and len(lora) == 128
        assert report["parameters"] == FULL_PARAMS == sum(t.numel() for t in state.values())
    assert modal["adapter.image.weight"].shape == (4096, 5632)
    assert lora["base_model.model.model.layers.31.self_attn.v_proj.lora_B.weight"].shape == (4096, 64)


def test_summary_shows_the_official_layout():
    from emotion_ros.app.summary import model_summary

    cfg = get_profile("paper")
    assert cfg.token_layout() == {"fusion": 64, "image": 256, "video": 64, "audio": 64}
    text = model_summary("paper")
    assert "modality tokens total 448" in text
    total_line = next(ln for ln in text.splitlines() if ln.startswith("total"))
    assert total_line.split()[-1] == f"{FULL_PARAMS:,}"


def _official_fusion(sd, aud, cls, vid):
    """ConvProAttention's equations, eval mode (dropout off), from the official tensors."""
    def mlp(x, p):
        x = F.relu(F.linear(x, sd[f"{p}.0.weight"], sd[f"{p}.0.bias"]))
        return F.relu(F.linear(x, sd[f"{p}.3.weight"], sd[f"{p}.3.bias"]))

    h = [mlp(x, f"feats_prep.{i}") for i, x in enumerate((aud, cls[:, None].expand(-1, aud.shape[1], -1), vid))]
    flat, stack = torch.cat(h, 2), torch.stack(h, 3)
    att = F.linear(mlp(flat, "attention_mlp"), sd["fc_att.weight"], sd["fc_att.bias"])
    fused = torch.matmul(stack, att.unsqueeze(3)).squeeze(3)
    x = F.conv1d(flat.transpose(1, 2), sd["conv_entry.weight"], sd["conv_entry.bias"])
    i = 0
    while f"conv_module.conv_blocks.{i}.conv_block.0.weight" in sd:
        y = F.conv1d(x, sd[f"conv_module.conv_blocks.{i}.conv_block.0.weight"],
                     sd[f"conv_module.conv_blocks.{i}.conv_block.0.bias"], padding=1)
        x = y * torch.sigmoid(y) + x
        i += 1
    return F.linear(fused + x.transpose(1, 2), sd["fc_final.weight"], sd["fc_final.bias"])


@pytest.mark.parametrize("dims", [SMALL, dict(SMALL, mlp_hidden=512, width=128, out_dim=256,
                                              audio_dim=1280, visual_dim=1408)], ids=["small", "official-widths"])
def test_imported_fusion_equals_the_official_equations(dims):
    from emotion_ros.model.fusion import ConvAttentionFusion

    state = official_state(**dims)
    cfg = get_profile("paper", audio__d_model=dims["audio_dim"], vision__hidden_size=dims["visual_dim"],
                      fusion__mlp_hidden=dims["mlp_hidden"], fusion__width=dims["width"],
                      fusion__out_dim=dims["out_dim"], llm__hidden_size=dims["llm_hidden"],
                      llm__layers=dims["llm_layers"], llm__lora_r=dims["lora_r"], llm__heads=4, llm__kv_heads=4,
                      llm__intermediate_size=2 * dims["llm_hidden"], llm__vocab_size=260)
    modal, _, _ = map_official_state(state, cfg)
    fusion = ConvAttentionFusion(dims["audio_dim"], dims["visual_dim"], dims["mlp_hidden"], dims["width"],
                                 out_dim=dims["out_dim"]).eval()
    fusion.load_state_dict({k[len("fusion."):]: v for k, v in modal.items() if k.startswith("fusion.")}, strict=True)
    g = torch.Generator().manual_seed(5)
    aud, vid = torch.randn(3, 64, dims["audio_dim"], generator=g), torch.randn(3, 64, dims["visual_dim"], generator=g)
    cls = torch.randn(3, dims["visual_dim"], generator=g)
    sd = {k[len("conv_pro_module."):]: v for k, v in state.items() if k.startswith("conv_pro_module.")}
    with torch.no_grad():
        ours, ref = fusion(aud, vid, cls), _official_fusion(sd, aud, cls, vid)
    diff, scale = (ours - ref).abs().max().item(), ref.abs().max().item()
    print(f"fusion vs official equations ({dims['width']}-wide): max abs diff {diff:.3e}, |ref| max {scale:.3f}")
    assert diff <= 2e-6 * scale and scale > 1e-2  # fp32 rounding only (the random weights make |ref| large)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    import os

    old = os.environ.get("EMOTION_ROS_CACHE")
    os.environ["EMOTION_ROS_CACHE"] = str(root / "cache")
    files = make_official_files(root)
    report = import_official(files.checkpoint, files.llama, files.eva, files.whisper, root / "out", merge=True,
                             log=lambda *_: None)
    yield files, report, root / "out"
    if old is None:
        os.environ.pop("EMOTION_ROS_CACHE", None)
    else:
        os.environ["EMOTION_ROS_CACHE"] = old


def test_import_writes_the_checkpoint_folder(imported):
    files, report, out = imported
    assert report["tensors"] == len(files.state) == 46
    meta = json.loads((out / "config.json").read_text())
    cfg = ModelConfig.from_dict(meta["model_config"])
    assert cfg.name == "paper" and cfg.template == "official-stage2" and cfg.llm.pad_token == "$$"
    assert (cfg.vision.layers, cfg.vision.global_layers, cfg.vision.global_token_group) == (3, 2, 4)
    assert (cfg.llm.lora_r, cfg.llm.lora_alpha) == (4, 16) and cfg.audio.pool_padding
    assert meta["metadata"]["imported_from"]["epoch"] == 9
    lcfg = json.loads((out / "adapter_config.json").read_text())
    assert (lcfg["r"], lcfg["lora_alpha"], sorted(lcfg["target_modules"])) == (4, 16, ["q_proj", "v_proj"])


def test_imported_model_runs_end_to_end(imported):
    from emotion_ros.model.emotion_llama import build_model, window_from_arrays

    files, _, out = imported
    from emotion_ros.model.checkpoint import recorded_config

    cfg = recorded_config(out)  # the imported folder records the paper profile + the local model paths
    assert cfg.trainable_path == str(out) and cfg.llm.path == str(files.llama.resolve())
    model = build_model(cfg)
    st = files.state
    torch.testing.assert_close(model.adapter.image.weight, st["llama_proj.weight"])
    torch.testing.assert_close(model.fusion.fc_att.bias, st["conv_pro_module.fc_att.bias"])
    lora_a = model.llm.model.base_model.model.model.layers[1].self_attn.q_proj.lora_A["default"].weight
    torch.testing.assert_close(lora_a, st["llama_model.base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"])
    rng = np.random.default_rng(0)
    w = window_from_arrays(rng.integers(0, 256, (16, 90, 120, 3), dtype=np.uint8),
                           (0.1 * rng.standard_normal(32000)).astype(np.float32), "I passed my exam")
    enc = model.encode([w])
    assert enc.global_patches.shape == (1, 1024, 176) and enc.temporal_tokens.shape == (1, 64, 176)
    assert enc.audio_tokens.shape == (1, 64, 32) and bool(enc.audio_mask.all())  # all 1500 padded states pooled
    streams = model.streams(enc)
    assert {k: v[0].shape[1] for k, v in streams.items()} == {"fusion": 64, "image": 256, "video": 64, "audio": 64}
    # image stream = the official view(B, 256, 4*C) @ llama_proj
    ref = F.linear(enc.global_patches.reshape(1, 256, 4 * 176), st["llama_proj.weight"], st["llama_proj.bias"])
    torch.testing.assert_close(streams["image"][0], ref)
    pred = model.predict([w])[0]
    assert pred.label in cfg.labels and abs(sum(pred.probs.values()) - 1) < 1e-5


def test_merge_folds_lora_into_the_base_weights(imported):
    from transformers import AutoModelForCausalLM

    files, report, out = imported
    merged = AutoModelForCausalLM.from_pretrained(report["merged_llm"], local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(str(files.llama), local_files_only=True)
    p = "llama_model.base_model.model.model.layers.0.self_attn."
    for proj in ("q_proj", "v_proj"):
        A, B = files.state[p + proj + ".lora_A.weight"], files.state[p + proj + ".lora_B.weight"]
        want = getattr(base.model.layers[0].self_attn, proj).weight + (16 / 4) * B @ A
        torch.testing.assert_close(getattr(merged.model.layers[0].self_attn, proj).weight, want)
    torch.testing.assert_close(merged.model.layers[0].self_attn.k_proj.weight, base.model.layers[0].self_attn.k_proj.weight)


# -- bad inputs: one clear error naming the file and the key; nothing written ------------------------------
def _save_variant(files, tmp_path, mutate, name="bad.pth"):
    state = dict(files.state)
    mutate(state)
    path = tmp_path / name
    torch.save({"model": state, "epoch": 1}, path)
    return path


@pytest.mark.parametrize("case,mutate,pattern", [
    ("missing", lambda s: s.pop("conv_pro_module.fc_att.weight"), r"missing 1: conv_pro_module\.fc_att\.weight \[3, 16\]"),
    ("extra", lambda s: s.__setitem__("llama_model.base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight",
                                      torch.zeros(4, 64)),
     r"unexpected 1: llama_model\.base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight \[4, 64\]"),
    ("shape", lambda s: s.__setitem__("llama_proj.weight", torch.zeros(64, 176)),
     r"wrong shape 1: llama_proj\.weight: checkpoint \[64, 176\], model \[64, 704\]"),
    ("both-spellings", lambda s: s.__setitem__(
        "llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", torch.zeros(4, 64)),
     r"both peft spellings of 1: .*q_proj\.lora_A"),
])
def test_mismatched_checkpoint_is_one_error_and_writes_nothing(imported, tmp_path, case, mutate, pattern):
    files, _, _ = imported
    bad = _save_variant(files, tmp_path, mutate)
    with pytest.raises(WeightFileError, match=pattern) as err:
        import_official(bad, files.llama, files.eva, files.whisper, tmp_path / "out", log=lambda *_: None)
    assert str(bad) in str(err.value) and "nothing written" in str(err.value)
    assert not (tmp_path / "out").exists()


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_with_code_and_truncated_file_are_refused(imported, tmp_path, capsys):
    files, _, _ = imported
    evil = tmp_path / "evil.pth"
    torch.save({"model": files.state, "config": _Evil()}, evil)
    with pytest.raises(WeightFileError, match=r"evil\.pth: refused: the file needs code to unpickle.*it references print\)"):
        import_official(evil, files.llama, files.eva, files.whisper, tmp_path / "out", log=lambda *_: None)
    assert "this must never run" not in capsys.readouterr().out
    data = files.checkpoint.read_bytes()
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightFileError, match=r"trunc\.pth: truncated or corrupt PyTorch file"):
        import_official(trunc, files.llama, files.eva, files.whisper, tmp_path / "out", log=lambda *_: None)
    not_official = tmp_path / "plain.pth"
    torch.save(files.state, not_official)  # a bare state dict, no {"model": ...}
    with pytest.raises(WeightFileError, match=r"plain\.pth: not an official Emotion-LLaMAv2 checkpoint"):
        import_official(not_official, files.llama, files.eva, files.whisper, tmp_path / "out", log=lambda *_: None)
    with pytest.raises(WeightFileError, match=r"nope\.pth: file not found"):
        import_official(tmp_path / "nope.pth", files.llama, files.eva, files.whisper, tmp_path / "out",
                        log=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_cli_reports_errors_with_exit_status_2(imported, tmp_path, capsys):
    from emotion_ros.app.cli import main

    files, _, _ = imported
    bad = _save_variant(files, tmp_path, lambda s: s.pop("llama_proj_audio.bias"))
    rc = main(["import-official", "--checkpoint", str(bad), "--llama", str(files.llama), "--eva", str(files.eva),
               "--whisper", str(files.whisper), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "llama_proj_audio.bias [64]" in err and err.count("\n") == 1


def test_official_prompt_strings():
    from emotion_ros.model.prompt import TEMPLATES, prompt_segments

    def text(name, transcript="hi there"):
        segs = prompt_segments(transcript, "emotion", "Which emotion?", TEMPLATES[name])
        return "".join(v if k == "text" else "{" + v + "}" for k, v in segs)

    assert text("official-stage1") == ("[INST] <Vid>{fusion}{image}{video}{audio}</Vid> The person in video says: "
                                       "hi there.  [emotion] Which emotion?  [/INST]")
    assert text("official-stage2") == ("[INST] <Vid>{fusion}{image}{video}{audio}</Vid> The person in video says: "
                                       "hi there  [emotion] Which emotion?  [/INST]")


def test_audio_pool_padding_pools_all_1500_states(imported):
    from transformers import WhisperFeatureExtractor, WhisperModel

    from emotion_ros.model.audio_encoder import AudioEncoder

    files, _, _ = imported
    enc = WhisperModel.from_pretrained(str(files.whisper), local_files_only=True).get_encoder().eval()
    audio = (0.1 * np.random.default_rng(1).standard_normal(48000)).astype(np.float32)  # 3 s
    ours = AudioEncoder(enc, padded=True, pool_padding=True)([audio]).tokens[0]
    fe = WhisperFeatureExtractor(feature_size=128)  # the official extractor: 30 s padding, then all states
    with torch.no_grad():
        states = enc(input_features=fe(audio, sampling_rate=16000, return_tensors="pt").input_features).last_hidden_state
    ref = F.adaptive_avg_pool1d(states.transpose(1, 2), 64).transpose(1, 2)[0]
    assert states.shape[1] == 1500
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    real_only = AudioEncoder(enc, padded=True)([audio]).tokens[0]
    assert not torch.allclose(real_only, ref, atol=1e-3)  # the other mode really differs
    with pytest.raises(ValueError, match="pool_padding=True needs padded=True"):
        AudioEncoder(enc, pool_padding=True)
