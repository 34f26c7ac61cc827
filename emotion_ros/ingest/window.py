"""One time-aligned multimodal window: the unit that the windowing code cuts and the model consumes.

Kept free of ROS and torch so that windowing, replay, training and the model can all share it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AUDIO_SAMPLE_RATE = 16_000
NUM_FRAMES = 16

MODALITY_AUDIO = 1
MODALITY_VISION = 2
MODALITY_TEXT = 4


@dataclass
class Window:
    """Inputs of one window. Any modality may be missing (None): the model zeroes it and masks it.

    Times are integer nanoseconds of sensor time (ROS header stamps).
    """

    start_ns: int
    end_ns: int
    # (NUM_FRAMES, H, W, 3) uint8 RGB, sampled uniformly over the window, oldest first.
    frames: np.ndarray | None = None
    frame_stamps_ns: np.ndarray | None = None
    # (H, W, 3) uint8 RGB: the frame nearest the window's midpoint (the paper's "middle frame").
    global_frame: np.ndarray | None = None
    # float32 mono samples in [-1, 1] at AUDIO_SAMPLE_RATE covering [start_ns, end_ns].
    audio: np.ndarray | None = None
    # What the person said in the window (transcript topic or ASR); None when unknown.
    transcript: str | None = None
    # Free-form provenance (e.g. "fixed", "vad"), carried into diagnostics only.
    source: str = "fixed"
    index: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def modalities(self) -> int:
        """Bitmask of MODALITY_* present in this window."""
        bits = 0
        if self.audio is not None and self.audio.size > 0:
            bits |= MODALITY_AUDIO
        if self.frames is not None and len(self.frames) > 0:
            bits |= MODALITY_VISION
        if self.transcript:
            bits |= MODALITY_TEXT
        return bits


def modality_names(bits: int) -> list[str]:
    """Human-readable names of a modality bitmask, in a fixed order."""
    names = []
    if bits & MODALITY_AUDIO:
        names.append("audio")
    if bits & MODALITY_VISION:
        names.append("vision")
    if bits & MODALITY_TEXT:
        names.append("text")
    return names
