"""Bad-input errors and the counters that make every drop visible.

The perception node must never crash on a malformed message and never drop one silently: conversion
code raises `InputError` with a short machine-readable `reason`, the caller counts it in a
`DropCounter`, and the node publishes `DropCounter.snapshot()` on /diagnostics.
"""
from __future__ import annotations

import threading
from collections import Counter

import numpy as np


class InputError(Exception):
    """A message (or one field of it) that cannot be used.

    `reason` is a short snake_case key (e.g. "image_step_too_small") used as the diagnostics counter
    name; `message` is for humans (logs).
    """

    def __init__(self, reason: str, message: str = ""):
        self.reason = str(reason)
        self.message = message or self.reason
        super().__init__(f"{self.reason}: {self.message}")


def byte_view(data, reason: str) -> memoryview:
    """A flat uint8 view of a message's data field (bytes, bytearray, memoryview, array.array('B') as
    rclpy gives it, ndarray, or a list of ints), without copying where possible; InputError(reason) else."""
    try:
        mv = memoryview(data)
    except TypeError:
        if not isinstance(data, (list, tuple)):
            raise InputError(reason, f"data must be a bytes-like object, got {type(data).__name__}") from None
        try:
            mv = memoryview(np.asarray(data, dtype=np.uint8))
        except (ValueError, OverflowError, TypeError) as exc:
            raise InputError(reason, f"data list is not uint8: {exc}") from None
    if not mv.c_contiguous:
        mv = memoryview(bytes(mv))
    return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv


class DropCounter:
    """Thread-safe tallies for /diagnostics.

    Four families, all plain integer counters keyed by a string:
      - accepted[stream]: items taken into a buffer (e.g. "frames", "audio", "transcript");
      - dropped[reason]: items rejected, by InputError reason;
      - evicted["stream.reason"]: accepted items later thrown away unused (e.g. too old, clock jump);
      - events[name]: things worth seeing that lose nothing (clipping, clock jumps, skipped windows).
    Together with what was used or is still buffered, accepted items are fully accounted for.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._accepted: Counter = Counter()
        self._dropped: Counter = Counter()
        self._evicted: Counter = Counter()
        self._events: Counter = Counter()

    def accept(self, stream: str, n: int = 1) -> None:
        with self._lock:
            self._accepted[stream] += n

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._dropped[reason] += n

    def drop_error(self, err: InputError) -> None:
        """Count an InputError by its reason."""
        self.drop(err.reason)

    def evict(self, stream: str, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        with self._lock:
            self._evicted[f"{stream}.{reason}"] += n

    def event(self, name: str, n: int = 1) -> None:
        if n <= 0:
            return
        with self._lock:
            self._events[name] += n

    def dropped(self, reason: str | None = None) -> int:
        """Count for one reason, or the total over all reasons."""
        with self._lock:
            if reason is None:
                return sum(self._dropped.values())
            return self._dropped.get(reason, 0)

    def accepted(self, stream: str) -> int:
        with self._lock:
            return self._accepted.get(stream, 0)

    def evicted(self, stream: str) -> int:
        """Total evicted items of one stream over all reasons."""
        prefix = stream + "."
        with self._lock:
            return sum(v for k, v in self._evicted.items() if k.startswith(prefix))

    def snapshot(self) -> dict:
        """A consistent copy: {"accepted": {...}, "dropped": {...}, "evicted": {...}, "events": {...},
        "total_dropped": int}."""
        with self._lock:
            return {
                "accepted": dict(self._accepted),
                "dropped": dict(self._dropped),
                "evicted": dict(self._evicted),
                "events": dict(self._events),
                "total_dropped": sum(self._dropped.values()),
            }

    def reset(self) -> None:
        with self._lock:
            self._accepted.clear()
            self._dropped.clear()
            self._evicted.clear()
            self._events.clear()
