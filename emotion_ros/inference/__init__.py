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


def resolve_precision(name: str, device: str = "cpu") -> str:
    """llm_precision "auto": mixed on a CPU (bf16 prompt passes + int8 decode steps), float16 on CUDA."""
    if name != "auto":
        return name
    return "float16" if str(device).startswith("cuda") else "mixed"


def build_engine(engine_config, model=None, options=None, onnx_dir: str | None = None, transcriber=None,
                 **backend_options):
    """An engine with the InferenceEngine API for ``engine_config`` (emotion_ros.inference.engine.EngineConfig).

    engine_config.backend: "torch" | "onnxruntime" | "tensorrt" (encoders + fusion/adapter; the LLM runs in
    PyTorch); engine_config.pipeline: optimised | reference | naive; engine_config.llm_precision sets the
    LLM's precision (in place). model: an already built EmotionLLaMA (else it is built from the profile +
    checkpoint, like InferenceEngine.from_config). options: inference.fast_engine.FastOptions (overrides the
    pipeline preset). onnx_dir: where the ONNX export lives / is written (default: a per-model folder in
    ~/.cache/emotion_ros/onnx).
    """
    from emotion_ros.inference.engine import InferenceEngine

    from emotion_ros.inference.backends import make_backend
    from emotion_ros.inference.fast_engine import FastInferenceEngine, FastOptions
    from emotion_ros.inference.precision import set_llm_precision

    backend = engine_config.backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    model_id = None
    if model is None:
        base = InferenceEngine.from_config(engine_config)
        model, transcriber, model_id = base.model, transcriber or base.transcriber, base.model_id
    precision = resolve_precision(engine_config.llm_precision, model.device)
    if engine_config.pipeline == "reference" and options is None:
        if precision == "mixed":
            precision = "float32" if engine_config.llm_precision == "auto" else precision
        if precision == "mixed":
            raise ValueError("llm_precision mixed needs the optimised engine (its decode steps run on the int8 "
                             "copy); use pipeline optimised or another precision")
        set_llm_precision(model.llm, precision)
        log.info("engine: reference InferenceEngine, backend torch, LLM %s", precision)
        return InferenceEngine(model, engine_config, transcriber=transcriber, model_id=model_id)
    be = make_backend(backend, model, onnx_dir=onnx_dir, **backend_options)
    if options is None:
        options = FastOptions() if engine_config.pipeline == "optimised" else FastOptions.naive()
        options.llm_precision = precision
    engine = FastInferenceEngine(model, engine_config, transcriber=transcriber, model_id=model_id, backend=be,
                                 options=options)
    log.info("engine: %s, backend %s (requested %s), LLM %s", engine_config.pipeline, be.name, backend,
             engine.precision.name)
    engine.backend_requested = backend
    return engine
