"""Per-frame image-encoder cache across overlapping windows.

With window 2 s / hop 0.5 s the windowing code samples 16 instants per window, and 12 of them are the
same camera frames as in the previous window; re-encoding them wastes ~3/4 of the vision time. This
module keeps the backbone output of each (camera frame, view size) and runs the backbone only on frames
it has not seen, so each camera frame goes through the image encoder at most once per view size.

Keys: the frame's header stamp (``Window.frame_stamps_ns``) plus a cheap content fingerprint (a strided
subsample hashed with BLAKE2b). The fingerprint makes a stamp reused for a different image (bag loop,
simulated clock reset, two cameras) a miss instead of a wrong feature. Frames without stamps are keyed by
a digest of all their bytes. The global frame (not stamped in ``Window``) takes the stamp of the identical
temporal frame if there is one (so with equal view sizes, as in the nano profile, it is free), else
``window.meta["global_frame_stamp_ns"]`` if the windowing code put it there, else its byte digest.

``CachedVisionEncoder`` reproduces ``MultiviewVisionEncoder.forward`` (same preprocessing, same pooling)
on top of the cache; ``run_backbone`` can be any backend (PyTorch, onnxruntime, TensorRT).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from emotion_ros.model.vision_encoder import MultiviewVisionEncoder, VisionTokens, _resample


def fingerprint(frame: np.ndarray, stride: int = 8) -> bytes:
    """16-byte digest of a strided subsample (~1/64 of the pixels): cheap, and different images differ."""
    a = np.ascontiguousarray(frame[::stride, ::stride])
    h = hashlib.blake2b(a.tobytes(), digest_size=16)
    h.update(str(frame.shape).encode())
    return h.digest()


def full_digest(frame: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(frame).tobytes() + str(frame.shape).encode(),
                           digest_size=16).digest()


@dataclass
class FrameFeatures:
    """Backbone output of one frame at one view size (only what the views need is kept)."""

    patches: torch.Tensor | None  # [h*w, C] (global view)
    pooled: torch.Tensor | None  # [C] (global view CLS / pooled vector)
    temporal: torch.Tensor | None  # [k*k, C] (temporal view: grid pooled to k x k)


class FrameEmbeddingCache:
    """Thread-safe LRU map key -> FrameFeatures with hit/miss counters."""

    def __init__(self, capacity: int = 256):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "size": len(self._data),
                "hit_rate": self.hits / total if total else 0.0}


class CachedVisionEncoder:
    """MultiviewVisionEncoder.forward with per-frame caching (cache=None computes everything, no reuse).

    run_backbone: [N,3,S,S] normalised float -> (grid [N,C,h,w], pooled [N,C]); default = the PyTorch
    backbone of ``vision`` in chunks of ``vision.frame_batch``.
    """

    def __init__(self, vision: MultiviewVisionEncoder, cache: FrameEmbeddingCache | None = None,
                 run_backbone: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None):
        self.vision = vision
        self.cache = cache
        self.run_backbone = run_backbone or vision._run
        self.last_computed = 0  # frames that went through the backbone in the last call

    # -- keys -----------------------------------------------------------------------------------------
    @staticmethod
    def _key(frame: np.ndarray, stamp, size: int):
        if stamp is None:
            return ("digest", full_digest(frame), size)
        return ("stamp", int(stamp), fingerprint(frame), size)

    def _global_stamp(self, window, g: np.ndarray):
        if window.frames is not None and window.frame_stamps_ns is not None and len(window.frames) == len(
                window.frame_stamps_ns):
            fp = fingerprint(g)
            for f, s in zip(window.frames, window.frame_stamps_ns):
                if f is g or (f.shape == g.shape and fingerprint(f) == fp and np.array_equal(f, g)):
                    return int(s)
        stamp = (window.meta or {}).get("global_frame_stamp_ns")
        return None if stamp is None else int(stamp)

    # -- main -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, windows: Sequence) -> VisionTokens:
        v = self.vision
        B = len(windows)
        k = v.temporal_grid
        gp, gc, tp, gmask, tmask = v.empty_outputs(B)

        # requests: (window index, "global" | ("temporal", t), key, frame, size)
        requests = []
        for i, w in enumerate(windows):
            g = w.global_frame
            if g is None and w.frames is not None and len(w.frames) > 0:
                g = w.frames[len(w.frames) // 2]
            if g is not None:
                g = np.asarray(g)
                requests.append((i, "global", self._key(g, self._global_stamp(w, g), v.global_size), g,
                                 v.global_size))
            if w.frames is not None and len(w.frames) > 0:
                clip = np.asarray(w.frames)
                stamps = w.frame_stamps_ns
                if stamps is not None and len(stamps) == len(clip):
                    pick = (np.arange(len(clip)) if len(clip) == v.num_frames
                            else np.linspace(0, len(clip) - 1, v.num_frames).round().astype(int))
                    clip, stamps = clip[pick], np.asarray(stamps)[pick]
                else:
                    clip, stamps = _resample(clip, v.num_frames), [None] * v.num_frames
                if clip.ndim != 4:
                    from emotion_ros.ingest.errors import InputError

                    raise InputError("frames_bad_format", f"expected frames [T,H,W,3], got {clip.shape}")
                for t in range(v.num_frames):
                    requests.append((i, ("temporal", t), self._key(clip[t], stamps[t], v.temporal_size),
                                     clip[t], v.temporal_size))

        feats: dict = {}
        todo: dict = {}  # size -> {key: frame}
        for _, _, key, frame, size in requests:
            if key in feats or key in todo.get(size, {}):
                continue
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None and (size != v.global_size or hit.patches is not None) and (
                    size != v.temporal_size or hit.temporal is not None):
                feats[key] = hit
            else:
                todo.setdefault(size, {})[key] = frame
        self.last_computed = sum(len(d) for d in todo.values())
        for size, items in todo.items():
            keys = list(items)
            x = torch.cat([v.preprocess(items[key][None], size) for key in keys])
            grid, pooled = self.run_backbone(x)
            tpool = None
            if size == v.temporal_size:
                tpool = F.adaptive_avg_pool2d(grid, k).flatten(2).transpose(1, 2)  # [N, k*k, C]
            for j, key in enumerate(keys):
                f = FrameFeatures(
                    patches=grid[j].flatten(1).transpose(0, 1).contiguous() if size == v.global_size else None,
                    pooled=pooled[j].clone() if size == v.global_size else None,
                    temporal=tpool[j].contiguous() if tpool is not None else None)
                feats[key] = f
                if self.cache is not None:
                    self.cache.put(key, f)

        for i, what, key, _, _ in requests:
            f = feats[key]
            if what == "global":
                gp[i] = f.patches
                gc[i] = f.pooled
                gmask[i] = 1
            else:
                t = what[1]
                tp[i, t * k * k:(t + 1) * k * k] = f.temporal
                tmask[i] = 1
        return VisionTokens(gp, gc, tp, gmask, tmask)
