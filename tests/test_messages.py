"""(a) The built interfaces round-trip through rclpy publish/subscribe between two processes."""
import math

import pytest

pytestmark = pytest.mark.ros


def test_every_message_type_round_trips_between_processes():
    import rclpy

    from emotion_ros.msg import AudioChunk, EmotionReasoning, EmotionState, Transcript
    from tests.helpers.publish_samples import samples
    from tests.helpers.ros import python_process, spin_until

    expected = samples()
    received = {}
    rclpy.init()
    node = rclpy.create_node("sample_subscriber")
    for topic, msg in expected.items():
        node.create_subscription(type(msg), topic, lambda m, t=topic: received.setdefault(t, m), 10)
    proc = python_process("-m", "tests.helpers.publish_samples")
    try:
        assert spin_until(node, lambda: len(received) == len(expected), timeout=30), (
            f"received only {sorted(received)}; publisher said: {proc.communicate(timeout=30)[0][-2000:]}")
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.wait(30)
    assert proc.returncode == 0

    state = received["/t/state"]
    assert isinstance(state, EmotionState)
    assert (state.label, state.labels, state.window_index, state.task) == ("happy", ["sad", "happy"], 7, "emotion")
    assert list(state.scores) == pytest.approx([0.25, 0.75])
    assert math.isnan(state.valence) and state.arousal == pytest.approx(0.5)
    assert state.modalities == EmotionState.MODALITY_AUDIO | EmotionState.MODALITY_TEXT
    assert state.transcript == expected["/t/state"].transcript  # UTF-8 survives
    assert (state.header.stamp.sec, state.header.stamp.nanosec, state.header.frame_id) == (12, 500, "camera")
    assert state.window_start.sec == 10

    reasoning = received["/t/reasoning"]
    assert isinstance(reasoning, EmotionReasoning)
    assert (reasoning.delta, reasoning.text, reasoning.final, reasoning.window_index) == (" smile", "<think>a smile", False, 7)
    assert reasoning.window_end.sec == 12

    audio = received["/t/audio"]
    assert isinstance(audio, AudioChunk)
    assert bytes(audio.data) == bytes(range(256)) * 4
    assert (audio.sample_rate, audio.channels, audio.sample_format) == (16000, 1, "S16LE")

    text = received["/t/transcript"]
    assert isinstance(text, Transcript)
    assert (text.text, text.language, text.header.stamp.sec, text.end.sec, text.end.nanosec) == ("我今天很高兴", "zh", 4, 5, 250)
