"""User cache for converted backbone weights.

Converting the packaged weights (CTranslate2 -> safetensors, GGUF -> HF folder, .pth -> safetensors)
is slow, so it happens once and the result lives in a per-user cache directory:
``$EMOTION_ROS_CACHE`` if set, else ``~/.cache/emotion_ros``. Every entry is written to a temporary
name and renamed into place, so a crash or a second process never leaves a half-written entry, and
each entry carries a ``meta.json`` naming the sha256 of the source it was made from.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from emotion_ros.io import atomic_dir, sha256_file

ENV_VAR = "EMOTION_ROS_CACHE"
META_NAME = "meta.json"


def cache_dir() -> Path:
    """The cache root ($EMOTION_ROS_CACHE or ~/.cache/emotion_ros), created if missing."""
    root = os.environ.get(ENV_VAR)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "emotion_ros"
    path.mkdir(parents=True, exist_ok=True)
    return path


def entry_dir(name: str) -> Path:
    """Path of one cache entry (a directory); not created."""
    return cache_dir() / name


@contextlib.contextmanager
def lock(name: str) -> Iterator[None]:
    """Inter-process lock so two nodes starting together convert an entry only once."""
    lock_path = cache_dir() / f".{name}.lock"
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def build_entry(name: str, source_key: dict[str, Any], build: Callable[[Path], None],
                verify_files: bool = False) -> Path:
    """The cache entry ``name`` for ``source_key``; when missing or stale, ``build(tmp)`` fills a temporary
    folder (files + META) that then replaces the entry as a whole. Checked again under the inter-process
    lock, so nodes starting together build it once."""
    entry = entry_dir(name)
    if entry_is_valid(entry, source_key, verify_files):
        return entry
    with lock(name):
        if not entry_is_valid(entry, source_key, verify_files):
            with atomic_dir(entry) as tmp:
                build(tmp)
    return entry


def read_meta(entry: Path) -> dict[str, Any] | None:
    """The entry's meta.json, or None if the entry is missing or unreadable."""
    try:
        return json.loads((entry / META_NAME).read_text())
    except (OSError, ValueError):
        return None


def entry_is_valid(entry: Path, source_key: dict[str, Any], verify_files: bool = False) -> bool:
    """True if ``entry`` was built from ``source_key`` and all its recorded files are present.

    ``source_key`` identifies the source (package, version, sha256 ...). The files listed in
    meta["files"] must exist with the recorded size; with ``verify_files`` their sha256 is checked too
    (slow for the 1 GB LLM, so warm start-up checks sizes only).
    """
    meta = read_meta(entry)
    if meta is None or meta.get("source") != source_key:
        return False
    for rel, rec in meta.get("files", {}).items():
        path = entry / rel
        if not path.is_file() or path.stat().st_size != rec["size"]:
            return False
        if verify_files and sha256_file(path) != rec["sha256"]:
            return False
    return True


def describe_files(entry: Path, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """{relative name: {size, sha256}} for the files of an entry (all regular files if names is None)."""
    if names is None:
        names = sorted(
            str(p.relative_to(entry)) for p in entry.rglob("*") if p.is_file() and p.name != META_NAME
        )
    return {n: {"size": (entry / n).stat().st_size, "sha256": sha256_file(entry / n)} for n in names}
