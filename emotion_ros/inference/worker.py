"""Inference off the ROS callbacks: bounded queues (newest window wins) and two worker threads.

The label worker turns each window into an EmotionResult as soon as it can; the reasoning worker streams
text for every Nth result. Neither blocks the subscription callbacks, and both count what they drop.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

from emotion_ros.inference.engine import EmotionResult, InferenceEngine
from emotion_ros.ingest.errors import DropCounter
from emotion_ros.ingest.window import Window


class LatestQueue:
    """A bounded FIFO whose put() never blocks: when full, the OLDEST item is dropped and counted.

    Policy "newest window wins": under overload the node reports the present, not a growing backlog.
    """

    def __init__(self, maxsize: int, on_overflow: Callable[[object], None] = lambda item: None):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._items: deque = deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._on_overflow = on_overflow
        self._closed = False

    def put(self, item) -> None:
        with self._cond:
            if len(self._items) >= self._maxsize:
                self._on_overflow(self._items.popleft())
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None):
        """Next item, or None when closed or on timeout."""
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while not self._items and not self._closed:
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class InferenceWorker:
    """Runs the engine on its own threads and reports through callbacks (the node publishes)."""

    def __init__(
        self,
        engine: InferenceEngine,
        on_state: Callable[[EmotionResult], None],
        on_reasoning: Callable[[EmotionResult, str, str, bool], None] | None = None,
        drops: DropCounter | None = None,
        queue_size: int = 1,
        reasoning_every: int = 0,
        on_error: Callable[[Window, BaseException], None] | None = None,
    ):
        self.engine = engine
        self.drops = drops or DropCounter()
        # Windows not yet scored are evicted when newer ones arrive; reasoning jobs likewise.
        self.windows = LatestQueue(queue_size, self._evicted)
        self.reasoning_jobs = LatestQueue(1, lambda r: self.drops.event("reasoning_skipped_busy"))
        self.on_state = on_state
        self.on_reasoning = on_reasoning
        self.on_error = on_error
        self.reasoning_every = reasoning_every
        self.processed = 0
        self.failed = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pending = 0  # windows submitted and neither scored, failed nor evicted yet
        self._pending_lock = threading.Lock()

    def _evicted(self, window: Window) -> None:
        self.drops.evict("windows", "queue_overflow")
        self._done()

    def _done(self) -> None:
        with self._pending_lock:
            self._pending -= 1

    def start(self) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._label_loop, name="emotion-label", daemon=True)]
        if self.reasoning_every > 0 and self.on_reasoning is not None:
            self._threads.append(threading.Thread(target=self._reasoning_loop, name="emotion-reasoning", daemon=True))
        for t in self._threads:
            t.start()

    def submit(self, window: Window) -> None:
        """Called from ROS callbacks: never blocks."""
        window.meta.setdefault("enqueued_at", time.monotonic())
        with self._pending_lock:
            self._pending += 1
        self.windows.put(window)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.windows.close()
        self.reasoning_jobs.close()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued window has been scored (and published); False on timeout."""
        end = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True

    def idle(self) -> bool:
        """True when no window is queued or being processed (used by flow-controlled replay and tests)."""
        return self._pending == 0

    def _label_loop(self) -> None:
        while not self._stop.is_set():
            window = self.windows.get(timeout=0.2)
            if window is None:
                continue
            try:
                result = self.engine.process(window)
                # Latency from the moment the window was complete (enqueued) to the result.
                result.latency_ms = (time.monotonic() - window.meta["enqueued_at"]) * 1e3
                self.on_state(result)
                self.processed += 1
                if self.reasoning_every > 0 and self.processed % self.reasoning_every == 0:
                    self.reasoning_jobs.put(result)
            except Exception as exc:  # a model failure must not kill the node: count it and go on
                self.failed += 1
                self.drops.evict("windows", "inference_error")
                if self.on_error is not None:
                    self.on_error(window, exc)
            finally:
                self._done()

    def _reasoning_loop(self) -> None:
        while not self._stop.is_set():
            result = self.reasoning_jobs.get(timeout=0.2)
            if result is None:
                continue
            text = ""
            try:
                for delta in self.engine.stream_reasoning(result.window, should_stop=self._stop.is_set):
                    text += delta
                    self.on_reasoning(result, delta, text, False)
                self.on_reasoning(result, "", text, True)
            except Exception as exc:  # close the stream for subscribers, count it, keep the thread alive
                self.drops.event("reasoning_error")
                if self.on_error is not None:
                    self.on_error(result.window, exc)
                try:
                    self.on_reasoning(result, "", text, True)
                except Exception:
                    pass
