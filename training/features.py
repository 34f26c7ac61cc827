"""Feature cache for the frozen encoders: encode each clip once, train many epochs and stages on it.

Why: the encoders (Whisper, the image backbone) are frozen, so their outputs for a clip never change;
recomputing them every epoch would cost more than the fusion + adapter + LoRA step itself.

Layout: ``<root>/<encoder-hash>/<key>.safetensors``, one file per clip holding the EncodedBatch tensors
of that clip (batch dimension 1) and, in the safetensors metadata, the clip id and its transcript.
- encoder hash: SHA-256 of everything that shapes the features (audio/vision encoder configs, the
  seed when the encoders are random, frames per clip, decode size, a format version);
- key: SHA-256 of (clip id, encoder hash, start/end, modalities, subtitle, and per media file its
  SHA-256 and size). Editing or regenerating a clip's media therefore misses the cache; a different
  encoder setting lands in a different folder.
Writes go through ``emotion_ros.io.atomic_file`` (a temporary file renamed into place: a killed run never
leaves a half-written entry), so several processes may fill the same cache; each rank encodes its share of the missing clips.

Clips whose media cannot be decoded are dropped and counted by reason (never silently).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from safetensors import safe_open
from safetensors.torch import save_file

from emotion_ros.io import atomic_file, sha256_file, write_json
from emotion_ros.model.emotion_llama import EncodedBatch
from emotion_ros_training.data.manifest import ClipRecord, InputError

CACHE_FORMAT = "emotion_ros.features/1"


def encoder_hash(model_cfg, num_frames: int, frame_size: tuple | None) -> str:
    """Hash of every setting that changes the frozen encoders' output for a clip."""
    cfg = model_cfg.to_dict()
    parts = {
        "format": CACHE_FORMAT,
        "audio": cfg["audio"],
        "vision": cfg["vision"],
        "num_frames": int(num_frames),
        "frame_size": list(frame_size) if frame_size else None,
    }
    if (cfg.get("face") or {}).get("enabled"):  # the face stream's expert output is cached with the encoders
        parts["face"] = cfg["face"]
    if cfg["audio"].get("source") == "random" or cfg["vision"].get("source") == "random":
        parts["seed"] = cfg["seed"]  # random encoders are built from the model seed
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


_FILE_SHA: dict[tuple, str] = {}


def file_sha256(path: str) -> str:
    """SHA-256 of a media file (memoised per (path, size, mtime) for this process)."""
    st = os.stat(path)
    memo = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_SHA:
        _FILE_SHA[memo] = sha256_file(path)
    return _FILE_SHA[memo]


def clip_key(record: ClipRecord, enc_hash: str) -> str:
    """Cache key of one clip under one encoder setting (see module docstring)."""
    media = {}
    for p in sorted({record.video_path, record.audio_path} - {None}):
        if os.path.isfile(p):
            media[os.path.basename(p)] = [file_sha256(p), os.path.getsize(p)]
        else:
            media[os.path.basename(p)] = None  # decoding will fail and count a drop
    ident = {
        "clip_id": record.clip_id, "encoder": enc_hash, "start_s": record.start_s, "end_s": record.end_s,
        "modalities": sorted(record.modalities), "subtitle": record.subtitle, "media": media,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


RUN_CACHE = "feature_cache"  # training's default cache: RUN/feature_cache, next to the run's stage folders


def run_cache_root(run_dir: str | os.PathLike) -> Path:
    """The feature cache ``emotion_ros_training.train --out RUN`` uses when no --cache is given."""
    return Path(run_dir) / RUN_CACHE


def _run_of(checkpoint: str | os.PathLike) -> Path | None:
    """RUN for a checkpoint inside a training run (RUN/stage<S>/final, RUN/stage<S>/checkpoints/...)."""
    path = Path(checkpoint).resolve()
    for parent in [path, *path.parents]:
        if parent.name.startswith("stage") and parent.name[5:] in ("1", "2", "joint"):
            return parent.parent
    return None


def default_cache_root(checkpoint: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Where the features of a trained checkpoint's encoders are (or go) when no --cache is given: the
    cache training used (recorded in the checkpoint's metadata, or RUN/feature_cache of the run the
    checkpoint, or the checkpoint it was exported from, lies in); failing both, the user cache
    ($EMOTION_ROS_CACHE/features), never the data folder. Entries are keyed by encoder settings, so any
    of these roots is safe to share."""
    metadata = metadata or {}
    recorded = metadata.get("feature_cache")
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    for source in (checkpoint, metadata.get("exported_from")):
        run = _run_of(source) if source else None
        if run is not None and run_cache_root(run).is_dir():
            return run_cache_root(run)
    run = _run_of(checkpoint)
    if run is not None:
        return run_cache_root(run)
    from emotion_ros.backbones.cache import cache_dir

    return cache_dir() / "features"


@dataclass
class CacheStats:
    hits: int = 0
    computed: int = 0
    drops: Counter = field(default_factory=Counter)  # reason -> clips that could not be decoded

    def to_dict(self) -> dict:
        return {"hits": self.hits, "computed": self.computed, "drops": dict(self.drops)}


class FeatureCache:
    """Per-clip EncodedBatch tensors on disk (safetensors) and in memory.

    ``model`` is only needed to fill missing entries (``ensure``); reading needs just the config.
    """

    def __init__(self, root: str | os.PathLike, model_cfg, num_frames: int = 16, frame_size: tuple | None = None):
        self.model_cfg = model_cfg
        self.num_frames = num_frames
        self.frame_size = tuple(frame_size) if frame_size else None
        self.enc_hash = encoder_hash(model_cfg, num_frames, self.frame_size)
        self.dir = Path(root) / self.enc_hash[:16]
        self.dir.mkdir(parents=True, exist_ok=True)
        self._keys: dict[str, str] = {}
        self._mem: dict[str, EncodedBatch] = {}
        self.stats = CacheStats()

    # -- keys and paths ------------------------------------------------------------------------------
    def key(self, record: ClipRecord) -> str:
        if record.clip_id not in self._keys:
            self._keys[record.clip_id] = clip_key(record, self.enc_hash)
        return self._keys[record.clip_id]

    def path(self, record: ClipRecord) -> Path:
        return self.dir / f"{self.key(record)}.safetensors"

    def has(self, record: ClipRecord) -> bool:
        return self.path(record).is_file()

    # -- filling -------------------------------------------------------------------------------------
    def ensure(self, records: Sequence[ClipRecord], model=None, batch_size: int = 4, rank: int = 0,
               world: int = 1, progress: bool = True, barrier=None) -> list[ClipRecord]:
        """Encode the clips that are not cached yet (this rank's share of them), wait for the other
        ranks (``barrier``), and return the records that are usable (decode failures dropped + counted)."""
        from emotion_ros_training.data.media import sample_clip

        missing = [r for r in records if not self.has(r)]
        self.stats.hits += len(records) - len(missing)
        # partition the FULL list (not the missing one, which depends on when each rank looked)
        mine = [r for r in records[rank::world] if not self.has(r)]
        failed: dict[str, str] = {}
        if mine:
            if model is None:
                raise ValueError(f"{len(mine)} clips are not cached and no model was given to encode them")
            bar = _progress(len(mine), "encode (frozen)", progress and rank == 0)
            for i in range(0, len(mine), batch_size):
                chunk = mine[i:i + batch_size]
                windows, ok = [], []
                for rec in chunk:
                    try:
                        windows.append(sample_clip(rec, self.num_frames, self.frame_size))
                        ok.append(rec)
                    except InputError as e:
                        failed[rec.clip_id] = e.reason
                if windows:
                    enc = model.encode(windows)
                    for j, rec in enumerate(ok):
                        self._write(rec, enc.select([j]))
                    self.stats.computed += len(ok)
                bar.update(len(chunk))
            bar.close()
        if failed:
            self._write_failures(failed)
        if barrier is not None:
            barrier()
        failures = self._read_failures()
        usable = []
        for r in records:
            if self.has(r):
                usable.append(r)
            else:
                self.stats.drops[failures.get(self.key(r), "not_cached")] += 1
        return usable

    def _write(self, record: ClipRecord, enc: EncodedBatch) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in enc.tensors().items()}
        meta = {"format": CACHE_FORMAT, "clip_id": record.clip_id,
                "transcript": json.dumps(enc.transcripts[0]), "encoder_hash": self.enc_hash}
        with atomic_file(self.path(record)) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    def _write_failures(self, failed: dict[str, str]) -> None:
        # one small JSON per failed clip key: readable by every rank after the barrier
        for clip_id, reason in failed.items():
            rec_key = self._keys[clip_id]
            write_json(self.dir / f"{rec_key}.failed.json", {"clip_id": clip_id, "reason": reason})

    def _read_failures(self) -> dict[str, str]:
        out = {}
        for p in self.dir.glob("*.failed.json"):
            try:
                out[p.name.split(".")[0]] = json.loads(p.read_text())["reason"]
            except (OSError, ValueError, KeyError):
                continue
        return out

    # -- reading -------------------------------------------------------------------------------------
    def load(self, record: ClipRecord) -> EncodedBatch:
        """The cached features of one clip (batch of 1), kept in memory after the first read."""
        cid = record.clip_id
        if cid not in self._mem:
            path = self.path(record)
            if not path.is_file():
                raise KeyError(f"clip {cid!r} is not in the feature cache {self.dir}")
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            if meta.get("clip_id") != cid:
                raise ValueError(f"{path}: holds clip {meta.get('clip_id')!r}, expected {cid!r}")
            self._mem[cid] = EncodedBatch.from_tensors(tensors, [json.loads(meta.get("transcript", "null"))])
        return self._mem[cid]

    def batch(self, records: Sequence[ClipRecord]) -> EncodedBatch:
        return EncodedBatch.cat([self.load(r) for r in records])


# -- modality ablations on cached features --------------------------------------------------------------
MODALITY_GROUPS = ("audio", "vision", "text")


def keep_modalities(enc: EncodedBatch, keep: Sequence[str]) -> EncodedBatch:
    """A copy of ``enc`` with every modality not in ``keep`` removed exactly as a missing input is
    (zero features, zero mask; no transcript): used for the single-modality variants of the report."""
    keep = set(keep)
    bad = keep - set(MODALITY_GROUPS)
    if bad:
        raise ValueError(f"unknown modalities {sorted(bad)}; expected {MODALITY_GROUPS}")
    t = {k: v.clone() for k, v in enc.tensors().items()}
    if "audio" not in keep:
        t["audio_tokens"].zero_()
        t["audio_mask"].zero_()
    if "vision" not in keep:  # the face stream is seen in the frames too
        for k in ("global_patches", "global_cls", "global_mask", "temporal_tokens", "temporal_mask",
                  "face_tokens", "face_mask"):
            if k in t:
                t[k].zero_()
    transcripts = list(enc.transcripts) if "text" in keep else [None] * len(enc)
    return EncodedBatch.from_tensors(t, transcripts)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="clip", dynamic_ncols=True)
