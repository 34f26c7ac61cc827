"""The live node with a robot's drivers (issue 17): audio_common AudioDataStamped + AudioInfo and usb_cam's
compressed topic replayed from a bag written by the `mcap` writer, ROS4HRI Expression out, a camera that
publishes with the sensor-data QoS. The test-only audio_common_msgs / hri_msgs packages
(tests/helpers/interfaces.py, same definitions and type hashes as the real ones) are built once per run."""
import math
import threading
import time

import numpy as np
import pytest

from tests.helpers.robot_bags import write_robot_bag

pytestmark = [pytest.mark.ros, pytest.mark.slow]
NS = 1_000_000_000
NODE_ARGS = ("-p", "profile:=tiny", "-p", "checkpoint:=''", "-p", "label_set:=MER6", "-p", "reasoning_every:=0",
             "-p", "window_s:=2.0", "-p", "hop_s:=0.5", "-p", "window_mode:=fixed", "-p", "asr:=never",
             "-p", "llm_precision:=float32")


@pytest.fixture(scope="module")
def interfaces():
    from tests.helpers import interfaces as I

    try:
        env = I.test_interfaces()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    I.activate_in_process()
    return env


def _stop(proc) -> str:
    import signal

    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=30)[0]
    except Exception:
        proc.kill()
        return proc.communicate()[0]


def test_interface_packages_have_the_upstream_type_hashes(interfaces):
    import json

    from emotion_ros.bags.typestore import project_typestore
    from tests.helpers.interfaces import installed_prefix

    store = project_typestore()
    for pkg, name in [("audio_common_msgs", "AudioDataStamped"), ("audio_common_msgs", "AudioInfo"),
                      ("hri_msgs", "Expression")]:
        desc = json.loads((installed_prefix() / "share" / pkg / "msg" / f"{name}.json").read_text())
        (rosidl,) = [h["hash_string"] for h in desc["type_hashes"] if h["type_name"] == f"{pkg}/msg/{name}"]
        assert rosidl == store.hash_rihs01(f"{pkg}/msg/{name}")


def test_audio_common_bag_live_agrees_with_offline_from_the_first_window_and_hri_expression(interfaces, tmp_path):
    import rclpy
    from hri_msgs.msg import Expression

    from emotion_ros.bags.offline import OfflineRunner
    from emotion_ros.bags.player import BagPlayer, PlayerConfig
    from emotion_ros.config import PerceptionConfig
    from emotion_ros.inference import build_engine
    from emotion_ros.nodes.hri import EXPRESSIONS
    from tests.helpers.ros import python_process

    bag = tmp_path / "rec.mcap"
    # /image_raw/compressed, /audio_stamped, /audio_info, logged at receive times as ros2 bag record does:
    # audio 0.35 s after its stamps (a 100 ms chunk is published once complete), frames 30 ms after theirs
    write_robot_bag(bag, sample_rate=48_000, channels=2, audio_receive_delay_s=0.8, image_receive_delay_s=0.03)
    node = python_process("-m", "emotion_ros.nodes.perception_node", "--ros-args", *NODE_ARGS, env=interfaces)
    log = ""
    expressions = []
    try:
        config = PerceptionConfig.load("", profile="tiny", checkpoint="", label_set="MER6", asr="never",
                                       window_s=2.0, hop_s=0.5, window_mode="fixed", llm_precision="float32")
        offline = OfflineRunner(build_engine(config.engine), config).run(bag)
        context = rclpy.context.Context()
        rclpy.init(context=context)
        try:
            player_node = rclpy.create_node("robot_bag_player", context=context)
            player_node.create_subscription(Expression, config.topics.hri_topic, expressions.append, 50)
            lines = []
            stats = BagPlayer(bag, PlayerConfig(flow=True, rate=2.0, windowing=config.windowing, inputs=config.topics,
                                                discovery_timeout_s=90, state_timeout_s=30, log=lines.append),
                              node=player_node).play()
            time.sleep(0.5)
            player_node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
    finally:
        log = _stop(node)
    assert node.returncode == 0 and "Traceback" not in log, log
    assert "/audio_stamped [audio_common_msgs/msg/AudioDataStamped] -> /audio_stamped" in lines
    assert "/image_raw/compressed [sensor_msgs/msg/CompressedImage] -> /camera/image_raw/compressed" in lines
    assert any(line.startswith("/tf [tf2_msgs/msg/TFMessage] not published: not an input type") for line in lines)
    live = sorted(stats.states, key=lambda s: s.window_index)
    assert live, log
    assert stats.timeouts == 0, log
    # every window, from the first, carries audio and vision live as offline, with the same labels
    assert [(s.window_index, s.start_ns, s.end_ns, s.modalities) for s in live] == \
           [(s.window_index, s.start_ns, s.end_ns, s.modalities) for s in offline.states], log
    assert all(s.modalities & 3 == 3 for s in live)
    assert [s.label for s in live] == [s.label for s in offline.states]
    # ROS4HRI Expression: one per state, a constant of the message, the state's confidence and stamp
    assert len(expressions) == len(live), log
    by_stamp = {s.end_ns: s for s in live}
    for msg in expressions:
        stamp = msg.header.stamp.sec * NS + msg.header.stamp.nanosec
        state = by_stamp[stamp]
        assert msg.expression in EXPRESSIONS and msg.header.frame_id == "camera"
        assert msg.confidence == pytest.approx(state.confidence, abs=1e-6)
        assert -1.0 <= msg.valence <= 1.0 and -1.0 <= msg.arousal <= 1.0


def test_camera_with_sensor_data_qos_gives_states_with_vision(tmp_path):
    """A BEST_EFFORT camera (the sensor-data QoS of most drivers) against the node's default RELIABLE
    image subscription: the node adapts, says so on /diagnostics, and its states carry vision."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from emotion_ros.bags.clips import synthetic_audio, synthetic_frame
    from emotion_ros.ingest.audio_conversion import mono_to_chunk_bytes
    from emotion_ros.msg import AudioChunk, EmotionState
    from tests.helpers.ros import python_process, spin_until

    node = python_process("-m", "emotion_ros.nodes.perception_node", "--ros-args", *NODE_ARGS,
                          "-p", "compressed_image_topic:=''", "-p", "transcript_topic:=''")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    states, diags = [], []
    try:
        ros = rclpy.create_node("sensor_data_camera", context=context)
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=context)
        executor.add_node(ros)
        cam = ros.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        mic = ros.create_publisher(AudioChunk, "/audio", 50)
        ros.create_subscription(EmotionState, "/emotion/state", states.append, 50)
        ros.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
        assert spin_until(ros, lambda: cam.get_subscription_count() > 0 and mic.get_subscription_count() > 0,
                          90, executor), "the node did not subscribe"
        spin_until(ros, lambda: False, 1.0, executor)  # let the subscriber side finish matching
        t0 = time.time_ns()
        audio = synthetic_audio("happy", 4.0)
        for k in range(40):  # 4 s at 10 Hz, real time
            t = t0 + k * NS // 10
            rgb = np.ascontiguousarray(synthetic_frame("happy", k / 10, (64, 48)))
            img = Image(height=48, width=64, encoding="rgb8", step=192)
            img.header.stamp.sec, img.header.stamp.nanosec = divmod(t, NS)
            img.data = rgb.tobytes()
            cam.publish(img)
            chunk = AudioChunk(sample_rate=16000, channels=1, sample_format="S16LE")
            chunk.header.stamp.sec, chunk.header.stamp.nanosec = divmod(t, NS)
            chunk.data = mono_to_chunk_bytes(audio[k * 1600:(k + 1) * 1600])
            mic.publish(chunk)
            spin_until(ros, lambda: False, 0.1, executor)
        spin_until(ros, lambda: len(states) >= 4, 30, executor)
        # a BEST_EFFORT publisher appearing later on an input the node subscribed RELIABLE: an
        # incompatible-QoS event, which the node reports and answers by re-subscribing
        ros.create_publisher(AudioChunk, "/audio", qos_profile_sensor_data)
        diags.clear()
        def adapted():  # the event is counted first, the re-subscription follows on the node's 0.5 s timer
            values = {kv.key: kv.value for d in diags for st in d.status for kv in st.values}
            return "events/qos_incompatible" in values and values.get("qos//audio", "").startswith("best_effort")

        spin_until(ros, adapted, 20, executor)
        # a publisher of another type on an input topic (another participant: one participant cannot have
        # two types on one topic): DDS never matches it, the node names it
        from std_msgs.msg import String

        other = rclpy.context.Context()
        rclpy.init(context=other)
        try:
            wrong = rclpy.create_node("wrong_type", context=other)
            wrong_pub = wrong.create_publisher(String, "/audio", 10)  # noqa: F841 (kept alive while we wait)
            spin_until(ros, lambda: "events/type_mismatch./audio" in {
                kv.key for d in diags for st in d.status for kv in st.values}, 20, executor)
            spin_until(ros, lambda: False, 1.5, executor)  # a few more checks: still counted once
        finally:
            rclpy.shutdown(context=other)
    finally:
        log = _stop(node)
        rclpy.shutdown(context=context)
    assert states, log
    assert all(s.modalities & 2 for s in states), [s.modalities for s in states]
    assert "best_effort" in log and "/camera/image_raw" in log, log
    assert node.returncode == 0 and "Traceback" not in log and "inference failed" not in log, log
    values = {kv.key: kv.value for d in diags for st in d.status for kv in st.values}
    assert values.get("qos//camera/image_raw", "").startswith("best_effort"), values
    assert int(values.get("events/qos_incompatible./audio", 0)) >= 1, values
    assert values.get("qos//audio", "").startswith("best_effort"), values  # re-subscribed with the new QoS
    assert "incompatible QoS on /audio" in log, log
    assert int(values.get("events/type_mismatch./audio", 0)) == 1, values  # once per publisher, not per check
    assert "/audio: publisher /wrong_type sends std_msgs/msg/String, the node reads emotion_ros/msg/AudioChunk" in log, log
