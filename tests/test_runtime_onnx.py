"""ONNX export + onnxruntime backend vs PyTorch (tiny profile), and the backend choice with fallback."""
import warnings

import numpy as np
import pytest
import torch

from emotion_ros.model.config import get_profile
from emotion_ros.model.emotion_llama import build_model
from emotion_ros.inference.backends import (BackendUnavailable, OnnxRuntimeBackend, TensorRTBackend,
                                          make_backend)
from emotion_ros.inference.export import export_onnx, onnx_up_to_date

# fp32 graphs of the same ops: differences are float rounding only. Stated tolerance (max abs, on
# activations of magnitude ~1): 1e-4.
ATOL = 1e-4


@pytest.fixture(scope="module")
def model():
    m = build_model(get_profile("tiny"))
    # give the fusion/adapter non-trivial weights (as after training) so the comparison is not of near-zeros
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in list(m.fusion.parameters()) + list(m.adapter.parameters()):
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m


@pytest.fixture(scope="module")
def onnx_dir(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    export_onnx(model, d)
    return d


@pytest.fixture(scope="module")
def backends(model, onnx_dir):
    return model, OnnxRuntimeBackend(model, onnx_dir, export_if_missing=False)  # the model's stages vs onnxruntime


def _close(a, b, atol=ATOL):
    a, b = a.detach().float().cpu().numpy(), b.detach().float().cpu().numpy()
    assert a.shape == b.shape
    err = float(np.abs(a - b).max())
    assert err <= atol, err
    return err


def test_export_is_recorded_and_detects_stale_weights(model, onnx_dir):
    assert onnx_up_to_date(model, onnx_dir)
    saved = model.fusion.fc_final.bias.detach().clone()
    with torch.no_grad():
        model.fusion.fc_final.bias.add_(1.0)
    try:
        assert not onnx_up_to_date(model, onnx_dir)
    finally:
        with torch.no_grad():
            model.fusion.fc_final.bias.copy_(saved)
    assert onnx_up_to_date(model, onnx_dir)


@pytest.mark.parametrize("seconds", [2.0, 0.7])  # the deployment window and another length (dynamic axis)
def test_audio_encoder_parity(model, backends, seconds):
    _, ob = backends
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
    mel = model.audio_encoder.log_mel(audio).unsqueeze(0).repeat(3, 1, 1)  # dynamic batch 3
    ref, out = model.audio_encoder.encode_mel(mel), ob.audio_states(mel)
    assert ref.abs().max() > 0.1
    _close(ref, out)


def test_vision_backbone_parity(model, backends):
    _, ob = backends
    v = model.vision_encoder
    rng = np.random.default_rng(1)
    for size, n in ((v.global_size, 1), (v.temporal_size, 5)):
        imgs = rng.integers(0, 256, (n, 50, 70, 3), dtype=np.uint8)
        x = v.preprocess(imgs, size)
        (g1, p1), (g2, p2) = v.encode_pixels(x), ob.vision_backbone(x)
        _close(g1, g2)
        _close(p1, p2)


def test_fusion_adapter_parity(model, backends):
    _, ob = backends
    a, v = model.audio_encoder, model.vision_encoder
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(4, a.num_tokens, a.dim, generator=g), torch.randn(4, v.num_temporal_tokens, v.dim, generator=g),
            torch.randn(4, v.dim, generator=g), torch.randn(4, v.num_global_tokens, v.dim, generator=g))
    ref, out = model.project(*args), ob.fusion_adapter(*args)
    assert set(ref) == set(out) == {"fusion", "image", "video", "audio"}
    for k in ref:
        _close(ref[k], out[k])


def test_onnxruntime_reports_the_provider_that_really_runs(backends):
    _, ob = backends
    d = ob.describe()
    assert d["backend"] == "onnxruntime"
    assert all(p == "CPUExecutionProvider" for p in d["active_providers"].values())  # no GPU here


def test_tensorrt_missing_is_a_clear_error_and_falls_back(model, onnx_dir):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailable, match="TensorRT"):
        TensorRTBackend(model, onnx_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        be = make_backend("tensorrt", model, onnx_dir=onnx_dir)
    assert be.name == "onnxruntime"
    assert any("tensorrt" in str(w.message).lower() for w in caught)
    with pytest.raises(ValueError):
        make_backend("openvino", model)
