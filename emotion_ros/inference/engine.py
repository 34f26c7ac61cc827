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
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal

from emotion_ros.ingest.window import Window
from emotion_ros.params import param, validate


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
    unsure: str = ""  # why the node is unsure of this label ('' = it is not): emotion_ros.model.calibration
    features: dict = field(default_factory=dict)  # pooled encoder features per stream (calibration's distance)
    left_out: list = field(default_factory=list)  # streams scored as missing: far from the training data
    expert: dict | None = None  # the real-face expert's expression distribution over the labels, if any


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


PROFILES = ("tiny", "nano", "paper")


@dataclass
class EngineConfig:
    """What runs on a window: model profile + trained weights, label set, tasks, speed-ups, precision.
    Each field is a node parameter (emotion_ros.params); ``pipeline`` picks the stage options preset."""

    profile: Literal["tiny", "nano", "paper"] = param(
        "nano", "model profile: nano (embedded default, packaged weights), paper (official Emotion-LLaMAv2, local "
        "weights), tiny (random miniature for tests)")
    checkpoint: str = param(
        "auto", "trained fusion/adapter/LoRA folder: auto = the profile's shipped adapters (models/<profile>/"
        "adapters, none for tiny/paper), '' = untrained, or a path (relative paths: the package root)")
    label_set: str = param("MER6", "named label set: MER6, MELD7, SENTIMENT3, IEMOCAP4 (used when labels is empty)")
    labels: tuple[str, ...] = param((), "explicit label list; wins over label_set when non-empty")
    task: Literal["emotion", "reason", "think"] = param("emotion", "task id of the label path's prompt")
    reasoning_task: Literal["reason", "think"] = param("think", "task of the streamed reasoning text")
    reasoning_max_tokens: int = param(48, "bound on generated reasoning tokens per window", min=1, max=4096)
    reasoning_repetition_penalty: float = param(
        1.2, "> 1 discourages repeating generated tokens (plain greedy nano text loops: 'calm, calm, ...')",
        min=1.0, max=3.0)
    reasoning_answer: Literal["joint", "reasoning"] = param(
        "joint", "how the think answer is chosen: joint = the label set scored after the reasoning times the "
                 "window's published label probabilities (the reasoning overturns only an unsure label); "
                 "reasoning = from the reasoning alone")
    reasoning_no_repeat_ngram: int = param(4, "no n-gram of this many tokens twice in a reasoning text (0 = off)",
                                           min=0, max=16)
    asr: Literal["auto", "always", "never"] = param(
        "auto", "transcribe windows that have no transcript: auto = where the profile has an ASR (nano)")
    asr_language: str = param("", "ASR language code (en, zh, ...); '' = detect automatically per window")
    seed: int = param(0, "seed of random initialisation (tiny profile) and of sampling", min=0)
    backend: Literal["torch", "onnxruntime", "tensorrt"] = param(
        "torch", "runtime of encoders + fusion/adapter (tensorrt -> onnxruntime -> torch fallback, logged)")
    pipeline: Literal["optimised", "reference", "naive"] = param(
        "optimised", "stage options preset: optimised (frame cache, prefix KV, one-pass label scoring), "
        "reference (no caches), naive (30 s padded Whisper, one LLM pass per label; for benchmarks)")
    calibrate: bool = param(True, "apply the checkpoint's fitted calibration (calibrated confidence, unsure flag)")
    llm_precision: Literal["auto", "float32", "bfloat16", "float16", "mixed"] = param(
        "auto", "LLM precision: auto = mixed on CPU (bf16 prompt passes + int8 decode steps), float16 on CUDA")

    def __post_init__(self):
        from emotion_ros.model.prompt import LABEL_SETS

        validate(self)
        if not self.labels and self.label_set not in LABEL_SETS:
            raise ValueError(f"parameter label_set: unknown label set {self.label_set!r}; known: {sorted(LABEL_SETS)} "
                             "(or give labels explicitly)")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"parameter labels: duplicate labels in {list(self.labels)}")

    def label_list(self) -> list[str]:
        from emotion_ros.model.prompt import LABEL_SETS

        return list(self.labels) or list(LABEL_SETS[self.label_set])


class InferenceEngine:
    """The window-level API of a model (any profile): ``process(window)`` -> EmotionResult (label path),
    ``stream_reasoning(window, should_stop)`` -> text deltas. What runs is the model's own stages
    (emotion_ros.model), with the InferenceOptions preset of ``config.pipeline``, the LLM precision of
    ``config.llm_precision`` and the encoders/fusion on ``backend`` (emotion_ros.inference.backends). This class
    adds only what a live node needs around them: optional ASR for windows without a transcript, the model
    lock (taken per label pass and per generated token, FIFO: a pending label waits at most one token step,
    and with label_priority the reasoning waits before its next token while a label is pending), and the
    hand-over of one window's encoding and prompt prefix from the label path to its reasoning path."""

    def __init__(self, model, config: EngineConfig, transcriber=None, model_id: str | None = None, backend=None,
                 options=None, calibration=None):
        from emotion_ros.inference.backends import TorchBackend
        from emotion_ros.model.config import InferenceOptions

        self.model = model
        self.config = config
        self.labels = config.label_list()
        self.transcriber = transcriber
        self.model_id = model_id or _model_id(config.profile, config.checkpoint)
        self.options = options or InferenceOptions.preset(config.pipeline)
        model.set_options(self.options)
        self.backend = backend or TorchBackend(model)
        self.backend.install(model)
        self.precision = model.llm.set_precision(resolve_precision(config.llm_precision, model.device))
        if config.reasoning_task == "think":
            model.llm.tag_tokens()  # the structured decoder's table (~1 s for a 262k vocabulary): not in the first stream
        self.calibration = calibration if config.calibrate else None  # model.calibration.Calibration
        self._lock = FairLock()
        self._states: OrderedDict = OrderedDict()  # window key -> _WindowState, for its reasoning
        self._label_waiting = 0
        self._waiting_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: EngineConfig, **kwargs) -> "InferenceEngine":
        """Build the profile's model, load the trainable parts, and the ASR if the profile has one."""
        model, transcriber, model_id, calibration = load_model(config)
        return cls(model, config, transcriber=transcriber, model_id=model_id, calibration=calibration, **kwargs)

    def transcribe_if_needed(self, window: Window, stage_ms: dict[str, float]) -> None:
        """Fill a missing transcript with the profile's own ASR (when it has one) before encoding."""
        if window.transcript is None and window.audio is not None and self.transcriber is not None:
            t = time.perf_counter()
            window.transcript = self.transcriber.transcribe(window.audio).strip() or None
            stage_ms["asr"] = (time.perf_counter() - t) * 1e3

    # -- label path -----------------------------------------------------------------------------------
    def process(self, window: Window) -> EmotionResult:
        """(optional ASR) + encoders + fusion/adapter + the label set scored (model.llm.score_labels) +
        calibration (its far streams left out before the fusion)."""
        from emotion_ros.model.calibration import pooled_features

        t0 = time.perf_counter()
        stage_ms: dict[str, float] = {}
        self.transcribe_if_needed(window, stage_ms)
        with self._waiting_lock:
            self._label_waiting += 1
        try:
            with self._lock:
                model = self.model
                enc = model.encode([window], stage_ms)
                features, left_out = pooled_features(enc), []
                if self.calibration is not None:  # a stream far from the training data does not vote
                    left_out = self.calibration.streams_to_drop(features)
                    enc = enc.without(left_out)
                t = time.perf_counter()
                streams = model.streams(enc)
                stage_ms["fusion_adapter"] = (time.perf_counter() - t) * 1e3
                t = time.perf_counter()
                prompt = model.prompt(streams, 0, window.transcript, self.config.task, self.labels)
                probs, prefix = model.llm.score_labels(prompt, self.labels)
                stage_ms["llm_label"] = (time.perf_counter() - t) * 1e3
                state = _WindowState(streams, prefix)
                if self.options.share_encoding:
                    self._remember(window, state)
        finally:
            with self._waiting_lock:
                self._label_waiting -= 1
        expert, unsure = model.expert_labels(enc, self.labels), ""
        if self.calibration is not None:
            probs, unsure = self.calibration.apply(probs, self.labels, features, expert, window.transcript)
        pred = model.prediction(probs, self.labels)
        scores = list(pred.probs.values())
        state.published = tuple(scores)  # the reasoning's answer prior (reasoning_answer joint)
        return EmotionResult(window=window, label=pred.label, labels=list(self.labels), scores=scores,
                             confidence=pred.confidence, modalities=window.modalities,
                             transcript=window.transcript or "", task=self.config.task, model_id=self.model_id,
                             latency_ms=(time.perf_counter() - t0) * 1e3, stage_ms=stage_ms, unsure=unsure,
                             features=features, expert=expert, left_out=left_out)

    @staticmethod
    def _window_key(window: Window):
        return (id(window), window.start_ns, window.end_ns, window.source)

    def _remember(self, window: Window, state: "_WindowState") -> None:
        self._states[self._window_key(window)] = state
        while len(self._states) > self.options.window_states:
            self._states.popitem(last=False)

    # -- reasoning path -------------------------------------------------------------------------------
    def stream_reasoning(self, window: Window, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Reasoning deltas of ``config.reasoning_task`` (model.llm.generate: the one decode loop); the model
        lock is taken per step, never for the whole text."""
        state = self._states.pop(self._window_key(window), None)
        steps = self._reasoning_steps(window, state)
        while not should_stop():
            if self.options.label_priority:
                while self._label_waiting > 0:
                    time.sleep(0.0005)
            with self._lock:
                delta = next(steps, None)
            if delta is None:
                return
            if delta:
                yield delta

    def _reasoning_steps(self, window: Window, state: "_WindowState | None") -> Iterator[str]:
        """Generator of one model step per next(): the encoding (unless the label path left it), then the
        decode loop's steps."""
        model, cfg = self.model, self.config
        if state is None:
            state = _WindowState(model.streams(model.encode([window])), None)
            yield ""
        prior = ()
        if cfg.reasoning_task == "think" and cfg.reasoning_answer == "joint":
            if state.published is None:  # the label path left nothing: this window's label probabilities
                label_prompt = model.prompt(state.streams, 0, window.transcript, cfg.task, self.labels)
                state.published = tuple(model.llm.score_labels(label_prompt, self.labels)[0].tolist())
                yield ""
            prior = state.published
        prompt = model.prompt(state.streams, 0, window.transcript, cfg.reasoning_task, self.labels)
        rules = model.reasoning_rules(cfg.reasoning_task, self.labels, cfg.reasoning_max_tokens,
                                      repetition_penalty=cfg.reasoning_repetition_penalty,
                                      no_repeat_ngram=cfg.reasoning_no_repeat_ngram, answer_prior=prior)
        yield from model.llm.generate(prompt, rules, prefix=state.prefix)

    # -- info -----------------------------------------------------------------------------------------
    def describe(self) -> dict:
        d = {"engine": self.config.pipeline, "options": dict(self.options.__dict__),
             "llm_precision": self.precision.name, **self.backend.describe()}
        cache = self.model.vision_encoder.cache
        if cache is not None:
            d["frame_cache"] = cache.stats()
        return d


@dataclass
class _WindowState:
    """What the label path leaves behind for the reasoning path of the same window."""

    streams: dict  # adapter outputs by stream (model.streams)
    prefix: object | None  # model.llm.Prefix of the prompt's shared part (None: computed by the reasoning)
    published: tuple | None = None  # the label probabilities published for the window (after calibration)


def resolve_precision(name: str, device="cpu") -> str:
    """llm_precision "auto": mixed on a CPU (bf16 prompt passes + int8 decode steps), float16 on CUDA."""
    if name != "auto":
        return name
    return "float16" if str(device).startswith("cuda") else "mixed"


def load_model(config: EngineConfig):
    """(model, transcriber or None, model id, calibration or None) of an engine config: the profile built,
    its checkpoint loaded ('auto' = the profile's shipped adapters) with its fitted calibration, the
    profile's ASR where asr says so."""
    import torch

    from emotion_ros.model.checkpoint import load_trainable, read_calibration
    from emotion_ros.model.config import get_profile
    from emotion_ros.model.emotion_llama import build_model
    from emotion_ros.paths import resolve_checkpoint

    torch.manual_seed(config.seed)
    model = build_model(get_profile(config.profile, labels=config.label_list()))
    checkpoint = resolve_checkpoint(config.checkpoint, config.profile)
    calibration = None
    if checkpoint:
        load_trainable(model, checkpoint)
        calibration = read_calibration(checkpoint)
    model.eval()
    return model, load_transcriber(config), _model_id(config.profile, checkpoint), calibration


def load_transcriber(config: EngineConfig):
    """The profile's ASR where ``config.asr`` says so (auto: the nano profile has one), else None."""
    if config.asr == "always" or (config.asr == "auto" and config.profile == "nano"):
        from emotion_ros.backbones.asr import Transcriber

        return Transcriber(language=config.asr_language or None)
    return None


def _model_id(profile: str, checkpoint: str) -> str:
    return f"{profile}@{checkpoint}" if checkpoint else profile
