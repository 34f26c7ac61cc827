"""Offline mode: a bag straight through the node's windowing + inference code, without DDS.

Deterministic and as fast as the model: messages are taken in bag order, decoded with the same
conversion functions the node uses, pushed into the same `Windower` (header stamps; transcripts get
the newest sensor stamp seen, as in the node), and every window is scored by the same
`InferenceEngine`. No queue, so no window is dropped. Output: the EmotionState records the live node
would publish (same fields, same window stamps and indices), as `StateRecord`s and, if asked, as an
EmotionState bag identical in layout to one recorded from the node.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from emotion_ros.bags.bag_io import BagError, BagReader, BagWriter
from emotion_ros.bags.typestore import (AUDIO_CHUNK, AUDIO_DATA_STAMPED, EMOTION_STATE, IMAGE, TIME, TRANSCRIPT,
                                        header_msg, project_typestore)
from emotion_ros.ingest.stamps import NS, msg_stamp_ns, ns_to_time, time_to_ns


@dataclass
class StateRecord:
    """One /emotion/state in plain Python (from a recorded bag, a live subscription or offline mode)."""

    start_ns: int
    end_ns: int
    label: str
    confidence: float
    labels: list[str]
    scores: list[float]
    modalities: int = 0
    transcript: str = ""
    reasoning: str = ""
    latency_ms: float = math.nan
    window_index: int = 0
    model_id: str = ""
    task: str = ""
    valence: float = math.nan
    arousal: float = math.nan
    frame_id: str = ""
    receive_ns: int | None = None  # bag timestamp when recorded; None offline
    unsure_reason: str = ""  # EmotionState.unsure_reason ('' = sure)

    def to_dict(self) -> dict:
        return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in self.__dict__.items()}


def state_from_msg(msg, receive_ns: int | None = None) -> StateRecord:
    """StateRecord from an EmotionState (rosbags or rclpy message object)."""
    start = time_to_ns(msg.window_start)
    return StateRecord(
        start_ns=start, end_ns=msg_stamp_ns(msg), label=str(msg.label), confidence=float(msg.confidence),
        labels=[str(x) for x in msg.labels], scores=[float(x) for x in msg.scores],
        modalities=int(msg.modalities), transcript=str(msg.transcript), reasoning=str(msg.reasoning),
        latency_ms=float(msg.latency_ms), window_index=int(msg.window_index), model_id=str(msg.model_id),
        task=str(msg.task), valence=float(msg.valence), arousal=float(msg.arousal),
        unsure_reason=str(getattr(msg, "unsure_reason", "")),
        frame_id=str(msg.header.frame_id), receive_ns=receive_ns,
    )


def state_from_result(result, frame_id: str = "") -> StateRecord:
    """StateRecord from an engine EmotionResult, filled exactly as the node fills EmotionState."""
    w = result.window
    return StateRecord(
        start_ns=int(w.start_ns), end_ns=int(w.end_ns), label=result.label, confidence=float(result.confidence),
        labels=list(result.labels), scores=[float(s) for s in result.scores], modalities=int(result.modalities),
        transcript=result.transcript or "", reasoning=getattr(result, "reasoning", "") or "",
        latency_ms=float(result.latency_ms), window_index=int(w.index), model_id=result.model_id,
        task=result.task, valence=float(result.valence), arousal=float(result.arousal), frame_id=frame_id,
        unsure_reason=result.unsure,
    )


def state_to_msg(rec: StateRecord, store=None):
    """The rosbags EmotionState message of a record (for writing state bags)."""
    store = store or project_typestore()
    State = store.types[EMOTION_STATE]
    return State(
        header=header_msg(store, rec.end_ns, rec.frame_id), window_start=ns_to_time(rec.start_ns, store.types[TIME]),
        label=rec.label, confidence=float(rec.confidence), labels=list(rec.labels),
        scores=np.asarray(rec.scores, dtype=np.float32), valence=float(rec.valence), arousal=float(rec.arousal),
        unsure=bool(rec.unsure_reason), unsure_reason=rec.unsure_reason,
        modalities=int(rec.modalities), transcript=rec.transcript, reasoning=rec.reasoning, task=rec.task,
        model_id=rec.model_id, latency_ms=float(rec.latency_ms), window_index=int(rec.window_index),
    )


def read_states(path: str | Path, topic: str = "/emotion/state") -> list[StateRecord]:
    """EmotionState records stored in a bag (recorded from the node or written by offline mode)."""
    with BagReader(path) as bag:
        if topic not in bag.topics:
            raise BagError(path, "no_states", f"Bag '{path}' has no {topic} topic (topics: {sorted(bag.topics)}).")
        return [state_from_msg(msg, m.timestamp_ns) for m, msg in bag.decoded([topic])]


@dataclass
class OfflineResult:
    """What one bag gave: the states, and the account of every input message (nothing silently skipped).

    topics: bag topic -> {"input": the input it fed or None, "type", "read", "accepted", "dropped"};
    unused: bag topic -> why it fed nothing; mapping: the printed topic mapping lines;
    drops: the DropCounter snapshot (dropped by reason, accepted/evicted per stream, events);
    accounting: the windower's per-stream accounting (accepted = used + evicted + buffered + lost, lost 0).
    """

    states: list[StateRecord] = field(default_factory=list)
    drops: dict = field(default_factory=dict)
    messages: int = 0
    windows: int = 0
    topics: dict = field(default_factory=dict)
    unused: dict = field(default_factory=dict)
    mapping: list[str] = field(default_factory=list)
    accounting: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class OfflineRunner:
    """Runs bags through a Windower + `engine.process` in one thread, deterministically.

    engine: anything with .process(Window) -> EmotionResult (emotion_ros.inference.engine.InferenceEngine).
    config: the PerceptionConfig whose windowing and topics the node would use (default: launch/perceive.yaml);
    its topic names are matched against the bag's by name and else by message type (bags/topic_map.py),
    and its audio_fallback_* fields give the format of audio_common audio before an AudioInfo is seen.
    windower_factory: (drops) -> a fresh windower per bag (default: emotion_ros.ingest.windowing.Windower with
    config.windowing); it must offer push_frame/push_audio/push_transcript/poll like the node uses.
    flush: at the end of a bag, cut what the buffered data allows (the live node does the same once its
    inputs have been silent for sensor_timeout_s).
    log: called with each line of the topic mapping (e.g. print), so the user sees what feeds what.
    """

    def __init__(self, engine, config=None, windower_factory: Callable | None = None, flush: bool = True,
                 log: Callable[[str], None] | None = None):
        from emotion_ros.config import PerceptionConfig

        self.engine = engine
        self.config = config or PerceptionConfig.load()
        self.windower_factory = windower_factory or self._windower
        self.topics = self.config.topics
        self.flush = flush
        self.audio_fallback = self.topics.audio_fallback()
        self.log = log

    def _windower(self, drops):
        from emotion_ros.ingest.windowing import Windower

        return Windower(self.config.windowing, counter=drops)

    def run(self, bag_path: str | Path, progress: bool = False,
            on_state: Callable[[StateRecord], None] | None = None) -> OfflineResult:
        from emotion_ros.bags.topic_map import plan_inputs
        from emotion_ros.ingest.audio_conversion import AudioInfoTracker
        from emotion_ros.ingest.errors import DropCounter, InputError

        drops = DropCounter()
        windower = self.windower_factory(drops)
        audio_info = AudioInfoTracker(self.audio_fallback, drops)
        result = OfflineResult()
        latest_sensor_ns = 0
        frame_id = ""

        def emit(windows):
            for window in windows:
                window.index = result.windows
                result.windows += 1
                state = state_from_result(self.engine.process(window), frame_id)
                result.states.append(state)
                if on_state is not None:
                    on_state(state)

        with BagReader(bag_path) as bag:
            plan = plan_inputs(bag.topics, self.topics.configured_inputs())
            result.mapping = plan.lines(Path(bag_path).name)
            result.unused = dict(plan.unused)
            result.warnings += bag.warnings  # corrupt chunks: named, skipped, the rest is used
            if self.log is not None:
                for line in result.mapping:
                    self.log(f"{Path(bag_path).name}: {line}")
            kind_of = {topic: kind for kind, topic in plan.feeds.items()}
            result.topics = {t: {"input": kind_of.get(t), "type": ty, "read": 0, "accepted": 0, "dropped": 0}
                             for t, ty in bag.topics.items()}
            iterator = bag.decoded(sorted(kind_of))
            if progress:
                from tqdm import tqdm

                total = sum(n for t, n in bag.message_counts.items() if t in kind_of)
                iterator = tqdm(iterator, total=total, desc=Path(bag_path).name, unit="msg", leave=False)
            for m, msg in iterator:
                result.messages += 1
                account = result.topics[m.topic]
                account["read"] += 1
                kind = kind_of[m.topic]
                ok = False
                try:
                    if kind == "image":
                        frame_id = msg.header.frame_id
                        stamp = msg_stamp_ns(msg)
                        ok = (_push_image if m.msgtype == IMAGE else _push_compressed)(windower, stamp, msg)
                        if ok:
                            latest_sensor_ns = max(latest_sensor_ns, stamp)
                    elif kind == "audio":
                        stamp = msg_stamp_ns(msg)
                        if m.msgtype == AUDIO_CHUNK:
                            fields = (msg.sample_rate, msg.channels, msg.sample_format, bytes(msg.data))
                        else:  # audio_common AudioDataStamped: the layout comes from AudioInfo
                            fields = audio_info.chunk_fields(bytes(msg.audio.data))
                        ok = _push_audio(windower, stamp, *fields)
                        if ok:  # as in the node: the newest sensor time is the END of the chunk
                            rate, channels, fmt, data = fields
                            n = len(data) // max(1, (2 if str(fmt).upper() == "S16LE" else 4) * int(channels))
                            latest_sensor_ns = max(latest_sensor_ns, stamp + n * NS // max(1, int(rate)))
                    elif kind == "audio_info":
                        audio_info.update(msg.channels, msg.sample_rate, msg.sample_format, msg.coding_format)
                        ok = True
                    elif kind == "transcript" and m.msgtype == TRANSCRIPT:
                        # stamped with the span of its speech: every window overlapping it gets the text
                        ok = windower.push_transcript(msg_stamp_ns(msg), msg.text, time_to_ns(msg.end) or None) is not False
                    elif kind == "transcript":
                        # as in the node: a String has no stamp, it belongs to the newest sensor time
                        ok = windower.push_transcript(latest_sensor_ns or m.timestamp_ns, msg.data) is not False
                    windows = windower.poll()
                except InputError as err:
                    drops.drop(err.reason)
                    account["dropped"] += 1
                    continue
                account["accepted" if ok else "dropped"] += 1
                emit(windows)
            if self.flush and hasattr(windower, "flush"):
                emit(windower.flush())
        result.drops = drops.snapshot()
        if hasattr(windower, "accounting"):
            result.accounting = windower.accounting()
        if audio_info.infos_seen == 0 and "audio" in plan.feeds and bag.topics[plan.feeds["audio"]] == AUDIO_DATA_STAMPED:
            fb = self.audio_fallback
            result.warnings.append(
                f"{Path(bag_path).name}: no audio_common AudioInfo in the bag; its audio was read as "
                + (f"{fb.sample_rate} Hz, {fb.channels} channel(s), {fb.sample_format} (the fallback format)"
                   if fb else "nothing (no fallback format: every chunk dropped as audio_no_info)"))
        return result

    def run_to_bag(self, bag_path, out_path, topic: str = "/emotion/state", storage: str = "mcap",
                   progress: bool = False) -> OfflineResult:
        """Run a bag and write its states to a new bag (timestamps = window ends)."""
        result = self.run(bag_path, progress=progress)
        store = project_typestore()
        with BagWriter(out_path, storage=storage) as writer:
            writer.add_topic(topic, EMOTION_STATE)
            for rec in result.states:
                writer.write(topic, rec.end_ns, state_to_msg(rec, store), EMOTION_STATE)
        return result


class _NoModel:
    """An engine stand-in that labels nothing: counts the windows the windowing cuts (no model run)."""

    def process(self, window):
        from emotion_ros.inference.engine import EmotionResult

        return EmotionResult(window=window, label="", labels=[], scores=[], confidence=0.0, modalities=0,
                             transcript="", task="", model_id="", latency_ms=math.nan)


def expected_windows(bag_path, config=None) -> int:
    """How many windows the node's windowing (config.windowing) cuts from a bag, with the end-of-input
    flush the node does after its inputs stop: what a replay is measured against (missing = expected -
    received)."""
    return OfflineRunner(_NoModel(), config, flush=True).run(bag_path).windows


# The node's message -> windower steps. The Windower's own converting wrappers are used when it has them
# (what the node calls); otherwise the conversion functions + push_frame/push_audio (small fakes in tests).
def _push_image(windower, stamp: int, msg) -> bool:
    if hasattr(windower, "push_image"):
        return windower.push_image(stamp, msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data),
                                   msg.is_bigendian)
    from emotion_ros.ingest.image_conversion import image_to_rgb

    rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data), msg.is_bigendian)
    return windower.push_frame(stamp, rgb) is not False


def _push_compressed(windower, stamp: int, msg) -> bool:
    if hasattr(windower, "push_compressed_image"):
        return windower.push_compressed_image(stamp, msg.format, bytes(msg.data))
    from emotion_ros.ingest.image_conversion import compressed_to_rgb

    return windower.push_frame(stamp, compressed_to_rgb(msg.format, bytes(msg.data))) is not False


def _push_audio(windower, stamp: int, sample_rate, channels, sample_format, data) -> bool:
    if hasattr(windower, "push_audio_chunk"):
        return windower.push_audio_chunk(stamp, sample_rate, channels, sample_format, data)
    from emotion_ros.ingest.audio_conversion import chunk_to_mono

    samples = chunk_to_mono(sample_rate, channels, sample_format, data)
    if isinstance(samples, tuple):  # (samples, clipped)
        samples = samples[0]
    return windower.push_audio(stamp, samples) is not False
