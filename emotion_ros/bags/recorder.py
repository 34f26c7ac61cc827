"""Record ROS topics into a rosbag2 bag (what `ros2 bag record` does, which is not installable here).

Subscriptions are raw (serialized CDR), so the stored bytes are exactly what was published. The bag
timestamp is the receive time (as in ros2 bag), or optionally the message's header stamp, which makes
recordings of replayed bags comparable with the original.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterable, Mapping

from emotion_ros.bags.bag_io import BagWriter
from emotion_ros.bags.typestore import DEFAULT_TOPICS, OUTPUT_TOPICS, has_header, header_stamp_from_cdr, ros_message_class


def reliable_qos(depth: int = 100):
    from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE, history=QoSHistoryPolicy.KEEP_LAST)


class BagRecorder:
    """Subscribe to `topics` on `node` and write every message to a new bag at `path`.

    topics: {topic: msgtype} or topic names (types from the defaults or from the ROS graph).
    stamp: "receive" (wall clock at arrival, like ros2 bag) or "header" (header stamp where the type has one).
    Call start(), spin the node (any executor), then stop(); counts are in `.counts`.
    """

    def __init__(self, node, path: str | Path, topics: Mapping[str, str] | Iterable[str] = OUTPUT_TOPICS,
                 storage: str = "mcap", stamp: str = "receive", qos=None, overwrite: bool = False):
        if stamp not in ("receive", "header"):
            raise ValueError("stamp must be 'receive' or 'header'")
        self.node = node
        self.path = Path(path)
        self.storage = storage
        self.stamp = stamp
        self.qos = qos or reliable_qos()
        self.overwrite = overwrite
        self.topics = dict(topics) if isinstance(topics, Mapping) else {t: DEFAULT_TOPICS.get(t) for t in topics}
        self.counts: dict[str, int] = {t: 0 for t in self.topics}
        self._writer: BagWriter | None = None
        self._subs = []
        self._lock = threading.Lock()

    def _resolve_types(self) -> None:
        missing = [t for t, ty in self.topics.items() if not ty]
        if not missing:
            return
        graph = dict(self.node.get_topic_names_and_types())
        for topic in missing:
            types = graph.get(topic)
            if not types:
                raise ValueError(f"type of {topic} unknown: give it as {{topic: type}} or start its publisher first")
            self.topics[topic] = types[0]

    def start(self) -> "BagRecorder":
        self._resolve_types()
        self._writer = BagWriter(self.path, storage=self.storage, overwrite=self.overwrite).open()
        for topic, msgtype in self.topics.items():
            self._writer.add_topic(topic, msgtype)
            headered = has_header(msgtype)
            sub = self.node.create_subscription(
                ros_message_class(msgtype), topic, self._callback(topic, msgtype, headered), self.qos, raw=True)
            self._subs.append(sub)
        return self

    def _callback(self, topic: str, msgtype: str, headered: bool):
        def on_message(data: bytes) -> None:
            t = time.time_ns()
            if self.stamp == "header" and headered:
                t = header_stamp_from_cdr(data) or t
            with self._lock:
                if self._writer is None:
                    return
                self._writer.write(topic, t, data, msgtype)
                self.counts[topic] += 1

        return on_message

    def count_matched(self) -> dict[str, int]:
        """Publishers seen per recorded topic (discovery check before a test starts publishing)."""
        return {t: self.node.count_publishers(t) for t in self.topics}

    def stop(self) -> dict[str, int]:
        with self._lock:
            for sub in self._subs:
                self.node.destroy_subscription(sub)
            self._subs = []
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        return dict(self.counts)

    def __enter__(self) -> "BagRecorder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
