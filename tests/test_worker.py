"""Inference worker: newest window wins, evictions are counted, reasoning never holds up the labels."""
import threading
import time

from emotion_ros.inference.engine import EmotionResult
from emotion_ros.ingest.errors import DropCounter
from emotion_ros.ingest.window import Window
from emotion_ros.inference.worker import InferenceWorker, LatestQueue


class FakeEngine:
    """Stands in for InferenceEngine: a fixed cost per label pass and per reasoning token."""

    def __init__(self, label_s=0.05, token_s=0.05, tokens=20, fail_on=()):
        self.label_s, self.token_s, self.tokens, self.fail_on = label_s, token_s, tokens, set(fail_on)
        self.lock = threading.Lock()

    def process(self, window):
        if window.index in self.fail_on:
            raise RuntimeError("boom")
        with self.lock:
            time.sleep(self.label_s)
        return EmotionResult(window=window, label="happy", labels=["sad", "happy"], scores=[0.2, 0.8],
                             confidence=0.8, modalities=0, transcript="", task="emotion", model_id="fake")

    def stream_reasoning(self, window, should_stop=lambda: False):
        for i in range(self.tokens):
            if should_stop():
                return
            with self.lock:  # the real engine holds its lock per token, like this
                time.sleep(self.token_s)
            yield f" t{i}"


def test_latest_queue_drops_oldest_and_reports_it():
    dropped = []
    q = LatestQueue(2, dropped.append)
    for i in range(5):
        q.put(i)
    assert dropped == [0, 1, 2] and [q.get(0), q.get(0), q.get(0)] == [3, 4, None]


def test_overload_keeps_newest_windows_and_counts_the_rest():
    drops = DropCounter()
    states = []
    worker = InferenceWorker(FakeEngine(label_s=0.1), on_state=states.append, drops=drops, queue_size=1)
    worker.start()
    for i in range(20):  # 20 windows in 0.2 s while each takes 0.1 s
        worker.submit(Window(start_ns=i, end_ns=i + 1, index=i))
        time.sleep(0.01)
    time.sleep(0.5)
    worker.stop()
    done = [s.window.index for s in states]
    assert done[-1] == 19, "the newest window must be processed"
    assert done == sorted(done)
    assert len(done) + drops.evicted("windows") == 20, "every window is either processed or counted"


def test_reasoning_never_blocks_label_path_and_streams_complete_texts():
    states, chunks = [], []
    engine = FakeEngine(label_s=0.02, token_s=0.03, tokens=10)
    worker = InferenceWorker(engine, on_state=states.append,
                             on_reasoning=lambda r, d, t, f: chunks.append((r.window.index, d, t, f)),
                             queue_size=4, reasoning_every=1)
    worker.start()
    t0 = time.monotonic()
    for i in range(4):
        worker.submit(Window(start_ns=i, end_ns=i + 1, index=i))
    while len(states) < 4 and time.monotonic() - t0 < 5:
        time.sleep(0.005)
    labels_done = time.monotonic() - t0
    time.sleep(1.0)
    worker.stop()
    # 4 labels at 20 ms each, interleaved with at most one 30 ms token each: far below one full reasoning
    # text (10 tokens = 300 ms) per label.
    assert len(states) == 4 and labels_done < 0.6, labels_done
    finals = [c for c in chunks if c[3]]
    assert finals
    for index, _, text, _ in finals:
        assert "".join(d for i, d, _, f in chunks if i == index) == text


def test_model_failure_is_counted_and_the_worker_goes_on():
    drops, errors, states = DropCounter(), [], []
    worker = InferenceWorker(FakeEngine(fail_on={1}), on_state=states.append, drops=drops, queue_size=8,
                             on_error=lambda w, e: errors.append(w.index))
    worker.start()
    for i in range(3):
        worker.submit(Window(start_ns=i, end_ns=i + 1, index=i))
    time.sleep(0.5)
    worker.stop()
    assert [s.window.index for s in states] == [0, 2] and errors == [1]
    assert drops.evicted("windows") == 1


def test_fair_lock_alternates_between_two_busy_threads():
    from emotion_ros.inference.engine import FairLock

    lock, order = FairLock(), []

    def busy(name):
        for _ in range(20):
            with lock:
                order.append(name)
                time.sleep(0.001)

    threads = [threading.Thread(target=busy, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # once both are running, neither holds the lock twice in a row while the other waits: the first run
    # (before the second thread starts, which can take a while on a loaded machine) and the last one
    # (after the other thread has finished) do not count
    runs = "".join(order).replace("ab", "a b").replace("ba", "b a").split()
    assert len(order) == 40 and len(runs) >= 10, "".join(order)
    assert max(len(run) for run in runs[1:-1]) <= 3, "".join(order)
