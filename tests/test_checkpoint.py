"""(e) Checkpoints of fusion + adapter + LoRA: bit-exact round trip, clear errors for bad files,
atomic writes."""
import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from emotion_ros.model.checkpoint import (CONFIG_FILE, LORA_CONFIG, LORA_FILE, MODAL_FILE, CheckpointError,
                                    load_trainable, save_trainable)
from emotion_ros.model.config import get_profile
from emotion_ros.model.emotion_llama import build_model, window_from_arrays


def _perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    m = build_model(get_profile("tiny"))
    _perturb(m, 1)
    d = save_trainable(m, tmp_path_factory.mktemp("ck") / "run1", metadata={"step": 3})
    return m, d


def _window():
    rng = np.random.default_rng(0)
    return window_from_arrays(rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
                              (0.1 * rng.standard_normal(16000)).astype(np.float32), "fine, thanks")


def test_files_and_config(trained):
    m, d = trained
    names = set(os.listdir(d))
    assert {MODAL_FILE, LORA_FILE, LORA_CONFIG, CONFIG_FILE} <= names
    meta = json.loads((d / CONFIG_FILE).read_text())
    assert meta["model_config"] == m.cfg.to_dict() and meta["metadata"] == {"step": 3}
    adapter_cfg = json.loads((d / LORA_CONFIG).read_text())
    assert adapter_cfg["r"] == 4 and set(adapter_cfg["target_modules"]) == {"q_proj", "v_proj"}
    modal = load_file(str(d / MODAL_FILE))
    assert any(k.startswith("fusion.") for k in modal) and any(k.startswith("adapter.") for k in modal)
    assert not [n for n in os.listdir(d.parent) if n.startswith(".")]  # no temporary or moved-aside folder


def test_roundtrip_bit_exact(trained):
    m, d = trained
    fresh = build_model(get_profile("tiny"))
    _perturb(fresh, 2)  # different values everywhere before loading
    load_trainable(fresh, d)
    a = {n: p for n, p in m.named_parameters() if p.requires_grad}
    b = {n: p for n, p in fresh.named_parameters() if p.requires_grad}
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k
    w = _window()
    assert m.predict([w])[0].probs == fresh.predict([w])[0].probs
    assert "".join(m.stream_reasoning(w, max_new_tokens=6)) == "".join(fresh.stream_reasoning(w, max_new_tokens=6))


def test_build_model_with_trainable_path(trained):
    m, d = trained
    m2 = build_model(get_profile("tiny", trainable_path=str(d)))
    for (n, p), (_, q) in zip(m.named_parameters(), m2.named_parameters()):
        assert torch.equal(p, q), n


def test_overwrite_is_atomic_swap(trained, tmp_path):
    m, _ = trained
    d = save_trainable(m, tmp_path / "ck")
    fresh = build_model(get_profile("tiny"))
    _perturb(fresh, 5)
    save_trainable(fresh, d)  # overwrite an existing checkpoint
    assert sorted(os.listdir(tmp_path)) == ["ck"]
    other = build_model(get_profile("tiny"))
    load_trainable(other, d)
    assert torch.equal(other.fusion.fc_final.weight, fresh.fusion.fc_final.weight)


def test_interrupted_save_leaves_no_checkpoint(tmp_path, monkeypatch):
    m = build_model(get_profile("tiny"))
    import emotion_ros.io as io

    def boom(*a, **k):  # killed after every file is written, before the folder is renamed into place
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(io, "_fsync_tree", boom)
    with pytest.raises(KeyboardInterrupt):
        save_trainable(m, tmp_path / "ck")
    assert os.listdir(tmp_path) == []  # neither the target nor a temp dir


def _copy(d, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(d, dst)
    return dst


@pytest.mark.parametrize("damage,file,words", [
    ("delete", MODAL_FILE, "missing"),
    ("delete", LORA_FILE, "missing"),
    ("delete", CONFIG_FILE, "missing"),
    ("truncate", MODAL_FILE, "truncated"),
    ("truncate", LORA_FILE, "truncated"),
    ("flip", MODAL_FILE, "corrupt"),
    ("flip", LORA_CONFIG, "corrupt"),
    ("garbage", CONFIG_FILE, "corrupt JSON"),
])
def test_damaged_files_give_clear_errors(trained, tmp_path, damage, file, words):
    m, d = trained
    c = _copy(d, tmp_path)
    path = c / file
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.write_text("{not json")
    target = build_model(get_profile("tiny"))
    before = target.fusion.fc_final.weight.clone()
    with pytest.raises(CheckpointError) as e:
        load_trainable(target, c)
    assert file in str(e.value) and words in str(e.value)
    assert torch.equal(target.fusion.fc_final.weight, before)  # nothing was half-loaded


def test_reasoning_adapter_round_trip_and_damage(trained, tmp_path):
    """A model with the reasoning LoRA: saved under reason/ (checksummed like the rest), loaded into a model
    without one (it is added), bit-exact; a damaged reasoning file is named and nothing is half-loaded."""
    from emotion_ros.model.checkpoint import REASON_LORA_FILE, lora_state

    m, d = trained
    withr = build_model(get_profile("tiny"))
    load_trainable(withr, d)
    withr.llm.add_reasoning_adapter()
    assert all(torch.equal(v, lora_state(withr)[k]) for k, v in lora_state(withr, "reason").items())
    with torch.no_grad():  # the reasoning LoRA moves away from its copy of the label LoRA
        for n, p in withr.named_parameters():
            if ".reason." in n:
                p.add_(0.05)
    out = save_trainable(withr, tmp_path / "r")
    meta = json.loads((out / CONFIG_FILE).read_text())
    assert {REASON_LORA_FILE, "reason/adapter_config.json"} <= set(meta["files"])
    assert meta["tensors"][REASON_LORA_FILE] and not (out / "reason" / "README.md").exists()
    fresh = build_model(get_profile("tiny"))
    load_trainable(fresh, out)
    assert fresh.llm.has_reasoning_adapter
    for adapter in ("default", "reason"):
        a, b = lora_state(withr, adapter), lora_state(fresh, adapter)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    w = _window()
    assert fresh.predict([w])[0].probs == m.predict([w])[0].probs  # the label path: the label LoRA
    assert "".join(fresh.stream_reasoning(w, max_new_tokens=6)) == "".join(withr.stream_reasoning(w, max_new_tokens=6))
    # the node's calibration file is attached beside it without losing the folder
    from emotion_ros.model.checkpoint import attach_file

    attach_file(out, "note.txt", b"x")
    load_trainable(build_model(get_profile("tiny")), out)
    c = _copy(out, tmp_path)
    data = (c / REASON_LORA_FILE).read_bytes()
    (c / REASON_LORA_FILE).write_bytes(data[: len(data) // 2])
    target = build_model(get_profile("tiny"))
    with pytest.raises(CheckpointError, match="reason/adapter_model.safetensors.*truncated"):
        load_trainable(target, c)
    assert not target.llm.has_reasoning_adapter


def _rewrite_modal(c, mutate):
    """Replace modal.safetensors and fix config.json's checksum so only the content check can fail."""
    import hashlib

    t = load_file(str(c / MODAL_FILE))
    mutate(t)
    save_file(t, str(c / MODAL_FILE))
    meta = json.loads((c / CONFIG_FILE).read_text())
    data = (c / MODAL_FILE).read_bytes()
    meta["files"][MODAL_FILE] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (c / CONFIG_FILE).write_text(json.dumps(meta))


def test_wrong_shape_and_names(trained, tmp_path):
    m, d = trained
    c = _copy(d, tmp_path)
    _rewrite_modal(c, lambda t: t.__setitem__("fusion.fc_final.weight", torch.zeros(3, 3)))
    with pytest.raises(CheckpointError, match=r"modal\.safetensors: wrong shape for fusion\.fc_final\.weight"):
        load_trainable(build_model(get_profile("tiny")), c)
    c2 = tmp_path / "c2"
    import shutil
    shutil.copytree(d, c2)
    _rewrite_modal(c2, lambda t: t.pop("adapter.audio.bias"))
    with pytest.raises(CheckpointError, match="missing.*adapter.audio.bias"):
        load_trainable(build_model(get_profile("tiny")), c2)


def test_old_fusion_layout_is_named(trained, tmp_path):
    """Adapters trained before the fusion followed the official ConvProAttention get one sentence, not a
    list of 30 unmatched tensor names."""
    _, d = trained
    c = _copy(d, tmp_path)

    def to_old_names(t):
        for k in [k for k in t if k.startswith("fusion.")]:
            t[k.replace("fusion.fc_final.", "fusion.out.").replace("fusion.feats_prep.0.", "fusion.mlp_audio.")] = t.pop(k)

    _rewrite_modal(c, to_old_names)
    with pytest.raises(CheckpointError, match=r"modal\.safetensors: was written with the old Conv-Attention "
                                              r"layout .* retrain"):
        load_trainable(build_model(get_profile("tiny")), c)


def test_mismatched_model(trained):
    _, d = trained
    other = build_model(get_profile("tiny", llm__lora_r=8))
    with pytest.raises(CheckpointError, match="r=4 but the model uses 8"):
        load_trainable(other, d)
    no_lora = build_model(get_profile("tiny", llm__lora_r=0))
    with pytest.raises(CheckpointError, match="has no LoRA"):
        load_trainable(no_lora, d)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_trainable(other, d.parent / "nope")
