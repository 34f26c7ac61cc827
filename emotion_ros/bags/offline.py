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
from emotion_ros.bags.typestore import (AUDIO_CHUNK, COMPRESSED_IMAGE, EMOTION_STATE, IMAGE, STRING, TIME,
                                        TRANSCRIPT, header_msg, project_typestore)
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
    states: list[StateRecord] = field(default_factory=list)
    drops: dict = field(default_factory=dict)
    messages: int = 0
    windows: int = 0


class OfflineRunner:
    """Runs bags through a Windower + `engine.process` in one thread, deterministically.

    engine: anything with .process(Window) -> EmotionResult (emotion_ros.inference.engine.InferenceEngine).
    config: the PerceptionConfig whose windowing and topics the node would use (default: launch/perceive.yaml).
    windower_factory: (drops) -> a fresh windower per bag (default: emotion_ros.ingest.windowing.Windower with
    config.windowing); it must offer push_frame/push_audio/push_transcript/poll like the node uses.
    flush: at the end of a bag, cut what the buffered data allows (the live node does the same once its
    inputs have been silent for sensor_timeout_s).
    """

    def __init__(self, engine, config=None, windower_factory: Callable | None = None, flush: bool = True):
        from emotion_ros.config import PerceptionConfig

        self.engine = engine
        self.config = config or PerceptionConfig.load()
        self.windower_factory = windower_factory or self._windower
        self.topics = self.config.topics
        self.flush = flush

    def _windower(self, drops):
        from emotion_ros.ingest.windowing import Windower

        return Windower(self.config.windowing, counter=drops)

    def run(self, bag_path: str | Path, progress: bool = False,
            on_state: Callable[[StateRecord], None] | None = None) -> OfflineResult:
        from emotion_ros.ingest.errors import DropCounter, InputError

        drops = DropCounter()
        windower = self.windower_factory(drops)
        result = OfflineResult()
        latest_sensor_ns = 0
        frame_id = ""
        t = self.topics
        wanted = {t.image_topic, t.audio_topic, t.transcript_topic, t.compressed_image_topic} - {""}

        def emit(windows):
            for window in windows:
                window.index = result.windows
                result.windows += 1
                state = state_from_result(self.engine.process(window), frame_id)
                result.states.append(state)
                if on_state is not None:
                    on_state(state)

        with BagReader(bag_path) as bag:
            iterator = bag.decoded(t for t in bag.topics if t in wanted)
            if progress:
                from tqdm import tqdm

                total = sum(n for t, n in bag.message_counts.items() if t in wanted)
                iterator = tqdm(iterator, total=total, desc=Path(bag_path).name, unit="msg", leave=False)
            for m, msg in iterator:
                result.messages += 1
                try:
                    if m.topic == t.image_topic and m.msgtype == IMAGE:
                        frame_id = msg.header.frame_id
                        stamp = msg_stamp_ns(msg)
                        if _push_image(windower, stamp, msg):
                            latest_sensor_ns = max(latest_sensor_ns, stamp)
                    elif m.topic == t.compressed_image_topic and m.msgtype == COMPRESSED_IMAGE:
                        frame_id = msg.header.frame_id
                        stamp = msg_stamp_ns(msg)
                        if _push_compressed(windower, stamp, msg):
                            latest_sensor_ns = max(latest_sensor_ns, stamp)
                    elif m.topic == t.audio_topic and m.msgtype == AUDIO_CHUNK:
                        stamp = msg_stamp_ns(msg)
                        if _push_audio(windower, stamp, msg):
                            # as in the node: the newest sensor time is the END of the chunk
                            n = len(msg.data) // max(1, (2 if msg.sample_format == "S16LE" else 4) * msg.channels)
                            latest_sensor_ns = max(latest_sensor_ns, stamp + n * NS // max(1, msg.sample_rate))
                    elif m.topic == t.transcript_topic and m.msgtype == STRING:
                        # as in the node: a String has no stamp, it belongs to the newest sensor time
                        windower.push_transcript(latest_sensor_ns or m.timestamp_ns, msg.data)
                    elif m.topic == t.transcript_topic and m.msgtype == TRANSCRIPT:
                        # stamped with the span of its speech: every window overlapping it gets the text
                        windower.push_transcript(msg_stamp_ns(msg), msg.text, time_to_ns(msg.end) or None)
                    else:
                        drops.drop("unexpected_type")
                        continue
                    windows = windower.poll()
                except InputError as err:
                    drops.drop(err.reason)
                    continue
                emit(windows)
            if self.flush and hasattr(windower, "flush"):
                emit(windower.flush())
        result.drops = drops.snapshot()
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


def _push_audio(windower, stamp: int, msg) -> bool:
    if hasattr(windower, "push_audio_chunk"):
        return windower.push_audio_chunk(stamp, msg.sample_rate, msg.channels, msg.sample_format, bytes(msg.data))
    from emotion_ros.ingest.audio_conversion import chunk_to_mono

    samples = chunk_to_mono(msg.sample_rate, msg.channels, msg.sample_format, bytes(msg.data))
    if isinstance(samples, tuple):  # (samples, clipped)
        samples = samples[0]
    return windower.push_audio(stamp, samples) is not False
