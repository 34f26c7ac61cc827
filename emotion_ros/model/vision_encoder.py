"""Multiview visual encoder (paper 4.2 / 5.1): a global view and a temporal view through ONE backbone.

- global view: the window's middle frame at ``global_size`` -> all patch tokens (no CLS) [B, h*w, C]
  plus the CLS / pooled vector [B, C] (the Conv-Attention fusion broadcasts it to 64 tokens);
- temporal view: the 16 uniformly sampled frames at ``temporal_size`` through the same backbone, each
  patch grid adaptively average-pooled to 2x2 -> 16*4 = 64 tokens [B, 64, C].

Frames arrive as uint8 RGB (H, W, 3); resizing (antialiased; bilinear unless ``global_resize`` says
"bicubic" for the global view) and normalisation with the backbone's mean/std (the temporal view may use its
own, ``temporal_mean``/``temporal_std``: the official temporal features use ImageNet statistics, the global
view CLIP's) happen here so every backbone sees the same preprocessing. The view of an input is told by its
size (global_size vs temporal_size), here, in the frame cache and in the per-size ONNX exports; a backbone
whose recipe differs per view (``view_by_size = True``, EVA-ViT-G) therefore needs the two sizes distinct.

Frame cache (InferenceOptions.frame_cache): with window 2 s / hop 0.5 s, 12 of a window's 16 sampled frames
are the same camera frames as in the previous window, and re-encoding them wastes ~3/4 of the vision time.
With a cache the backbone output of each (camera frame, view size) is kept (LRU) and the backbone runs only
on frames it has not seen; a frame used twice in one window (a 5 Hz camera, or the global frame that is also
a temporal frame when both views have one size, as in nano) is encoded once. Keys: the frame's header stamp
plus a cheap content fingerprint (a strided subsample hashed with BLAKE2b), so a stamp reused for another
image (bag loop, clock reset, two cameras) is a miss, never a wrong feature; frames without stamps are keyed
by a digest of all their bytes. Without a cache (0) every frame of every window is encoded (the reference).
``run_backbone`` replaces the PyTorch backbone by another runtime (onnxruntime, TensorRT:
emotion_ros.inference.backends); preprocessing and pooling stay here.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emotion_ros.ingest.errors import InputError


@runtime_checkable
class VisionBackbone(Protocol):
    """What the multiview encoder needs from an image backbone (an nn.Module)."""

    feature_dim: int
    image_mean: tuple
    image_std: tuple

    def __call__(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,3,S,S] normalised -> (grid [B,C,h,w] patch tokens without CLS, pooled [B,C])."""
        ...


class ViTBackbone(nn.Module):
    """transformers CLIPVisionModel as a VisionBackbone.

    grid = the patch tokens of the last layer (CLS dropped) laid out as [B, C, h, w];
    pooled = the CLS token after the post layer norm (CLIP's pooler_output).
    Inputs of another size than the model's native ``image_size`` interpolate the position embeddings
    (the paper runs EVA at 448 for the global view and 224 for the temporal view).
    """

    def __init__(self, clip_vision_model: nn.Module, image_mean=None, image_std=None):
        super().__init__()
        from emotion_ros.model.config import CLIP_MEAN, CLIP_STD

        self.model = clip_vision_model
        cfg = clip_vision_model.config
        self.feature_dim = cfg.hidden_size
        self.patch_size = cfg.patch_size
        self.image_size = cfg.image_size
        self.image_mean = tuple(image_mean or CLIP_MEAN)
        self.image_std = tuple(image_std or CLIP_STD)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = pixel_values.shape[-1]
        out = self.model(pixel_values=pixel_values, interpolate_pos_encoding=size != self.image_size)
        tokens = out.last_hidden_state[:, 1:, :]
        h = pixel_values.shape[-2] // self.patch_size
        w = pixel_values.shape[-1] // self.patch_size
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)
        return grid, out.pooler_output


@dataclass
class VisionTokens:
    global_patches: torch.Tensor  # [B, h*w, C]
    global_cls: torch.Tensor  # [B, C]
    temporal: torch.Tensor  # [B, num_frames*grid^2, C]
    global_mask: torch.Tensor  # [B] float: 1 = global frame present
    temporal_mask: torch.Tensor  # [B] float: 1 = frames present


def fingerprint(frame: np.ndarray, stride: int = 8) -> bytes:
    """16-byte digest of a strided subsample (~1/64 of the pixels): cheap, and different images differ."""
    h = hashlib.blake2b(np.ascontiguousarray(frame[::stride, ::stride]).tobytes(), digest_size=16)
    h.update(str(frame.shape).encode())
    return h.digest()


def full_digest(frame: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(frame).tobytes() + str(frame.shape).encode(), digest_size=16).digest()


class FrameCache:
    """Thread-safe LRU map (frame key, view size) -> backbone features, with hit/miss counters."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

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


class MultiviewVisionEncoder(nn.Module):
    def __init__(self, backbone: nn.Module, global_size: int, temporal_size: int, num_frames: int = 16,
                 temporal_grid: int = 2, frame_batch: int = 32, temporal_mean: tuple | None = None,
                 temporal_std: tuple | None = None, global_resize: str = "bilinear", frame_cache: int = 0):
        super().__init__()
        if not isinstance(backbone, VisionBackbone):
            raise TypeError("backbone must provide feature_dim, image_mean, image_std and forward()")
        per_view = (temporal_mean is not None or temporal_std is not None or global_resize != "bilinear"
                    or getattr(backbone, "view_by_size", False))
        if per_view and global_size == temporal_size:
            raise ValueError(f"the global and temporal views differ in preprocessing or backbone recipe, so their "
                             f"sizes must differ (both are {global_size})")
        if global_resize not in ("bilinear", "bicubic"):
            raise ValueError(f"global_resize must be 'bilinear' or 'bicubic', not {global_resize!r}")
        self.global_resize = global_resize
        self.backbone = backbone
        self.global_size = global_size
        self.temporal_size = temporal_size
        self.num_frames = num_frames
        self.temporal_grid = temporal_grid
        self.frame_batch = frame_batch
        self.dim = backbone.feature_dim
        self.register_buffer("mean", torch.tensor(backbone.image_mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(backbone.image_std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        t_mean = backbone.image_mean if temporal_mean is None else temporal_mean
        t_std = backbone.image_std if temporal_std is None else temporal_std
        self.register_buffer("temporal_mean", torch.tensor(t_mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("temporal_std", torch.tensor(t_std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        if getattr(backbone, "view_by_size", False):  # ViT grid: no probe (a 448 px EVA-G pass costs seconds)
            self.global_hw = (global_size // backbone.patch_size,) * 2
        else:
            with torch.no_grad():  # probe the grid size once (cheap: one image per view size)
                dev = self.mean.device
                g, _ = backbone(torch.zeros(1, 3, global_size, global_size, device=dev))
            self.global_hw = (g.shape[-2], g.shape[-1])
        self.cache: FrameCache | None = None
        self.set_cache(frame_cache)
        # [N,3,S,S] normalised -> (grid [N,C,h,w], pooled [N,C]); None = the PyTorch backbone (see docstring)
        self.run_backbone: Callable | None = None
        self.last_computed = 0  # frames that went through the backbone in the last call

    def set_cache(self, capacity: int) -> None:
        """Keep the features of up to ``capacity`` frames across calls (0 = no cache; module docstring)."""
        self.cache = FrameCache(capacity) if capacity else None

    @property
    def num_global_tokens(self) -> int:
        return self.global_hw[0] * self.global_hw[1]

    @property
    def num_temporal_tokens(self) -> int:
        return self.num_frames * self.temporal_grid ** 2

    def preprocess(self, images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
        """uint8 RGB [N,H,W,3] -> normalised float [N,3,size,size]."""
        x = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3 or 0 in x.shape:
            raise InputError("frames_bad_format", f"expected uint8 RGB images [N,H,W,3], got {tuple(x.shape)} {x.dtype}")
        x = x.to(self.mean.device).permute(0, 3, 1, 2).float().div_(255.0)
        is_global = size == self.global_size
        if x.shape[-2:] != (size, size):
            mode = self.global_resize if is_global else "bilinear"
            x = F.interpolate(x, size=(size, size), mode=mode, align_corners=False, antialias=True)
            if mode == "bicubic":
                x = x.clamp_(0.0, 1.0)  # bicubic overshoots; PIL's 8-bit result is clipped the same way
        if is_global:
            x = (x - self.mean) / self.std
        else:
            x = (x - self.temporal_mean) / self.temporal_std
        return x.to(self._dtype())

    def _dtype(self):
        for p in self.backbone.parameters():
            return p.dtype
        return torch.float32

    def encode_pixels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone on normalised pixels [N,3,S,S] in chunks of ``frame_batch`` (or ``run_backbone``)."""
        if self.run_backbone is not None:
            return self.run_backbone(x)
        grids, pooled = [], []
        for i in range(0, x.shape[0], self.frame_batch):
            g, p = self.backbone(x[i:i + self.frame_batch])
            grids.append(g)
            pooled.append(p)
        return torch.cat(grids), torch.cat(pooled)

    def empty_outputs(self, batch: int):
        """Zeroed (global patches, global CLS, temporal tokens, global mask, temporal mask): what a window
        without video contributes; filled in place for the windows that have frames."""
        dev, dt = self.mean.device, self._dtype()
        zeros = lambda *shape: torch.zeros(*shape, device=dev, dtype=dt)  # noqa: E731
        return (zeros(batch, self.num_global_tokens, self.dim), zeros(batch, self.dim),
                zeros(batch, self.num_temporal_tokens, self.dim), zeros(batch), zeros(batch))

    def _key(self, frame: np.ndarray, stamp, size: int, request):
        if self.cache is None:
            return request  # no reuse at all: every request is its own computation
        if stamp is None:
            return ("digest", full_digest(frame), size)
        return ("stamp", int(stamp), fingerprint(frame), size)

    @torch.no_grad()
    def forward(self, global_frames: Sequence, frames: Sequence, frame_stamps: Sequence | None = None,
                global_stamps: Sequence | None = None) -> VisionTokens:
        """global_frames: per window (H,W,3) uint8 or None; frames: per window (T,H,W,3) uint8 or None;
        frame_stamps / global_stamps: the frames' header stamps (ns) where known (cache keys)."""
        B = len(global_frames)
        k = self.temporal_grid
        gp, gc, tp, gmask, tmask = self.empty_outputs(B)
        frame_stamps = frame_stamps if frame_stamps is not None else [None] * B
        global_stamps = global_stamps if global_stamps is not None else [None] * B
        requests = []  # (window, slot: -1 = global | t, key, frame, size)
        for i in range(B):
            if global_frames[i] is not None:
                g = np.asarray(global_frames[i])
                requests.append((i, -1, self._key(g, global_stamps[i], self.global_size, (i, -1)), g,
                                 self.global_size))
            clip = frames[i]
            if clip is None or len(clip) == 0:
                continue
            clip = np.asarray(clip)
            if clip.ndim != 4:
                raise InputError("frames_bad_format", f"expected frames [T,H,W,3], got {clip.shape}")
            pick = _resample_index(len(clip), self.num_frames)
            stamps = frame_stamps[i]
            stamps = np.asarray(stamps)[pick] if stamps is not None and len(stamps) == len(clip) else [None] * len(pick)
            for t, j in enumerate(pick):
                requests.append((i, t, self._key(clip[j], stamps[t], self.temporal_size, (i, t)), clip[j],
                                 self.temporal_size))
        feats: dict = {}
        todo: dict = {}  # size -> {key: frame}
        for _, _, key, frame, size in requests:
            if key in feats or key in todo.get(size, {}):
                continue
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                feats[key] = hit
            else:
                todo.setdefault(size, {})[key] = frame
        self.last_computed = sum(len(d) for d in todo.values())
        for size, items in todo.items():
            keys = list(items)
            grid, pooled = self.encode_pixels(torch.cat([self.preprocess(items[key][None], size) for key in keys]))
            temporal = F.adaptive_avg_pool2d(grid, k).flatten(2).transpose(1, 2) if size == self.temporal_size else None
            for j, key in enumerate(keys):
                f = {}
                if size == self.global_size:
                    f["patches"] = grid[j].flatten(1).transpose(0, 1).contiguous()
                    f["pooled"] = pooled[j].clone()
                if temporal is not None:
                    f["temporal"] = temporal[j].contiguous()  # [k*k, C]
                feats[key] = f
                if self.cache is not None:
                    self.cache.put(key, f)
        for i, slot, key, _, _ in requests:
            f = feats[key]
            if slot < 0:
                gp[i], gc[i], gmask[i] = f["patches"], f["pooled"], 1
            else:
                tp[i, slot * k * k:(slot + 1) * k * k] = f["temporal"]
                tmask[i] = 1
        return VisionTokens(gp, gc, tp, gmask, tmask)


def _resample_index(n: int, target: int) -> np.ndarray:
    """Indices of ``target`` uniformly picked frames of ``n`` (repeats frames of shorter clips) so the
    temporal view always has ``target``."""
    if n == target:
        return np.arange(n)
    return np.linspace(0, n - 1, target).round().astype(int)
