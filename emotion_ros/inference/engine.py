"""Inference engine: one window in, one emotion result out; reasoning streamed separately.

This is the plain-Python heart of the perception node (no ROS here), shared by the live node, the
offline bag evaluation and the benchmarks, so all three produce the same results for the same window.
The label path and the reasoning path share one model; a lock is held per label pass and per generated
token, so a pending label waits at most one token step behind the reasoning stream.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from emotion_ros.ingest.window import Window


@dataclass
class EmotionResult:
    """What the node publishes on /emotion/state for one window."""

    window: Window
    label: str
    labels: list[str]
    scores: list[float]
    confidence: float
    modalities: int
    transcript: str
    task: str
    model_id: str
    latency_ms: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    valence: float = math.nan
    arousal: float = math.nan


class FairLock:
    """A FIFO (ticket) lock. With a plain Lock the label thread, always busy under load, re-acquires the
    model before the waiting reasoning thread wakes up and starves it; in FIFO order the two alternate."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self):
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *exc):
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


@dataclass
class EngineConfig:
    profile: str = "tiny"
    checkpoint: str = ""          # folder written by emotion_ros.model.checkpoint.save_trainable; "" = none
    labels: tuple[str, ...] = ()  # empty = the profile's default label set
    task: str = "emotion"         # task id of the label path
    reasoning_task: str = "think"
    reasoning_max_tokens: int = 64
    reasoning_repetition_penalty: float = 1.0  # > 1 discourages repeating generated tokens (1.0 = plain greedy)
    asr: str = "auto"             # auto (profile with ASR) | always | never: transcribe windows without a transcript
    seed: int = 0
    backend: str = "torch"        # encoders + fusion/adapter on: torch | onnxruntime | tensorrt
    optimised: bool = True        # frame cache, prompt-prefix KV cache, one-pass label scoring (runtime/)
    llm_precision: str = "float32"  # float32 | bfloat16 | float16 | int8 (runtime/precision.py)


class InferenceEngine:
    """Wraps an EmotionLLaMA model (any profile) with the window-level API the node needs."""

    def __init__(self, model, config: EngineConfig, transcriber=None, model_id: str | None = None):
        self.model = model
        self.config = config
        self.labels = list(config.labels) or list(model.cfg.labels)
        self.transcriber = transcriber
        self.model_id = model_id or _model_id(config)
        self._lock = FairLock()

    @classmethod
    def from_config(cls, config: EngineConfig) -> "InferenceEngine":
        """Build the profile's model, load the trainable parts, and the ASR if the profile has one."""
        import torch

        from emotion_ros.model.checkpoint import load_trainable
        from emotion_ros.model.config import get_profile
        from emotion_ros.model.emotion_llama import build_model

        torch.manual_seed(config.seed)
        model = build_model(get_profile(config.profile))
        if config.checkpoint:
            load_trainable(model, config.checkpoint)
        model.eval()
        transcriber = None
        if config.asr == "always" or (config.asr == "auto" and config.profile == "nano"):
            from emotion_ros.backbones.asr import Transcriber

            transcriber = Transcriber()
        return cls(model, config, transcriber=transcriber)

    def transcribe_if_needed(self, window: Window, stage_ms: dict[str, float]) -> None:
        """Fill a missing transcript with the profile's own ASR (when it has one) before encoding."""
        if window.transcript is None and window.audio is not None and self.transcriber is not None:
            t = time.perf_counter()
            window.transcript = self.transcriber.transcribe(window.audio).strip() or None
            stage_ms["asr"] = (time.perf_counter() - t) * 1e3

    def process(self, window: Window) -> EmotionResult:
        """Label path: (optional ASR) + encoders + fusion + one batched scoring pass over the label set."""
        t0 = time.perf_counter()
        stage_ms: dict[str, float] = {}
        self.transcribe_if_needed(window, stage_ms)
        t = time.perf_counter()
        with self._lock:
            prediction = self.model.predict([window], self.labels, task=self.config.task)[0]
        stage_ms["model"] = (time.perf_counter() - t) * 1e3
        stage_ms.update(getattr(prediction, "stage_ms", None) or {})
        scores = [float(prediction.probs[label]) for label in self.labels]
        best = max(range(len(scores)), key=scores.__getitem__)
        return EmotionResult(
            window=window,
            label=self.labels[best],
            labels=list(self.labels),
            scores=scores,
            confidence=scores[best],
            modalities=window.modalities,
            transcript=window.transcript or "",
            task=self.config.task,
            model_id=self.model_id,
            latency_ms=(time.perf_counter() - t0) * 1e3,
            stage_ms=stage_ms,
        )

    def stream_reasoning(self, window: Window, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Reasoning path: yields text deltas; the model lock is taken per token, never for the whole text."""
        stream = self.model.stream_reasoning(
            window, self.labels, task=self.config.reasoning_task, max_new_tokens=self.config.reasoning_max_tokens,
            repetition_penalty=self.config.reasoning_repetition_penalty,
        )
        while not should_stop():
            with self._lock:
                delta = next(stream, None)
            if delta is None:
                return
            yield delta


def _model_id(config: EngineConfig) -> str:
    return f"{config.profile}@{config.checkpoint}" if config.checkpoint else config.profile

