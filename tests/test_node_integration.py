"""The perception node over real rclpy topics (separate process), fed at camera/microphone rates.

Phases: camera+mic, mic only (camera stopped), camera+mic again, camera only (mic stopped). States must
carry stamps inside the published data, labels from the label set, scores summing to 1, and say which
modalities were used; reasoning streams end with a final message whose text is the sum of the deltas.
"""
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PHASE_S = 3.0
PHASES = [("both", True, True), ("audio_only", False, True), ("both_again", True, True), ("vision_only", True, False)]


def _image(stamp, t):
    from sensor_msgs.msg import Image

    from emotion_ros.ingest.image_conversion import rgb_to_image_fields

    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :, 0] = int(127 + 120 * np.sin(t))  # something that changes over time
    rgb[10:30, 20:40] = 200
    msg = Image(encoding="rgb8")
    msg.header.stamp = stamp
    msg.height, msg.width, msg.step, data = rgb_to_image_fields(rgb, "rgb8")
    msg.data = data
    return msg


def _audio(stamp, t0, n=1600):
    from emotion_ros.msg import AudioChunk

    t = t0 + np.arange(n) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    msg = AudioChunk(sample_rate=16000, channels=1, sample_format="S16LE")
    msg.header.stamp = stamp
    msg.data = pcm.tobytes()
    return msg


def test_live_node_states_reasoning_and_sensor_dropouts():
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from emotion_ros.msg import AudioChunk, EmotionReasoning, EmotionState
    from tests.helpers.ros import python_process, spin_until, wait_for_subscribers

    node_proc = python_process(
        "-m", "emotion_ros.nodes.perception_node", "--ros-args", "-p", "profile:=tiny", "-p", "window_s:=1.0",
        "-p", "hop_s:=0.5", "-p", "sensor_timeout_s:=0.4", "-p", "reasoning_every:=3",
        "-p", "reasoning_max_tokens:=6", "-p", "asr:=never", "-p", "queue_size:=2")
    rclpy.init()
    node = rclpy.create_node("integration_driver")
    states, reasoning = [], []
    node.create_subscription(EmotionState, "/emotion/state", states.append, 50)
    node.create_subscription(EmotionReasoning, "/emotion/reasoning", reasoning.append, 200)
    image_pub = node.create_publisher(Image, "/camera/image_raw", 10)
    audio_pub = node.create_publisher(AudioChunk, "/audio", 10)
    text_pub = node.create_publisher(String, "/transcript", 10)
    try:
        # The node subscribes once its model is loaded; fail early with its log if it dies.
        spin_until(node, lambda: audio_pub.get_subscription_count() > 0 or node_proc.poll() is not None, 120)
        assert node_proc.poll() is None, f"node exited: {node_proc.communicate()[0][-3000:]}"
        wait_for_subscribers(node, image_pub)
        clock = node.get_clock()
        spans = {}
        next_frame = next_audio = time.monotonic()
        audio_t = 0.0
        for name, camera_on, mic_on in PHASES:
            start_ns = clock.now().nanoseconds
            end = time.monotonic() + PHASE_S
            if name == "both":
                text_pub.publish(String(data="I am fine, thank you."))
            while time.monotonic() < end:
                now = time.monotonic()
                if camera_on and now >= next_frame:
                    image_pub.publish(_image(clock.now().to_msg(), now))
                    next_frame += 1 / 15
                if now >= next_audio:
                    if mic_on:
                        chunk_stamp = clock.now().nanoseconds - 100_000_000  # stamp = first sample's time
                        audio_pub.publish(_audio(rclpy.time.Time(nanoseconds=chunk_stamp).to_msg(), audio_t))
                        audio_t += 0.1
                    next_audio += 0.1
                rclpy.spin_once(node, timeout_sec=0.005)
            spans[name] = (start_ns, clock.now().nanoseconds)
        spin_until(node, lambda: False, 3.0)  # let the last windows arrive
    finally:
        node.destroy_node()
        rclpy.shutdown()
        node_proc.terminate()
        log = node_proc.communicate(timeout=30)[0]
    assert states, f"no /emotion/state received; node log:\n{log[-3000:]}"

    first, last = min(s for s, _ in spans.values()), max(e for _, e in spans.values())
    by_phase = {name: [] for name in spans}
    for st in states:
        end = st.header.stamp.sec * 10**9 + st.header.stamp.nanosec
        start = st.window_start.sec * 10**9 + st.window_start.nanosec
        assert first - 200_000_000 <= start < end <= last, "window outside the published data"
        assert st.label in st.labels and len(st.scores) == len(st.labels) == 6
        assert sum(st.scores) == pytest.approx(1.0, abs=1e-4)
        assert st.confidence == pytest.approx(max(st.scores), abs=1e-6)
        for name, (a, b) in spans.items():  # windows lying well inside one phase
            if a + 500_000_000 <= start and end <= b:
                by_phase[name].append(st.modalities)
    AUDIO, VISION = EmotionState.MODALITY_AUDIO, EmotionState.MODALITY_VISION
    assert by_phase["both"] and all(m & AUDIO and m & VISION for m in by_phase["both"]), by_phase
    assert by_phase["audio_only"] and all(m & AUDIO and not m & VISION for m in by_phase["audio_only"]), by_phase
    assert by_phase["both_again"] and all(m & AUDIO and m & VISION for m in by_phase["both_again"]), by_phase
    assert by_phase["vision_only"] and all(m & VISION and not m & AUDIO for m in by_phase["vision_only"]), by_phase

    finals = [r for r in reasoning if r.final]
    assert finals, "no final reasoning message"
    label_of = {s.window_index: s.label for s in states}
    for final in finals:
        deltas = "".join(r.delta for r in reasoning if r.window_index == final.window_index)
        assert deltas == final.text
        assert final.window_index in label_of
        # structured think decoding: always well-formed, the answer always in the label set
        assert final.text.startswith("<think>") and final.text.endswith("</answer>"), final.text
        assert final.answer_label in states[0].labels
        assert final.answer_agrees == (final.answer_label == label_of[final.window_index])
