"""The emotion perception node (rclpy lifecycle node).

configure: load the model profile and checkpoint, build the windower.
activate:  subscribe to camera/audio/transcript, start the inference threads, publish states.
deactivate / cleanup: stop work / release the model.
Subscription callbacks only convert and buffer; inference runs on worker threads (emotion_ros.inference.worker).
"""
from __future__ import annotations

import logging
import math
import sys
import time
from collections import Counter, deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, QoSHistoryPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from emotion_ros.msg import AudioChunk, EmotionReasoning, EmotionState

from emotion_ros.ingest.audio_conversion import warm_up
from emotion_ros.inference.engine import EmotionResult, EngineConfig, InferenceEngine
from emotion_ros.inference import build_engine
from emotion_ros.ingest.errors import DropCounter
from emotion_ros.app.launch_config import resolve_path
from emotion_ros.model.prompt import LABEL_SETS, parse_answer
from emotion_ros.ingest.window import modality_names
from emotion_ros.ingest.windowing import Windower, WindowingConfig
from emotion_ros.inference.worker import InferenceWorker
from emotion_ros.nodes.ros_time import ns_to_stamp, stamp_to_ns

NODE_NAME = "emotion_perception"

# Every parameter, declared up front with its default (the YAML in launch/ overrides them).
PARAMETERS = {
    "profile": "tiny",                 # model profile: tiny | nano | paper
    "checkpoint": "",                  # folder of trained fusion/adapter/LoRA weights ("" = untrained)
    "backend": "torch",                # torch | onnxruntime | tensorrt (falls back with a warning)
    "optimised": True,                 # streaming caches of emotion_ros/runtime (False = plain engine)
    "llm_precision": "float32",        # float32 | bfloat16 | float16 | mixed (CPU: bf16 prompt + int8 decode, fastest)
    "label_set": "MER6",               # named label set (MER6, MELD7, SENTIMENT3, IEMOCAP4) ...
    "labels": [""],                    # ... or an explicit list, which wins when non-empty
    "task": "emotion",                 # task id of the label path
    "image_topic": "/camera/image_raw",
    "compressed_image_topic": "",      # e.g. /camera/image_raw/compressed ("" = off)
    "audio_topic": "/audio",
    "transcript_topic": "/transcript",  # "" = no transcript topic: the node transcribes (profile with ASR)
    "state_topic": "/emotion/state",
    "reasoning_topic": "/emotion/reasoning",
    "image_qos": "reliable",           # reliable | best_effort (see README: large images + best_effort drop)
    "input_qos_depth": 50,             # subscription queue depth: bursts (bag replay) must not overflow it
    "window_s": 2.0,
    "hop_s": 0.5,
    "window_mode": "fixed",            # fixed | vad | both
    "sensor_timeout_s": 1.0,
    "queue_size": 1,                   # windows waiting for inference; when full the oldest is dropped
    "reasoning_every": 1,              # stream reasoning for every Nth state; 0 = off
    "reasoning_task": "think",
    "reasoning_max_tokens": 64,
    "reasoning_repetition_penalty": 1.0,  # > 1 (e.g. 1.3) discourages repeated tokens in the reasoning text
    "asr": "auto",                     # auto | always | never (not on/off: YAML reads those as booleans)
    "publish_hri": True,               # also hri_msgs/Expression when hri_msgs is importable
    "hri_topic": "/humans/faces/anonymous/expression",
    "diagnostics_period_s": 1.0,
    "autostart": True,                 # configure + activate on start (no lifecycle manager needed)
    "seed": 0,
}


class EmotionPerceptionNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        self.drops = DropCounter()
        self.modalities_seen: Counter = Counter()
        self.stage_ms: dict[str, deque] = {}
        self.engine: InferenceEngine | None = None
        self.windower: Windower | None = None
        self.worker: InferenceWorker | None = None
        self._subs = []
        self._pubs = {}
        self._timer = self._idle_timer = None
        self._last_input = time.monotonic()
        self._flushed = True
        self._hri = None
        self._frame_id = ""
        self._started = time.monotonic()

    # ---------------------------------------------------------------- lifecycle
    def p(self, name):
        return self.get_parameter(name).value

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        labels = [x for x in (self.p("labels") or []) if x]
        if not labels:
            name = self.p("label_set")
            if name not in LABEL_SETS:
                self.get_logger().error(f"unknown label_set {name!r}; known: {sorted(LABEL_SETS)}")
                return TransitionCallbackReturn.FAILURE
            labels = list(LABEL_SETS[name])
        config = EngineConfig(
            profile=self.p("profile"), checkpoint=resolve_path(self.p("checkpoint")), labels=tuple(labels),
            task=self.p("task"), reasoning_task=self.p("reasoning_task"),
            reasoning_max_tokens=int(self.p("reasoning_max_tokens")),
            reasoning_repetition_penalty=float(self.p("reasoning_repetition_penalty")),
            asr=self.p("asr"), seed=int(self.p("seed")), backend=self.p("backend"),
            optimised=bool(self.p("optimised")), llm_precision=self.p("llm_precision"),
        )
        if not self.p("transcript_topic") and config.asr == "never":
            self.get_logger().warning("no transcript topic and asr=never: windows will have no text")
        t = time.monotonic()
        runtime_log = logging.getLogger("emotion_ros.inference")
        runtime_log.setLevel(logging.INFO)
        runtime_log.handlers = [h for h in runtime_log.handlers if not isinstance(h, _RosLogHandler)]
        runtime_log.addHandler(_RosLogHandler(self.get_logger()))
        try:
            self.windower = Windower(self._windowing_config(), counter=self.drops)
        except ValueError as exc:
            self.get_logger().error(f"bad windowing parameters: {exc}")
            return TransitionCallbackReturn.FAILURE
        try:
            self.engine = build_engine(config, config.backend, config.optimised)
        except Exception as exc:  # a clear sentence, not a traceback, and the node stays up unconfigured
            self.get_logger().error(f"cannot load model profile {config.profile!r}: {exc}")
            return TransitionCallbackReturn.FAILURE
        warm_up()  # scipy's resampler imports in seconds: not inside the first audio callback
        self.get_logger().info(
            f"configured: model {self.engine.model_id}, {len(labels)} labels, "
            f"window {self.p('window_s')} s / hop {self.p('hop_s')} s ({self.p('window_mode')}), "
            f"loaded in {time.monotonic() - t:.1f} s"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        depth = int(self.p("input_qos_depth"))
        reliable = QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE, history=QoSHistoryPolicy.KEEP_LAST)
        image_qos = reliable
        if self.p("image_qos") == "best_effort":
            image_qos = QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.BEST_EFFORT)
        self._pubs["state"] = self.create_publisher(EmotionState, self.p("state_topic"), reliable)
        self._pubs["reasoning"] = self.create_publisher(EmotionReasoning, self.p("reasoning_topic"), reliable)
        self._pubs["diagnostics"] = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._subs = [self.create_subscription(Image, self.p("image_topic"), self._on_image, image_qos)]
        if self.p("compressed_image_topic"):
            self._subs.append(self.create_subscription(
                CompressedImage, self.p("compressed_image_topic"), self._on_compressed, image_qos))
        self._subs.append(self.create_subscription(AudioChunk, self.p("audio_topic"), self._on_audio, reliable))
        if self.p("transcript_topic"):
            self._subs.append(self.create_subscription(String, self.p("transcript_topic"), self._on_transcript, reliable))
        self._setup_hri()
        self.worker = InferenceWorker(
            self.engine, on_state=self._publish_state, on_reasoning=self._publish_reasoning, drops=self.drops,
            queue_size=int(self.p("queue_size")), reasoning_every=int(self.p("reasoning_every")),
            on_error=lambda w, e: self.get_logger().error(f"inference failed on window {w.index}: {e!r}"),
        )
        self.worker.start()
        self._timer = self.create_timer(float(self.p("diagnostics_period_s")), self._publish_diagnostics)
        self._idle_timer = self.create_timer(0.1, self._flush_when_inputs_stop)
        self.get_logger().info("active: listening on " + ", ".join(s.topic_name for s in self._subs))
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.engine = None
        self.windower = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self):
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        for timer in (self._timer, self._idle_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._timer = self._idle_timer = None
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}

    def _windowing_config(self) -> WindowingConfig:
        return WindowingConfig(
            window_s=float(self.p("window_s")), hop_s=float(self.p("hop_s")), mode=self.p("window_mode"),
            sensor_timeout_s=float(self.p("sensor_timeout_s")),
        )

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
        if not self._flushed and time.monotonic() - self._last_input > float(self.p("sensor_timeout_s")):
            self._submit_ready_windows(flush=True)

    def _on_image(self, msg: Image) -> None:
        self._frame_id = msg.header.frame_id
        self.windower.push_image(stamp_to_ns(msg.header.stamp), msg.encoding, msg.height, msg.width, msg.step,
                                 msg.data, msg.is_bigendian)
        self._submit_ready_windows()

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._frame_id = msg.header.frame_id
        self.windower.push_compressed_image(stamp_to_ns(msg.header.stamp), msg.format, msg.data)
        self._submit_ready_windows()

    def _on_audio(self, msg: AudioChunk) -> None:
        self.windower.push_audio_chunk(stamp_to_ns(msg.header.stamp), msg.sample_rate, msg.channels,
                                       msg.sample_format, msg.data)
        self._submit_ready_windows()

    def _on_transcript(self, msg: String) -> None:
        # std_msgs/String has no stamp: the text belongs to the newest sensor time seen when it arrives,
        # which holds both live and in bag replay (wall time would not match replayed sensor stamps).
        stamp = self.windower.stats()["now_ns"] or self.get_clock().now().nanoseconds
        self.windower.push_transcript(stamp, msg.data)
        self._submit_ready_windows()

    # ---------------------------------------------------------------- outputs
    def _publish_state(self, result: EmotionResult) -> None:
        w = result.window
        msg = EmotionState()
        msg.header.stamp = ns_to_stamp(w.end_ns)
        msg.header.frame_id = self._frame_id
        msg.window_start = ns_to_stamp(w.start_ns)
        msg.label = result.label
        msg.confidence = float(result.confidence)
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
        msg.window_start = ns_to_stamp(w.start_ns)
        msg.window_end = ns_to_stamp(w.end_ns)
        msg.window_index = int(w.index)
        msg.delta = delta
        msg.text = text
        msg.final = bool(final)
        if final:
            msg.answer_label = parse_answer(text, result.labels) or ""
        pub = self._pubs.get("reasoning")
        if pub is not None:
            pub.publish(msg)

    def _setup_hri(self) -> None:
        """ROS4HRI hri_msgs/Expression output, only where hri_msgs is installed."""
        if not self.p("publish_hri"):
            return
        try:
            from hri_msgs.msg import Expression
        except ImportError:
            self.get_logger().info("hri_msgs not importable: ROS4HRI Expression output skipped")
            return
        pub = self.create_publisher(Expression, self.p("hri_topic"), 10)
        self._pubs["hri"] = pub

        def publish(result: EmotionResult) -> None:
            msg = Expression()
            msg.header.stamp = ns_to_stamp(result.window.end_ns)
            msg.expression = HRI_EXPRESSIONS.get(result.label, result.label)
            msg.valence = 0.0 if math.isnan(result.valence) else float(result.valence)
            msg.arousal = 0.0 if math.isnan(result.arousal) else float(result.arousal)
            msg.confidence = float(result.confidence)
            pub.publish(msg)

        self._hri = publish

    def _publish_diagnostics(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        status = DiagnosticStatus(name=f"{NODE_NAME}: pipeline", hardware_id="emotion_ros")
        counts = self.drops.snapshot()
        values = {f"rate/{k}_per_s": f"{v / elapsed:.2f}" for k, v in counts["accepted"].items()}
        for family in ("accepted", "dropped", "evicted", "events"):
            values.update({f"{family}/{k}": str(v) for k, v in sorted(counts[family].items()) if v})
        if self.worker is not None:
            values["windows/processed"] = str(self.worker.processed)
            values["windows/failed"] = str(self.worker.failed)
            values["windows/queued"] = str(len(self.worker.windows))
        for stage, samples in list(self.stage_ms.items()):
            if samples:
                arr = np.fromiter(list(samples), float)
                values[f"latency_ms/{stage}/p50"] = f"{np.percentile(arr, 50):.1f}"
                values[f"latency_ms/{stage}/p95"] = f"{np.percentile(arr, 95):.1f}"
        values.update({f"modalities/{k}": str(v) for k, v in self.modalities_seen.items()})
        engine = self.engine
        if engine is not None:  # what really runs (after any fallback), not what was asked for
            info = engine.describe() if hasattr(engine, "describe") else {"engine": "reference", "backend": "torch"}
            values["engine/kind"] = str(info.get("engine", ""))
            values["engine/backend"] = str(info.get("backend", ""))
            values["engine/llm_precision"] = str(info.get("llm_precision", "float32"))
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        bad = counts["total_dropped"]
        status.level = DiagnosticStatus.WARN if bad else DiagnosticStatus.OK
        status.message = f"{bad} inputs dropped (see dropped/*)" if bad else "ok"
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        pub = self._pubs.get("diagnostics")
        if pub is not None:
            pub.publish(msg)


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


# Our labels -> ROS4HRI hri_msgs/Expression constants (others are passed through unchanged).
HRI_EXPRESSIONS = {
    "happy": "happy", "joy": "happy", "sad": "sad", "sadness": "sad", "angry": "angry", "anger": "angry",
    "surprise": "surprised", "fear": "scared", "worried": "worried", "disgust": "disgusted",
    "neutral": "neutral",
}


def main(args=None) -> int:
    rclpy.init(args=args)
    node = EmotionPerceptionNode()
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        if node.p("autostart"):
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("configure failed; see the error above")
                return 1
            node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._teardown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
