"""Inference: the engine around the model's stages, its worker threads, runtime backends and exports.

``build_engine(engine_config)`` is what the perception node, the offline evaluation and the benchmarks call:
it builds the profile's model (or takes one), installs the requested backend for the encoders and the
fusion/adapter (falling back with a warning, tensorrt -> onnxruntime -> torch, when it cannot run here; the
one that really runs is logged and reported by ``describe()``), and returns an
``emotion_ros.inference.engine.InferenceEngine`` with the pipeline preset and LLM precision of the config.
"""
from __future__ import annotations

import logging

__all__ = ["build_engine", "BACKENDS"]

BACKENDS = ("torch", "onnxruntime", "tensorrt")
log = logging.getLogger("emotion_ros.inference")


def build_engine(engine_config, model=None, options=None, onnx_dir: str | None = None, transcriber=None,
                 **backend_options):
    """An InferenceEngine for ``engine_config`` (emotion_ros.inference.engine.EngineConfig).

    model: an already built EmotionLLaMA (else built from the profile + checkpoint: engine.load_model).
    options: emotion_ros.model.config.InferenceOptions instead of the ``pipeline`` preset. onnx_dir: where the
    ONNX export lives / is written (default: a per-model folder in ~/.cache/emotion_ros/onnx).
    backend_options: providers / threads (onnxruntime), fp16 / int8 / calibration (tensorrt).
    """
    from emotion_ros.inference.backends import make_backend
    from emotion_ros.inference.engine import InferenceEngine, load_model

    model_id = calibration = None
    if model is None:
        model, loaded_asr, model_id, calibration = load_model(engine_config)
        transcriber = transcriber or loaded_asr
    backend = make_backend(engine_config.backend, model, onnx_dir=onnx_dir, **backend_options)
    engine = InferenceEngine(model, engine_config, transcriber=transcriber, model_id=model_id, backend=backend,
                             options=options, calibration=calibration)
    log.info("engine: %s pipeline, backend %s (requested %s), LLM %s", engine_config.pipeline, backend.name,
             engine_config.backend, engine.precision.name)
    return engine
