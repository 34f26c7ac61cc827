"""(c) Shapes and token counts of every stage against the paper: 64 audio, h*w global patches + CLS,
64 temporal, 64 fusion tokens; the prompt holds them in the order fusion, image, video, audio."""
import numpy as np
import pytest
import torch

from emotion_ros.model.config import ModelConfig, get_profile
from emotion_ros.model.emotion_llama import build_model, window_from_arrays


@pytest.fixture(scope="module")
def model():
    return build_model(get_profile("tiny"))


def _windows():
    rng = np.random.default_rng(0)
    w1 = window_from_arrays(rng.integers(0, 256, (16, 50, 70, 3), dtype=np.uint8),
                            (0.1 * rng.standard_normal(40000)).astype(np.float32), "hello there")
    w2 = window_from_arrays(rng.integers(0, 256, (16, 90, 40, 3), dtype=np.uint8),
                            (0.1 * rng.standard_normal(8000)).astype(np.float32), None)
    return [w1, w2]


def test_encoder_shapes(model):
    cfg = model.cfg
    enc = model.encode(_windows())
    v = cfg.vision
    h = w = v.global_size // v.patch_size
    Da, C = cfg.audio.d_model, v.hidden_size
    assert enc.audio_tokens.shape == (2, 64, Da)
    assert enc.audio_mask.shape == (2, 64)
    assert enc.global_patches.shape == (2, h * w, C)  # all patch tokens, CLS excluded
    assert enc.global_cls.shape == (2, C)
    assert enc.temporal_tokens.shape == (2, 16 * 2 * 2, C)
    assert model.vision_encoder.num_global_tokens == h * w
    # 2.5 s -> 125 Whisper states -> pooled to 64 (all real); 0.5 s -> 25 states kept + zero padding
    assert enc.audio_mask[0].sum() == 64
    assert enc.audio_mask[1].sum() == 25
    assert torch.all(enc.audio_tokens[1, 25:] == 0)


def test_global_patches_are_the_backbone_grid_without_cls(model):
    w = _windows()[0]
    enc = model.encode([w])
    vis = model.vision_encoder
    x = vis.preprocess(w.global_frame[None], vis.global_size)
    with torch.no_grad():
        out = vis.backbone.model(pixel_values=x, interpolate_pos_encoding=True)
    torch.testing.assert_close(enc.global_patches[0], out.last_hidden_state[0, 1:])
    torch.testing.assert_close(enc.global_cls[0], out.pooler_output[0])


def test_temporal_tokens_are_2x2_pools_of_each_frame(model):
    w = _windows()[0]
    enc = model.encode([w])
    vis = model.vision_encoder
    x = vis.preprocess(w.frames[5:6], vis.temporal_size)
    with torch.no_grad():
        grid, _ = vis.backbone(x)  # [1, C, 4, 4]
    top_left = grid[0, :, :2, :2].mean(dim=(1, 2))
    torch.testing.assert_close(enc.temporal_tokens[0, 5 * 4], top_left)


def test_fusion_and_adapter_shapes(model):
    enc = model.encode(_windows())
    fused = model.fusion(enc.audio_tokens, enc.temporal_tokens, enc.global_cls)
    assert fused.shape == (2, 64, 256)
    assert model.fusion.last_attention.shape == (2, 64, 3)
    streams = model.streams(enc)
    H = model.llm.hidden_size
    layout = model.cfg.token_layout()
    for name, (e, m) in streams.items():
        assert e.shape == (2, layout[name], H), name
        assert m.shape == (2, layout[name]), name
    assert layout == {"fusion": 64, "image": 36, "video": 64, "audio": 64}


def test_prompt_layout(model):
    enc = model.encode(_windows()[:1])
    emb, mask = model.llm.flat(model.prompts(enc, "emotion", model.cfg.labels)[0])
    llm = model.llm
    head = [llm.bos_id] + llm.text_ids("[INST] <Vid>")
    n_mod = sum(model.cfg.token_layout().values())
    # text head embeddings, then 228 modality embeddings, then the text tail
    torch.testing.assert_close(emb[:len(head)], llm.embed_ids(head))
    streams = model.streams(enc)
    start = len(head)
    for name in ("fusion", "image", "video", "audio"):
        e, _ = streams[name]
        torch.testing.assert_close(emb[start:start + e.shape[1]], e[0])
        start += e.shape[1]
    tail = llm.text_ids("</Vid> The person in the video says: hello there. [emotion] "
                        + "Please determine which emotion label in the video represents: "
                        + ", ".join(model.cfg.labels) + ". [/INST]")
    assert emb.shape[0] == len(head) + n_mod + len(tail)
    torch.testing.assert_close(emb[-len(tail):], llm.embed_ids(tail))
    assert mask.shape == (emb.shape[0],)


def test_config_roundtrip_and_profiles():
    for name in ("tiny", "nano", "paper"):
        cfg = get_profile(name)
        d = cfg.to_dict()
        import json
        assert ModelConfig.from_dict(json.loads(json.dumps(d))) == cfg
    paper = get_profile("paper")
    assert paper.audio.d_model == 1280 and paper.audio.layers == 32
    assert paper.vision.hidden_size == 1408 and paper.vision.global_size == 448 and paper.vision.temporal_size == 224
    assert (paper.llm.lora_r, paper.llm.lora_alpha, paper.llm.lora_targets) == (64, 16, ["q_proj", "v_proj"])
    assert paper.token_layout()["image"] == (448 // 14) ** 2 // 4  # official: 4 patch tokens per LLM token
    nano = get_profile("nano")
    assert (nano.audio.d_model, nano.audio.layers, nano.audio.heads, nano.audio.ffn) == (512, 6, 8, 2048)
    assert nano.vision.backbone == "efficientnet" and nano.token_layout()["image"] == 49
    assert get_profile("tiny", llm__lora_r=8, labels=["a", "b"]).llm.lora_r == 8
    with pytest.raises(ValueError):
        get_profile("tiny", llm__nonsense=1)
    with pytest.raises(ValueError):
        ModelConfig.from_dict({**get_profile("tiny").to_dict(), "typo": 1})


def test_paper_without_paths_names_the_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        build_model(get_profile("paper"))
    msg = str(e.value)
    assert "audio.path" in msg and "vision.path" in msg and "llm.path" in msg
    with pytest.raises(FileNotFoundError, match="llm.path = .*does not exist"):
        build_model(get_profile("paper", audio__path=str(tmp_path), vision__path=str(tmp_path),
                                llm__path=str(tmp_path / "nope")))


def test_summary_text():
    from emotion_ros.app.summary import model_summary

    s = model_summary("tiny")
    assert "Conv-Attention fusion" in s and "LoRA r=4" in s
    assert "fusion tokens        64" in s and "audio tokens         64" in s
    assert "image (global) tokens 36" in s and "video (temporal)     64" in s
    # the counts equal the real tiny model's
    m = build_model(get_profile("tiny"))
    fusion_n = sum(p.numel() for p in m.fusion.parameters())
    assert f"{fusion_n:,}" in s
    trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert f"{trainable:,}" in s


def test_face_stream_tokens_adapter_and_prompt():
    """Profiles with the face stream (nano: the real-face FER2013 expert) get one token per temporal frame,
    their own adapter Linear, and a prompt segment after the audio stream; no face = masked."""
    from emotion_ros.model.face_encoder import FEATURE_DIM

    cfg = get_profile("tiny", face__enabled=True, face__source="random")
    model = build_model(cfg)
    ws = _windows()[:2]
    ws[1].frames = np.zeros_like(ws[1].frames)  # all-black frames: the stand-in expert finds no face
    enc = model.encode(ws)
    assert enc.face_tokens.shape == (2, cfg.vision.num_frames, FEATURE_DIM)
    assert float(enc.face_mask[0].sum()) == cfg.vision.num_frames and float(enc.face_mask[1].sum()) == 0
    streams = model.streams(enc)
    e, m = streams["face"]
    assert e.shape == (2, cfg.vision.num_frames, model.llm.hidden_size) and torch.all(e[1] == 0)
    assert model.template.stream_order[-1] == "face" and cfg.token_layout()["face"] == cfg.vision.num_frames
    emb, _ = model.llm.flat(model.prompts(enc, "emotion", model.cfg.labels)[0])
    assert emb.shape[0] == len(model.prompts(enc, "emotion", model.cfg.labels)[0])
    dist = model.expert_labels(enc, model.cfg.labels)
    assert set(dist) == set(model.cfg.labels) and abs(sum(dist.values()) - 1) < 1e-5
    assert model.expert_labels(enc, model.cfg.labels, i=1) is None
    assert "adapter.face.weight" in {f"adapter.{k}" for k in model.adapter.state_dict()}
