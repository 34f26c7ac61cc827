"""Play a bag's input topics over real ROS topics (what `ros2 bag play` does; not installable here).

The raw CDR bytes from the bag are published as they are (rclpy publishers accept serialized bytes),
under the messages' original types, so the node receives exactly what was recorded.

Pacing:
- timed: bag timestamps, scaled by `rate` (1.0 = real time, 2.0 = twice as fast);
- rate 0: as fast as possible (no pacing at all);
- flow control (`flow=True`): publish up to one hop of sensor time past the next window end, then
  wait until the node has published the /emotion/state of that window (or `state_timeout_s` passes),
  so a slow model never has windows dropped from its queue. The player assumes the node's fixed
  window/hop (defaults mirror the node's parameters); with VAD windows it degrades to timeouts.
Before publishing, the player waits for matched subscriptions (discovery takes 0.05-2.8 s here).

Which topics: the bag topics that feed the node's inputs, matched by name and else by message type
(emotion_ros.bags.topic_map), each published under the node's topic name for its type (`inputs`), so a
usb_cam bag (`/image_raw/compressed`) or an audio_common one (`/audio_stamped`, `/audio_info`) reaches the
node unmodified; `mapping` lists what feeds what, `skipped` the bag topics not published and why (no
input type; or a type whose Python package is not installed here, e.g. audio_common_msgs).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from emotion_ros.bags.bag_io import BagReader
from emotion_ros.bags.offline import StateRecord, state_from_msg
from emotion_ros.bags.recorder import reliable_qos
from emotion_ros.config import TopicsConfig
from emotion_ros.ingest.windowing import WindowingConfig
from emotion_ros.bags.typestore import (AUDIO_CHUNK, AUDIO_DATA_STAMPED, AUDIO_INFO, COMPRESSED_IMAGE, EMOTION_STATE,
                                        IMAGE, STRING, TRANSCRIPT, ros_message_class)

NS = 1_000_000_000


@dataclass
class PlayerConfig:
    rate: float = 1.0                       # time scale; 0 = as fast as possible
    flow: bool = False                      # wait for the node's state of each window
    topics: Sequence[str] | None = None     # bag topics to publish (None = those that feed the node's inputs)
    remap: Mapping[str, str] = field(default_factory=dict)  # bag topic -> published topic (wins over inputs)
    inputs: TopicsConfig = field(default_factory=TopicsConfig)  # the node's input topic names
    log: Callable[[str], None] | None = None  # receives the topic mapping lines
    state_topic: str = "/emotion/state"     # where the node publishes (flow control listens here)
    windowing: WindowingConfig = field(default_factory=WindowingConfig)  # the node's (flow control's grid)
    lead_s: float = 0.3                     # sensor time published past a window end before waiting
    state_timeout_s: float = 10.0           # give up waiting for one window's state after this
    tail_timeout_s: float = 3.0             # after the last message: wait this long for final states
    discovery_timeout_s: float = 15.0       # wait at most this long for subscribers ...
    discovery_grace_s: float = 3.0          # ... and this long for the rest once one has matched
    settle_s: float = 1.0                   # after matching: let the subscriber side finish matching too
    require_subscribers: bool = True        # raise when nobody subscribes to any played topic
    min_gap_s: float = 0.005                # smallest wall gap between publications when unpaced: the
                                            # node keeps only 10 messages per topic (KEEP_LAST), bursts overflow it
    qos_depth: int = 100


@dataclass
class PlayStats:
    published: dict[str, int] = field(default_factory=dict)
    states: list[StateRecord] = field(default_factory=list)
    windows_waited: int = 0
    timeouts: int = 0
    unmatched_topics: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    bag_s: float = 0.0
    mapping: list[str] = field(default_factory=list)        # bag topic -> published topic, one line each
    skipped: dict[str, str] = field(default_factory=dict)   # bag topic -> why it was not published
    windows_expected: int | None = None                     # windows the node's windowing cuts from the bag
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        pub = ", ".join(f"{t}: {n}" for t, n in self.published.items())
        states = f"{len(self.states)} states received"
        if self.windows_expected is not None:
            received = len({s.window_index for s in self.states})
            missing = max(0, self.windows_expected - received)
            states += f" of {self.windows_expected} windows expected ({missing} missing)"
        out = (f"published {sum(self.published.values())} messages ({pub}) in {self.wall_s:.1f} s wall for "
               f"{self.bag_s:.1f} s of bag; {states}, {self.timeouts} window timeouts")
        if self.skipped:
            out += "; not published: " + "; ".join(f"{t} ({why})" for t, why in self.skipped.items())
        if self.interrupted:
            out += " (interrupted)"
        return out


class BagPlayer:
    """Publish a bag's input topics on `node` (created when None). Blocking `play()`; thread-safe stop().

    With spin=True (default) the player spins the node on its own executor thread while playing (needed
    for flow control); pass spin=False when your own executor already spins the node.
    """

    def __init__(self, bag: str | Path, config: PlayerConfig | None = None, node=None, spin: bool = True,
                 on_state: Callable[[StateRecord], None] | None = None):
        self.bag = Path(bag)
        self.config = config or PlayerConfig()
        self._own_node = node is None
        self.node = node
        self.spin = spin
        self.on_state = on_state
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._state_ends: list[int] = []
        self._span: tuple[int, int] | None = None  # header stamps published so far: (first, newest)
        self._margin_ns = int((self.config.windowing.window_s + self.config.windowing.hop_s) * NS)
        self.stats = PlayStats()

    # ---------------------------------------------------------------- ROS plumbing
    def _select(self, bag_topics: Mapping[str, str]) -> dict[str, str]:
        """bag topic -> published topic for the topics to play; fills stats.mapping / stats.skipped."""
        from emotion_ros.bags.topic_map import plan_inputs

        cfg = self.config
        t = cfg.inputs
        node_topic = {IMAGE: t.image_topic, COMPRESSED_IMAGE: t.compressed_image_topic, AUDIO_CHUNK: t.audio_topic,
                      AUDIO_DATA_STAMPED: t.audio_stamped_topic, AUDIO_INFO: t.audio_info_topic,
                      STRING: t.transcript_topic, TRANSCRIPT: t.transcript_topic}
        if cfg.topics is not None:
            chosen = {t: cfg.remap.get(t, t) for t in bag_topics if t in cfg.topics}
            self.stats.skipped.update({t: "not among the topics asked for" for t in bag_topics if t not in chosen})
        else:
            plan = plan_inputs(bag_topics, cfg.inputs.configured_inputs())
            chosen = {t: cfg.remap.get(t, node_topic.get(bag_topics[t], t)) for t in plan.feeds.values()}
            self.stats.skipped.update(plan.unused)
        for topic in list(chosen):
            try:
                ros_message_class(bag_topics[topic])
            except (ImportError, AttributeError, ValueError):
                pkg = bag_topics[topic].split("/")[0]
                self.stats.skipped[topic] = (f"{bag_topics[topic]} cannot be published here: Python package {pkg} is "
                                             f"not installed (on a ROS 2 install: apt install ros-$ROS_DISTRO-"
                                             f"{pkg.replace('_', '-')})")
                del chosen[topic]
        self.stats.mapping = [f"{t} [{bag_topics[t]}] -> {out}" for t, out in chosen.items()]
        self.stats.mapping += [f"{t} [{bag_topics[t]}] not published: {why}" for t, why in self.stats.skipped.items()]
        if cfg.log is not None:
            for line in self.stats.mapping:
                cfg.log(line)
        return chosen

    def _setup(self, topics: Mapping[str, str]):
        import rclpy
        from rclpy.qos import DurabilityPolicy

        if self.node is None:
            if not rclpy.ok():
                rclpy.init()
            self.node = rclpy.create_node(f"bag_player_{int(time.time() * 1000) % 100000}")
        qos = reliable_qos(self.config.qos_depth)
        latched = reliable_qos(1)
        latched.durability = DurabilityPolicy.TRANSIENT_LOCAL  # as audio_capture publishes AudioInfo
        self._pubs = {}
        for topic, msgtype in topics.items():
            out = self._out[topic]
            self._pubs[topic] = self.node.create_publisher(
                ros_message_class(msgtype), out, latched if msgtype == AUDIO_INFO else qos)
        self._state_sub = None
        if self.config.flow or self.on_state is not None:
            self._state_sub = self.node.create_subscription(
                ros_message_class(EMOTION_STATE), self.config.state_topic, self._on_state, reliable_qos(100))
        self._executor = None
        self._spin_thread = None
        if self.spin:
            from rclpy.executors import SingleThreadedExecutor

            self._executor = SingleThreadedExecutor(context=self.node.context)
            self._executor.add_node(self.node)
            self._spin_thread = threading.Thread(target=self._spin, daemon=True, name="bag_player_spin")
            self._spin_thread.start()

    def _spin(self):
        while not self._stop.is_set() and self._executor is not None:
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutdown while spinning
                return

    def _teardown(self):
        self._stop.set()
        if self._spin_thread is not None:
            self._spin_thread.join(timeout=2)
        # after Ctrl-C the context may be shut down already: each release is tried, none may raise
        steps = []
        if self._executor is not None:
            steps += [lambda: self._executor.remove_node(self.node), lambda: self._executor.shutdown(timeout_sec=1)]
        steps += [lambda p=pub: self.node.destroy_publisher(p) for pub in self._pubs.values()]
        if self._state_sub is not None:
            steps.append(lambda: self.node.destroy_subscription(self._state_sub))
        if self._own_node:
            steps.append(self.node.destroy_node)
        for step in steps:
            try:
                step()
            except Exception:
                pass
        self._executor = None
        if self._own_node:
            self.node = None

    def _on_state(self, msg) -> None:
        rec = state_from_msg(msg, time.time_ns())
        span = self._span
        with self._cond:
            # A late state of a bag played before this one (the node was still busy with it) is not a state
            # of this bag: counting it let flow control think this bag's windows were done and publish the
            # next bag unpaced (the demo got 3 of 21 states of its second bag). The node can only have cut
            # windows inside the sensor time published so far (header stamps, not the bag's log times).
            if span is not None and span[0] - self._margin_ns <= rec.end_ns <= span[1] + self._margin_ns:
                self.stats.states.append(rec)
                self._state_ends.append(rec.end_ns)
                self._cond.notify_all()
        if self.on_state is not None:
            self.on_state(rec)

    def _wait_for_subscribers(self) -> None:
        cfg = self.config
        start = time.monotonic()
        first_match = None
        while not self._stop.is_set():
            counts = {t: p.get_subscription_count() for t, p in self._pubs.items()}
            state_ok = self._state_sub is None or not cfg.flow or self.node.count_publishers(cfg.state_topic) > 0
            now = time.monotonic()
            if any(counts.values()) and first_match is None:
                first_match = now
            if all(counts.values()) and state_ok:
                break
            if first_match is not None and now - first_match >= cfg.discovery_grace_s and state_ok:
                break
            if now - start >= cfg.discovery_timeout_s:
                break
            if not self.spin:
                import rclpy

                rclpy.spin_once(self.node, timeout_sec=0.05)
            else:
                time.sleep(0.05)
        counts = {t: p.get_subscription_count() for t, p in self._pubs.items()}
        self.stats.unmatched_topics = [t for t, n in counts.items() if n == 0]
        if cfg.require_subscribers and counts and not any(counts.values()):
            raise TimeoutError(
                f"no subscriber matched any of {sorted(self._pubs)} within {cfg.discovery_timeout_s} s "
                "(is the node running, in the same ROS_DOMAIN_ID?)")
        if cfg.flow and self.node.count_publishers(cfg.state_topic) == 0:
            raise TimeoutError(f"flow control needs the node's {cfg.state_topic} publisher; none was discovered")
        if self._state_sub is not None and cfg.flow:
            # the state subscription must be matched too, or the first state could be lost
            end = time.monotonic() + cfg.discovery_timeout_s
            get = getattr(self._state_sub, "get_publisher_count", None)
            while get is not None and get() == 0 and time.monotonic() < end:
                time.sleep(0.05)
        if cfg.settle_s > 0 and not self._stop.is_set():
            # A publisher sees the match before the subscriber has matched it back; samples sent in that
            # gap are lost for volatile subscribers (the node's), so give discovery a moment to finish.
            self._stop.wait(cfg.settle_s)

    # ---------------------------------------------------------------- flow control
    def _wait_window(self, end_ns: int, timeout_s: float) -> bool:
        """Block until a state whose window ended after end_ns - hop arrived (the newest window the node
        can have cut from the data published so far), or timeout. True when it arrived."""
        hop_ns = int(self.config.windowing.hop_s * NS)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._stop.is_set():
                if self._state_ends and max(self._state_ends) > end_ns - hop_ns:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return False

    # ---------------------------------------------------------------- play
    def stop(self) -> None:
        self._stop.set()

    def play(self) -> PlayStats:
        cfg = self.config
        t_wall0 = time.monotonic()
        with BagReader(self.bag) as bag:
            self.stats.warnings += bag.warnings
            self._out = self._select(bag.topics)
            topics = {t: bag.topics[t] for t in self._out}
            if not topics:
                raise ValueError(f"bag {self.bag} has no topic the node takes as input "
                                 f"(it has {sorted(bag.topics)}; " + "; ".join(self.stats.mapping) + ")")
            self.stats.published = {t: 0 for t in topics}
            self._setup(topics)
            try:
                self._wait_for_subscribers()
                self._play_messages(bag, topics)
            finally:
                self.stats.wall_s = time.monotonic() - t_wall0
                self._teardown()
        return self.stats

    def _play_messages(self, bag: BagReader, topics) -> None:
        cfg = self.config
        w = cfg.windowing
        window_ns, hop_ns, lead_ns = int(w.window_s * NS), int(w.hop_s * NS), int(cfg.lead_s * NS)
        anchor_wall = anchor_bag = None
        next_end = None
        latest_sensor = None
        # Per stream: newest header stamp published and the bag time it was logged at. Flow control waits
        # only once EVERY stream is past the window: bags log receive times, and an audio driver publishes
        # a chunk after it is complete, so audio lags the frames in bag order (0.8 s lag: the player waited
        # for a window whose audio it had not sent, the node's idle flush cut it without audio, and the
        # first live windows differed from offline). A stream silent for stall_ns of bag time stops counting.
        newest: dict[str, int] = {}
        logged: dict[str, int] = {}
        stall_ns = int(max(2 * w.window_s, 2.0) * NS)
        first_bag = last_bag = None
        last_pub = 0.0
        for m in bag.messages(topics):
            if self._stop.is_set():
                break
            if first_bag is None:
                first_bag = m.timestamp_ns
            last_bag = m.timestamp_ns
            sensor = m.header_stamp_ns()
            if sensor is not None:
                newest[m.topic] = max(newest.get(m.topic, sensor), sensor)
                logged[m.topic] = m.timestamp_ns
            else:
                sensor = latest_sensor if latest_sensor is not None else m.timestamp_ns
            if cfg.flow:
                if next_end is None:
                    next_end = sensor + window_ns
                live = [newest[t] for t in newest if m.timestamp_ns - logged[t] <= stall_ns]
                reached = min(live) if live else sensor
                while reached > next_end + lead_ns and not self._stop.is_set():
                    self.stats.windows_waited += 1
                    if not self._wait_window(next_end, cfg.state_timeout_s):
                        self.stats.timeouts += 1
                    next_end += hop_ns
                    anchor_wall = None  # waiting broke the real-time schedule: re-anchor
            latest_sensor = sensor if latest_sensor is None else max(latest_sensor, sensor)
            with self._cond:
                self._span = (sensor, latest_sensor) if self._span is None else (self._span[0], latest_sensor)
            if cfg.rate > 0:
                if anchor_wall is None:
                    anchor_wall, anchor_bag = time.monotonic(), m.timestamp_ns
                target = anchor_wall + (m.timestamp_ns - anchor_bag) / NS / cfg.rate
                delay = target - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
            elif cfg.min_gap_s > 0:
                delay = last_pub + cfg.min_gap_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self._pubs[m.topic].publish(m.data)
            last_pub = time.monotonic()
            self.stats.published[m.topic] += 1
        if cfg.flow and next_end is not None and not self._stop.is_set():
            # the last windows: wait for their states, but only as long as states keep coming
            while latest_sensor is not None and next_end <= latest_sensor and not self._stop.is_set():
                self.stats.windows_waited += 1
                if not self._wait_window(next_end, cfg.tail_timeout_s):
                    self.stats.timeouts += 1
                    break
                next_end += hop_ns
            # Windows past the last stamp come from the node's end-of-input flush (after its
            # sensor_timeout_s of silence): take them while they come, within tail_timeout_s.
            # The flush comes sensor_timeout_s after the node's worker went idle, and its window then takes
            # one more window's latency: on a loaded 2-core CI machine that passed the fixed 0.5 s margin
            # this used to have (the last state of a replay was missed), so the margin is two of the slowest
            # window latencies the node reported.
            slowest_s = max((s.latency_ms for s in self.stats.states), default=0.0) / 1e3
            quiet_s = w.sensor_timeout_s + max(0.5, 2 * slowest_s)
            deadline = time.monotonic() + cfg.tail_timeout_s + w.sensor_timeout_s + 2 * slowest_s
            with self._cond:
                seen = len(self.stats.states)
                last_new = time.monotonic()
                while not self._stop.is_set() and time.monotonic() < deadline:
                    if len(self.stats.states) != seen:
                        seen, last_new = len(self.stats.states), time.monotonic()
                    elif time.monotonic() - last_new > quiet_s:
                        break
                    self._cond.wait(0.05)
        if first_bag is not None:
            self.stats.bag_s = (last_bag - first_bag) / NS


def play_bag(bag: str | Path, config: PlayerConfig | None = None, **kwargs) -> PlayStats:
    """Initialise rclpy if needed, play a bag once, return the statistics."""
    import rclpy

    own = not rclpy.ok()
    if own:
        rclpy.init()
    try:
        return BagPlayer(bag, config, **kwargs).play()
    finally:
        if own and rclpy.ok():
            rclpy.shutdown()
