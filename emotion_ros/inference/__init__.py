"""Deployment runtime: backends (torch / onnxruntime / tensorrt), exports, caches and the fast engine.

``build_engine(engine_config, backend=..., optimised=True)`` is what the perception node calls: it returns
an object with the ``emotion_ros.inference.engine.InferenceEngine`` API (``process(window)``,
``stream_reasoning(window, should_stop)``), logs which backend really runs and falls back with a warning
(tensorrt -> onnxruntime -> torch) when the requested one cannot run here.
"""
from __future__ import annotations

import logging

__all__ = ["build_engine", "BACKENDS"]

BACKENDS = ("torch", "onnxruntime", "tensorrt")
log = logging.getLogger("emotion_ros.inference")


def build_engine(engine_config, backend: str = "torch", optimised: bool = True, model=None, options=None,
                 onnx_dir: str | None = None, transcriber=None, **backend_options):
    """An engine with the InferenceEngine API for ``engine_config`` (emotion_ros.inference.engine.EngineConfig).

    backend: "torch" | "onnxruntime" | "tensorrt" (encoders + fusion/adapter; the LLM runs in PyTorch).
    optimised=False with backend="torch" returns the plain reference InferenceEngine.
    engine_config.llm_precision sets the LLM's precision (runtime.precision; in place) unless ``options``
    says otherwise. model: an already built EmotionLLaMA (else it is built from the profile + checkpoint, like
    InferenceEngine.from_config). options: runtime.fast_engine.FastOptions. onnx_dir: where the ONNX
    export lives / is written (default: a per-model folder in ~/.cache/emotion_ros/onnx).
    """
    from emotion_ros.inference.engine import InferenceEngine

    from emotion_ros.inference.backends import make_backend
    from emotion_ros.inference.fast_engine import FastInferenceEngine, FastOptions
    from emotion_ros.inference.precision import set_llm_precision

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if model is None:
        base = InferenceEngine.from_config(engine_config)
        model, transcriber = base.model, transcriber or base.transcriber
    if backend == "torch" and not optimised:
        if engine_config.llm_precision == "mixed":
            raise ValueError("llm_precision mixed needs the optimised engine (its decode steps run on the int8 "
                             "copy); use optimised: true or another precision")
        precision = set_llm_precision(model.llm, engine_config.llm_precision)
        log.info("engine: reference InferenceEngine, backend torch, LLM %s", precision.name)
        return InferenceEngine(model, engine_config, transcriber=transcriber)
    be = make_backend(backend, model, onnx_dir=onnx_dir, **backend_options)
    if options is None:
        options = FastOptions() if optimised else FastOptions.naive()
        options.llm_precision = engine_config.llm_precision
    engine = FastInferenceEngine(model, engine_config, transcriber=transcriber, backend=be, options=options)
    log.info("engine: %s, backend %s (requested %s), LLM %s", "optimised" if optimised else "naive", be.name,
             backend, engine.precision.name)
    engine.backend_requested = backend
    return engine
