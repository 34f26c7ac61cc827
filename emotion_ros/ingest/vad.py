"""Streaming speech segmentation: Silero VAD (ONNX, shipped inside the `silero-vad` wheel) + hysteresis.

The training clips are utterances, so the node can cut windows at speech segments. Silero VAD is run
directly with onnxruntime on the model file that the `silero-vad` PyPI package ships
(`silero_vad/data/silero_vad.onnx`, MIT): no torch, no torch.hub, no download. Only the file is used,
located with importlib's find_spec; the package's own Python code (which imports torch) is never imported.

Model I/O (silero-vad v5/v6 ONNX): input float32 [1, 64 + 512] = 64 samples of context (the tail of the
previous frame) + one 512-sample frame at 16 kHz (32 ms); state float32 [2, 1, 128] carried between
calls; sr int64 = 16000 -> speech probability [1, 1] and the next state.

`EnergyVAD` is the fallback when the package (or onnxruntime) is missing: an RMS gate in dBFS. It is NOT
a speech detector (a tone or a slammed door is "speech" to it); `SpeechSegmenter.backend` says which one
runs so the node can show it on /diagnostics.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np

from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE
from emotion_ros.io import sha256_file

FRAME = 512  # samples per VAD step at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame prepended (silero v5+ ONNX contract)
NS_PER_SAMPLE = 1_000_000_000 // AUDIO_SAMPLE_RATE  # 62_500 exactly
SILERO_PACKAGE = "silero-vad"
SILERO_MODEL_FILE = "silero_vad.onnx"

log = logging.getLogger(__name__)


def silero_model_path() -> Path:
    """Path of the ONNX model inside the installed silero-vad package (FileNotFoundError if absent).

    Located with importlib's spec machinery, NOT `importlib.resources.files("silero_vad")`: that would
    execute silero_vad/__init__.py, which imports torch (seconds of start-up and a torch dependency
    for a 2 MB ONNX file). find_spec only searches the path; nothing of the package runs.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {SILERO_PACKAGE!r} package is not installed "
                                f"(pip install -r requirements/windowing.txt)")
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / SILERO_MODEL_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"data/{SILERO_MODEL_FILE} missing from the {SILERO_PACKAGE!r} package")


def silero_provenance() -> dict:
    """Package, version, file, sha256 and licence of the VAD model actually loaded."""
    path = silero_model_path()
    return {
        "package": SILERO_PACKAGE,
        "version": metadata.version(SILERO_PACKAGE),
        "file": str(path),
        "sha256": sha256_file(path),
        "licence": "MIT",
    }


class SileroVAD:
    """Streaming Silero VAD on onnxruntime; `prob(frame512) -> float`, state kept between calls."""

    name = "silero"

    def __init__(self, model_path: str | Path | None = None, threads: int = 1):
        import onnxruntime as ort

        self.model_path = Path(model_path) if model_path else silero_model_path()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.model_path), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._sr = np.array(AUDIO_SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def prob(self, frame: np.ndarray) -> float:
        x = np.concatenate([self._context, frame.astype(np.float32, copy=False)])[None, :]
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[0, -CONTEXT:].copy()
        return float(out.reshape(-1)[0])


class EnergyVAD:
    """Fallback: probability 1.0 when the frame's RMS exceeds `threshold_dbfs`, else 0.0.

    Only for machines without silero-vad; it detects loudness, not speech.
    """

    name = "energy"

    def __init__(self, threshold_dbfs: float = -35.0):
        self.threshold_dbfs = threshold_dbfs

    def reset(self) -> None:
        pass

    def prob(self, frame: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)) + 1e-20))
        return 1.0 if 20.0 * np.log10(rms) > self.threshold_dbfs else 0.0


def default_vad_model():
    """SileroVAD when the package and onnxruntime are importable, else EnergyVAD (with one warning)."""
    try:
        return SileroVAD()
    except (ImportError, FileNotFoundError, OSError) as exc:
        log.warning("silero-vad unavailable (%s); falling back to the energy VAD, which is not a speech "
                    "detector", exc)
        return EnergyVAD()


@dataclass
class VadConfig:
    """Hysteresis of the segmenter (times in seconds)."""

    threshold: float = 0.5  # speech starts when p >= threshold
    neg_threshold: float | None = None  # speech continues while p >= this (default threshold - 0.15)
    min_silence_s: float = 0.3  # a segment ends after this much silence
    min_speech_s: float = 0.25  # shorter detections are noise and dropped
    max_speech_s: float = 8.0  # a longer segment is closed and a new one starts (bounded latency/memory)
    speech_pad_s: float = 0.1  # added before and after each segment


class SpeechSegmenter:
    """Feed contiguous 16 kHz audio with the stamp of its first sample; get closed speech segments.

    `process()` returns a list of (start_ns, end_ns) segments that closed during this call. Audio that is
    not contiguous with the previous call (a gap > 2 samples, or a jump back) closes any open segment at
    the last speech seen and restarts the model state, so no segment spans a gap.
    """

    def __init__(self, config: VadConfig | None = None, model=None):
        self.config = config or VadConfig()
        self.model = model if model is not None else default_vad_model()
        self.backend = getattr(self.model, "name", type(self.model).__name__)
        c = self.config
        self._neg = c.neg_threshold if c.neg_threshold is not None else max(0.0, c.threshold - 0.15)
        self._min_silence_ns = int(c.min_silence_s * 1e9)
        self._min_speech_ns = int(c.min_speech_s * 1e9)
        self._max_speech_ns = int(c.max_speech_s * 1e9)
        self._pad_ns = int(c.speech_pad_s * 1e9)
        self.frames_processed = 0
        self.reset()

    # -- state -----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything (model state, partial frame, open segment) without emitting."""
        self.model.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self._run_start_ns: int | None = None  # stamp of the first sample since the last reset
        self._next_ns: int | None = None  # stamp the next sample must have to be contiguous
        self._frame_start_ns: int | None = None  # stamp of _pending[0]
        self._in_speech = False
        self._continued = False
        self._seg_start_ns = 0
        self._last_speech_ns = 0
        self.last_prob = 0.0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def open_segment_start_ns(self) -> int | None:
        """Padded start of the segment being spoken now (None in silence)."""
        return self._padded_start(self._seg_start_ns) if self._in_speech else None

    @property
    def next_ns(self) -> int | None:
        return self._next_ns

    # -- feeding ---------------------------------------------------------------------------------
    def process(self, start_ns: int, samples: np.ndarray) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            return out
        if self._next_ns is not None and abs(int(start_ns) - self._next_ns) > 2 * NS_PER_SAMPLE:
            out.extend(self.flush())
        if self._next_ns is None:
            self._run_start_ns = int(start_ns)
            self._frame_start_ns = int(start_ns)
        self._pending = np.concatenate([self._pending, samples]) if self._pending.size else samples
        self._next_ns = self._frame_start_ns + self._pending.size * NS_PER_SAMPLE
        n_full = self._pending.size // FRAME
        for k in range(n_full):
            frame = self._pending[k * FRAME:(k + 1) * FRAME]
            t0 = self._frame_start_ns + k * FRAME * NS_PER_SAMPLE
            p = self.model.prob(frame)
            self.last_prob = p
            self.frames_processed += 1
            seg = self._step(p, t0, t0 + FRAME * NS_PER_SAMPLE)
            if seg:
                out.append(seg)
        if n_full:
            self._pending = self._pending[n_full * FRAME:].copy()
            self._frame_start_ns += n_full * FRAME * NS_PER_SAMPLE
        return out

    def flush(self) -> list[tuple[int, int]]:
        """Close an open segment at the last speech seen, then reset (call at a gap or shutdown)."""
        out = []
        if self._in_speech:
            seg = self._close(self._last_speech_ns)
            if seg:
                out.append(seg)
        self.reset()
        return out

    # -- hysteresis ------------------------------------------------------------------------------
    def _padded_start(self, t: int) -> int:
        if self._continued:  # continuation of a split segment: starts exactly at the cut
            return t
        floor = self._run_start_ns if self._run_start_ns is not None else t
        return max(floor, t - self._pad_ns)

    def _close(self, end_ns: int) -> tuple[int, int] | None:
        self._in_speech = False
        if end_ns - self._seg_start_ns < self._min_speech_ns:
            return None
        return self._padded_start(self._seg_start_ns), end_ns + self._pad_ns

    def _step(self, p: float, t0: int, t1: int) -> tuple[int, int] | None:
        c = self.config
        if not self._in_speech:
            if p >= c.threshold:
                self._in_speech = True
                self._continued = False
                self._seg_start_ns = t0
                self._last_speech_ns = t1
            return None
        seg = None
        if p >= self._neg:
            self._last_speech_ns = t1
        elif t1 - self._last_speech_ns >= self._min_silence_ns:
            return self._close(self._last_speech_ns)
        if self._in_speech and t1 + (t1 - t0) - self._seg_start_ns > self._max_speech_ns:
            # one more frame would exceed max_speech_s
            # Long speech: close here (no pad at the cut; the next segment starts at the cut).
            self._in_speech = False
            seg = (self._padded_start(self._seg_start_ns), t1)
            if p >= c.threshold:
                self._in_speech = True
                self._continued = True
                self._seg_start_ns = t1
                self._last_speech_ns = t1
        return seg
