"""The emotion perception node (rclpy lifecycle node): camera + microphone + transcript in, emotion out.

Lifecycle (as the ros2/demos lifecycle talker and ROS4HRI's recognizers do it):
- construction: every parameter of emotion_ros.config.PerceptionConfig is declared with its description;
  /diagnostics is published from now on, carrying the lifecycle state, whatever the state;
- configure: the parameters become one validated PerceptionConfig; the model is loaded, the windower and
  the worker are built, the output publishers are created as lifecycle publishers (inactive). An invalid
  parameter or a model that cannot load fails the transition with one sentence and ERROR on /diagnostics;
- activate: input subscriptions, worker threads, the outputs publish;
- deactivate: inputs stop, the windows already buffered are cut and scored (nothing accepted is lost),
  then the outputs go inactive;
- cleanup / shutdown: model, windower and publishers are released.
Subscription callbacks only convert and buffer; inference runs on worker threads (emotion_ros.inference.worker).

Inputs: sensor_msgs Image / CompressedImage, emotion_ros AudioChunk, std_msgs String, and, where
audio_common_msgs is importable, the standard ROS 2 audio driver's AudioDataStamped with its AudioInfo
(emotion_ros.ingest.audio_conversion.AudioInfoTracker). QoS: each input subscription takes the reliability
and durability of the publishers found on its topic (as `ros2 bag record` does: RELIABLE / TRANSIENT_LOCAL
only when every publisher offers it), so a camera driver publishing with the sensor-data QoS (BEST_EFFORT)
is received; a publisher that appears later with an incompatible QoS raises an incompatible-QoS event,
which is logged, counted on /diagnostics (events/qos_incompatible) and answered by re-subscribing with a
profile that matches it. A publisher on an input topic with another message type (a bag's
emotion_ros/Transcript on a topic the node reads as std_msgs/String) is never matched by the middleware, so
none of its messages arrive; the node looks for such publishers every 0.5 s and logs and counts each one
(events/type_mismatch, events/type_mismatch.<topic>) instead of losing that input unseen. Ctrl-C /
SIGTERM: the node stops its inputs and worker and exits 0 without tracebacks.
"""
from __future__ import annotations

import gc
import logging
import math
import sys
import time
from collections import Counter, deque

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from emotion_ros.msg import AudioChunk, EmotionReasoning, EmotionState, Transcript

from emotion_ros.config import NODE_NAME, PerceptionConfig
from emotion_ros.inference import build_engine
from emotion_ros.inference.engine import EmotionResult
from emotion_ros.inference.worker import InferenceWorker
from emotion_ros.ingest.audio_conversion import AudioInfoTracker, warm_up
from emotion_ros.ingest.errors import DropCounter, InputError
from emotion_ros.ingest.window import modality_names
from emotion_ros.ingest.windowing import Windower
from emotion_ros.model.prompt import parse_answer
from emotion_ros.nodes.hri import expression_for, valence_arousal
from emotion_ros.nodes.parameters import declare_config_parameters, read_config_parameters
from emotion_ros.ingest.stamps import ns_to_time, time_to_ns


class EmotionPerceptionNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        # Parameter problems found while declaring (a wrong type or range in a params file or -p) are
        # reported by configure, as every other configuration error.
        self._parameter_errors = declare_config_parameters(self)
        self.config: PerceptionConfig | None = None
        self.drops = DropCounter()
        self.modalities_seen: Counter = Counter()
        self.stage_ms: dict[str, deque] = {}
        self.engine = None
        self.windower: Windower | None = None
        self.worker: InferenceWorker | None = None
        self._subs = []
        self._pubs = {}
        self._idle_timer = None
        self._last_input = time.monotonic()
        self._flushed = True
        self._hri = None
        self._frame_id = ""
        self._started = time.monotonic()
        self._state = "unconfigured"
        self._error = ""  # why the last configure failed ("" = it did not)
        self._failed_seen = 0  # worker.failed at the previous diagnostics message
        self._audio_info: AudioInfoTracker | None = None
        self._inputs: dict[str, tuple] = {}   # topic -> (type, callback, base QoS) of each input subscription
        self._sub_by_topic: dict[str, object] = {}
        self._sub_qos: dict[str, QoSProfile] = {}  # topic -> the QoS its subscription uses now
        self._qos_recheck: set[str] = set()    # topics whose incompatible-QoS event asks for a re-subscription
        self._mismatch_seen: set[tuple] = set()  # (topic, publisher gid) already reported as another type
        self._qos_timer = None
        self._closing = False                  # shutting down: late worker errors are not failures
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = self.get_parameter("diagnostics_period_s").value
        self._diag_timer = self.create_timer(float(period), self._publish_diagnostics)

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        t = time.monotonic()
        try:
            if self._parameter_errors:
                raise ValueError("; ".join(self._parameter_errors))
            config = read_config_parameters(self)
        except ValueError as exc:  # ConfigError and the dataclasses' own checks
            return self._configure_failed(f"invalid parameters: {exc}")
        engine_cfg = config.engine
        if not config.topics.transcript_topic and engine_cfg.asr == "never":
            self.get_logger().warning("no transcript topic and asr=never: windows will have no text")
        _forward_runtime_log(self.get_logger())
        self.drops = DropCounter()
        self.windower = Windower(config.windowing, counter=self.drops)
        self._audio_info = AudioInfoTracker(config.topics.audio_fallback(), self.drops)
        try:
            self.engine = build_engine(engine_cfg)
        except Exception as exc:  # a clear sentence, not a traceback; the node stays up, unconfigured
            self.windower = None
            return self._configure_failed(f"cannot load model profile {engine_cfg.profile!r}: {exc}")
        warm_up()  # scipy's resampler imports in seconds: not inside the first audio callback
        self.config = config
        reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE,
                              history=QoSHistoryPolicy.KEEP_LAST)
        topics = config.topics
        self._pubs["state"] = self.create_lifecycle_publisher(EmotionState, topics.state_topic, reliable)
        self._pubs["reasoning"] = self.create_lifecycle_publisher(EmotionReasoning, topics.reasoning_topic,
                                                                  reliable)
        self._setup_hri()
        self.worker = InferenceWorker(
            self.engine, on_state=self._publish_state, on_reasoning=self._publish_reasoning, drops=self.drops,
            queue_size=config.node.queue_size, reasoning_every=config.node.reasoning_every,
            on_error=self._on_inference_error,
        )
        self._error = ""
        self._state = "inactive"
        w = config.windowing
        self.get_logger().info(
            f"configured: model {self.engine.model_id}, {len(self.engine.labels)} labels, window {w.window_s} s / "
            f"hop {w.hop_s} s ({w.mode}), loaded in {time.monotonic() - t:.1f} s")
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, why: str) -> TransitionCallbackReturn:
        self.get_logger().error(why)
        self._error = why
        self._state = "unconfigured"
        self._publish_diagnostics()
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        topics = self.config.topics
        depth = topics.input_qos_depth
        reliable = QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE,
                              history=QoSHistoryPolicy.KEEP_LAST)
        image_qos = reliable
        if topics.image_qos == "best_effort":
            image_qos = QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.BEST_EFFORT)
        inputs = [(Image, topics.image_topic, self._on_image, image_qos),
                  (CompressedImage, topics.compressed_image_topic, self._on_compressed, image_qos),
                  (AudioChunk, topics.audio_topic, self._on_audio, reliable),
                  (String, topics.transcript_topic, self._on_transcript, reliable)]
        if topics.transcript_type == "transcript":  # one topic has one type: a stamped span instead
            inputs[-1] = (Transcript, topics.transcript_topic, self._on_stamped_transcript, reliable)
        try:
            from audio_common_msgs.msg import AudioDataStamped, AudioInfo

            latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                                 durability=QoSDurabilityPolicy.TRANSIENT_LOCAL, history=QoSHistoryPolicy.KEEP_LAST)
            inputs += [(AudioDataStamped, topics.audio_stamped_topic, self._on_audio_stamped, reliable),
                       (AudioInfo, topics.audio_info_topic, self._on_audio_info, latched)]
        except ImportError:
            if topics.audio_stamped_topic:
                self.get_logger().info(f"audio_common_msgs not importable: {topics.audio_stamped_topic} "
                                       "(AudioDataStamped) not subscribed")
        self._inputs = {name: (t, cb, qos) for t, name, cb, qos in inputs if name}
        for name in self._inputs:
            self._subscribe(name)
        self._subs = list(self._sub_by_topic.values())
        self.worker.start()
        self._idle_timer = self.create_timer(0.1, self._flush_when_inputs_stop)
        self._qos_timer = self.create_timer(0.5, self._check_inputs)
        self._state = "active"
        self.get_logger().info("active: listening on " + ", ".join(
            f"{t} ({_qos_name(q)})" for t, q in self._sub_qos.items()))
        return super().on_activate(state)

    # ---------------------------------------------------------------- input QoS
    def _subscribe(self, topic: str) -> None:
        """(Re)create one input subscription with the QoS its publishers offer (see the module docstring)."""
        from rclpy.event_handler import SubscriptionEventCallbacks
        from rclpy.event_handler import UnsupportedEventTypeError

        msg_type, callback, base = self._inputs[topic]
        qos = adapted_qos(base, self.get_publishers_info_by_topic(topic))
        old = self._sub_by_topic.pop(topic, None)
        if old is not None:
            self.destroy_subscription(old)
        incompatible = lambda event, t=topic: self._on_incompatible_qos(t, event)  # noqa: E731
        try:
            # message_lost: samples the middleware dropped before our callback saw them (a reader history
            # overflow, a lost fragment of a best-effort sample): counted like any other drop
            events = SubscriptionEventCallbacks(incompatible_qos=incompatible,
                                                message_lost=lambda event, t=topic: self._on_message_lost(t, event))
            sub = self.create_subscription(msg_type, topic, callback, qos, event_callbacks=events)
        except UnsupportedEventTypeError:  # an rmw without the event: the loss cannot be seen, say so once
            self.drops.event("message_lost_not_reported_by_rmw")
            events = SubscriptionEventCallbacks(incompatible_qos=incompatible)
            sub = self.create_subscription(msg_type, topic, callback, qos, event_callbacks=events)
        self._sub_by_topic[topic] = sub
        self._sub_qos[topic] = qos
        self._subs = list(self._sub_by_topic.values())

    def _on_incompatible_qos(self, topic: str, event) -> None:
        policy = getattr(getattr(event, "last_policy_kind", None), "name", str(getattr(event, "last_policy_kind", "")))
        self.drops.event("qos_incompatible")
        self.drops.event(f"qos_incompatible.{topic}")
        self.get_logger().warning(
            f"incompatible QoS on {topic}: a publisher does not offer our {_qos_name(self._sub_qos.get(topic))} "
            f"subscription ({policy}); re-subscribing with the publishers' QoS")
        self._qos_recheck.add(topic)

    def _on_message_lost(self, topic: str, event) -> None:
        n = int(getattr(event, "total_count_change", 1) or 1)
        self.drops.drop(f"message_lost.{topic}", n)
        self.get_logger().warning(f"{topic}: the middleware lost {n} message(s) before the node saw them "
                                  f"({int(getattr(event, 'total_count', n))} in all)", throttle_duration_sec=5.0)

    def _check_inputs(self) -> None:
        self._report_type_mismatches()
        self._resubscribe_incompatible()

    def _report_type_mismatches(self) -> None:
        """Publishers on an input topic with another message type than the subscription's: the middleware
        never matches them, so without this their messages would be lost without a trace."""
        for topic, (msg_type, _, _) in list(self._inputs.items()):
            ours = ros_type_name(msg_type)
            for info in self.get_publishers_info_by_topic(topic):
                key = (topic, bytes(info.endpoint_gid))
                if info.topic_type == ours or key in self._mismatch_seen:
                    continue
                self._mismatch_seen.add(key)
                self.drops.event("type_mismatch")
                self.drops.event(f"type_mismatch.{topic}")
                hint = (" (set transcript_type to match it)" if topic == self.config.topics.transcript_topic
                        else "")
                self.get_logger().warning(
                    f"{topic}: publisher {info.node_namespace.rstrip('/')}/{info.node_name} sends {info.topic_type}, "
                    f"the node reads {ours}: none of its messages can arrive{hint}")

    def _resubscribe_incompatible(self) -> None:
        for topic in list(self._qos_recheck):
            self._qos_recheck.discard(topic)
            if topic in self._inputs and not self._closing:
                self._subscribe(topic)
                self.drops.event("qos_adapted")
                self.get_logger().info(f"{topic}: subscribed with {_qos_name(self._sub_qos[topic])}")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        if self.worker is not None:
            for window in self.windower.flush():  # what is buffered is still scored and published
                self.worker.submit(window)
            self.worker.drain(timeout=30.0)
            self.worker.stop()
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = "finalized"
        self._publish_diagnostics()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._error = self._error or f"error while in {state.label}"
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _stop_inputs(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._sub_by_topic = {}
        for timer in (self._idle_timer, self._qos_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._idle_timer = self._qos_timer = None

    def _release(self) -> None:
        self._stop_inputs()
        self._sub_qos = {}
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        self._hri = None
        self.engine = self.windower = self.config = None

    # ---------------------------------------------------------------- inputs
    # The windower converts, validates and buffers; a bad message is dropped and counted by reason
    # (InputError never escapes a callback). Windows that become complete go to the worker queue.
    def _submit_ready_windows(self, flush: bool = False) -> None:
        self._last_input = time.monotonic()
        self._flushed = flush
        for window in (self.windower.flush() if flush else self.windower.poll()):  # indexed by the windower
            self.worker.submit(window)

    def _flush_when_inputs_stop(self) -> None:
        """When every input has been silent for sensor_timeout_s of wall time (camera and microphone
        stopped, end of a replayed bag), cut the windows the buffered data allows instead of waiting
        for data that may never come."""
        timeout = self.config.windowing.sensor_timeout_s
        if self.worker is not None and not self.worker.idle():
            # silence while a window is being scored is a player waiting for its state (flow control),
            # not the end of the inputs: a flush now would cut the short end-of-data window too early
            self._last_input = time.monotonic()
            return
        if not self._flushed and time.monotonic() - self._last_input > timeout:
            self._submit_ready_windows(flush=True)

    def _on_image(self, msg: Image) -> None:
        self._frame_id = msg.header.frame_id
        self.windower.push_image(time_to_ns(msg.header.stamp), msg.encoding, msg.height, msg.width, msg.step,
                                 msg.data, msg.is_bigendian)
        self._submit_ready_windows()

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._frame_id = msg.header.frame_id
        self.windower.push_compressed_image(time_to_ns(msg.header.stamp), msg.format, msg.data)
        self._submit_ready_windows()

    def _on_audio(self, msg: AudioChunk) -> None:
        self.windower.push_audio_chunk(time_to_ns(msg.header.stamp), msg.sample_rate, msg.channels,
                                       msg.sample_format, msg.data)
        self._submit_ready_windows()

    def _on_audio_stamped(self, msg) -> None:
        """audio_common_msgs/AudioDataStamped: the layout comes from the newest AudioInfo (or the fallback)."""
        try:
            rate, channels, fmt, data = self._audio_info.chunk_fields(msg.audio.data)
        except InputError as err:
            self.drops.drop_error(err)
            return
        self.windower.push_audio_chunk(time_to_ns(msg.header.stamp), rate, channels, fmt, data)
        self._submit_ready_windows()

    def _on_audio_info(self, msg) -> None:
        self._audio_info.update(msg.channels, msg.sample_rate, msg.sample_format, msg.coding_format)

    def _on_inference_error(self, window, exc) -> None:
        if self._closing:  # a window cut short by shutdown (context gone) is not a model failure
            return
        self.get_logger().error(f"inference failed on window {window.index}: {exc!r}")

    def _on_transcript(self, msg: String) -> None:
        # std_msgs/String has no stamp: the text belongs to the newest sensor time seen when it arrives,
        # which holds both live and in bag replay (wall time would not match replayed sensor stamps).
        stamp = self.windower.stats()["now_ns"] or self.get_clock().now().nanoseconds
        self.windower.push_transcript(stamp, msg.data)
        self._submit_ready_windows()

    def _on_stamped_transcript(self, msg: Transcript) -> None:
        # emotion_ros/Transcript: the speech's own span, so the text goes to every window overlapping it
        # (an unset end, 0, means unknown: the start instant only)
        self.windower.push_transcript(time_to_ns(msg.header.stamp), msg.text, time_to_ns(msg.end) or None)
        self._submit_ready_windows()

    # ---------------------------------------------------------------- outputs
    def _publish_state(self, result: EmotionResult) -> None:
        w = result.window
        msg = EmotionState()
        msg.header.stamp = ns_to_time(w.end_ns, Time)
        msg.header.frame_id = self._frame_id
        msg.window_start = ns_to_time(w.start_ns, Time)
        msg.label = result.label
        msg.confidence = float(result.confidence)
        msg.unsure = bool(result.unsure)
        msg.unsure_reason = result.unsure
        if result.unsure:
            self.drops.event(f"unsure_{result.unsure}")
        for stream in result.left_out:  # scored without it: far from the training data (model/calibration.py)
            self.drops.event(f"left_out_{stream}")
        msg.labels = list(result.labels)
        msg.scores = [float(s) for s in result.scores]
        msg.valence = float(result.valence)
        msg.arousal = float(result.arousal)
        msg.modalities = int(result.modalities)
        msg.transcript = result.transcript
        msg.task = result.task
        msg.model_id = result.model_id
        msg.latency_ms = float(result.latency_ms)
        msg.window_index = int(w.index)
        for stage, ms in result.stage_ms.items():
            self.stage_ms.setdefault(stage, deque(maxlen=200)).append(ms)
        self.stage_ms.setdefault("total", deque(maxlen=200)).append(result.latency_ms)
        self.modalities_seen["+".join(modality_names(result.modalities)) or "none"] += 1
        pub = self._pubs.get("state")
        if pub is not None:
            pub.publish(msg)
        if self._hri is not None:
            self._hri(result)

    def _publish_reasoning(self, result: EmotionResult, delta: str, text: str, final: bool) -> None:
        w = result.window
        msg = EmotionReasoning()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._frame_id
        msg.window_start = ns_to_time(w.start_ns, Time)
        msg.window_end = ns_to_time(w.end_ns, Time)
        msg.window_index = int(w.index)
        msg.delta = delta
        msg.text = text
        msg.final = bool(final)
        if final:
            msg.answer_label = parse_answer(text, result.labels) or ""
            msg.answer_agrees = msg.answer_label == result.label
        pub = self._pubs.get("reasoning")
        if pub is not None:
            pub.publish(msg)

    def _setup_hri(self) -> None:
        """ROS4HRI hri_msgs/Expression output, only where hri_msgs is installed."""
        if not self.config.node.publish_hri:
            return
        try:
            from hri_msgs.msg import Expression
        except ImportError:
            self.get_logger().info("hri_msgs not importable: ROS4HRI Expression output skipped")
            return
        pub = self.create_lifecycle_publisher(Expression, self.config.topics.hri_topic, 10)
        self._pubs["hri"] = pub

        def publish(result: EmotionResult) -> None:
            msg = Expression()
            msg.header.stamp = ns_to_time(result.window.end_ns, Time)
            msg.header.frame_id = self._frame_id
            msg.expression = expression_for(result.label)
            msg.valence, msg.arousal = valence_arousal(result.labels, result.scores, result.valence, result.arousal)
            msg.confidence = float(result.confidence)
            pub.publish(msg)

        self._hri = publish

    def log_totals(self) -> None:
        """One line at exit with what the run accepted, dropped and noted (the last /diagnostics may not
        reach anyone): the record of a replay that went wrong."""
        counts = self.drops.snapshot()
        parts = [f"{family} " + ", ".join(f"{k} {v}" for k, v in sorted(counts[family].items()) if v)
                 for family in ("accepted", "dropped", "evicted", "events") if any(counts[family].values())]
        if self.worker is not None:
            parts.append(f"windows processed {self.worker.processed}, failed {self.worker.failed}")
        self.get_logger().info("totals: " + ("; ".join(parts) or "no input"))

    def _publish_diagnostics(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        status = DiagnosticStatus(name=f"{NODE_NAME}: pipeline", hardware_id="emotion_ros")
        counts = self.drops.snapshot()
        values = {"lifecycle/state": self._state}
        if self._error:
            values["error"] = self._error
        values.update({f"rate/{k}_per_s": f"{v / elapsed:.2f}" for k, v in counts["accepted"].items()})
        for family in ("accepted", "dropped", "evicted", "events"):
            values.update({f"{family}/{k}": str(v) for k, v in sorted(counts[family].items()) if v})
        failing = 0
        if self.worker is not None:
            values["windows/processed"] = str(self.worker.processed)
            values["windows/failed"] = str(self.worker.failed)
            values["windows/queued"] = str(len(self.worker.windows))
            failing = self.worker.failed - self._failed_seen
            self._failed_seen = self.worker.failed
        for stage, samples in list(self.stage_ms.items()):
            if samples:
                arr = np.fromiter(list(samples), float)
                values[f"latency_ms/{stage}/p50"] = f"{np.percentile(arr, 50):.1f}"
                values[f"latency_ms/{stage}/p95"] = f"{np.percentile(arr, 95):.1f}"
        values.update({f"modalities/{k}": str(v) for k, v in self.modalities_seen.items()})
        values.update({f"qos/{t}": _qos_name(q) for t, q in self._sub_qos.items()})
        engine = self.engine
        if engine is not None:  # what really runs (after any fallback), not what was asked for
            info = engine.describe()
            values["engine/kind"] = str(info.get("engine", ""))
            values["engine/backend"] = str(info.get("backend", ""))
            values["engine/llm_precision"] = str(info.get("llm_precision", ""))
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        bad = counts["total_dropped"]
        if self._error:
            status.level, status.message = DiagnosticStatus.ERROR, self._error
        elif failing:
            status.level, status.message = DiagnosticStatus.ERROR, f"{failing} windows failed in inference"
        elif bad:
            status.level, status.message = DiagnosticStatus.WARN, f"{bad} inputs dropped (see dropped/*)"
        elif counts["events"].get("qos_incompatible"):
            status.level = DiagnosticStatus.WARN
            status.message = (f"{counts['events']['qos_incompatible']} incompatible-QoS events "
                              "(see events/qos_incompatible.*; re-subscribed with the publishers' QoS)")
        else:
            status.level, status.message = DiagnosticStatus.OK, self._state
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(msg)


class _RosLogHandler(logging.Handler):
    """Forwards the runtime's Python log records (backend choice, fallbacks) to the node's ROS logger."""

    def __init__(self, ros_logger):
        super().__init__(logging.INFO)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        # two call sites: rclpy refuses one call site logging at different severities
        if record.levelno >= logging.WARNING:
            self.ros_logger.warning(record.getMessage())
        else:
            self.ros_logger.info(record.getMessage())


def _forward_runtime_log(ros_logger) -> None:
    runtime_log = logging.getLogger("emotion_ros.inference")
    runtime_log.setLevel(logging.INFO)
    runtime_log.handlers = [h for h in runtime_log.handlers if not isinstance(h, _RosLogHandler)]
    runtime_log.addHandler(_RosLogHandler(ros_logger))


def adapted_qos(base: QoSProfile, publishers) -> QoSProfile:
    """`base` with the reliability and durability its publishers offer: RELIABLE / TRANSIENT_LOCAL only when
    every publisher offers it (what `ros2 bag record` does), so no publisher is incompatible; with no
    publisher yet, `base` (a later BEST_EFFORT publisher raises an incompatible-QoS event, answered then)."""
    pubs = [p.qos_profile for p in publishers]
    if not pubs:
        return base
    qos = QoSProfile(depth=base.depth, history=base.history, reliability=base.reliability,
                     durability=base.durability)
    if any(p.reliability == QoSReliabilityPolicy.BEST_EFFORT for p in pubs):
        qos.reliability = QoSReliabilityPolicy.BEST_EFFORT
    if base.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL and \
            any(p.durability != QoSDurabilityPolicy.TRANSIENT_LOCAL for p in pubs):
        qos.durability = QoSDurabilityPolicy.VOLATILE
    return qos


def ros_type_name(msg_type) -> str:
    """'pkg/msg/Name' of a generated rclpy message class (the form the ROS graph reports)."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


def _qos_name(qos) -> str:
    if qos is None:
        return "?"
    rel = "reliable" if qos.reliability == QoSReliabilityPolicy.RELIABLE else "best_effort"
    dur = "transient_local" if qos.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL else "volatile"
    return f"{rel}/{dur}"


def main(args=None) -> int:
    from emotion_ros.nodes.parameters import init_or_explain

    if not init_or_explain(args, own_signals=True):
        return 2
    node = EmotionPerceptionNode()
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    code = 0
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("configure failed; see the error above")
                return 1
            node.trigger_activate()
        while rclpy.ok() and node._state != "finalized":  # a lifecycle shutdown ends the process
            executor.spin_once(timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        node.get_logger().info("interrupted: stopping")
    finally:
        node._closing = True
        try:
            node.log_totals()
            node._release()  # inputs first, then the worker (its window in flight ends quietly), then outputs
            executor.shutdown(timeout_sec=1)
            node.destroy_node()
        except Exception:  # the context may be gone already (external shutdown)
            pass
        if rclpy.ok():
            rclpy.shutdown()
        # Python's last garbage collection of the model's objects at interpreter exit took 4-5 s (measured
        # in the demo); frozen objects are not collected, so the process ends in ~0.5 s.
        gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(main())
