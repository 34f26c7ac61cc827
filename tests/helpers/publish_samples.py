"""Publishes one sample of each emotion_ros message (run as a separate process by test_messages.py)."""
import sys
import time

import rclpy

from emotion_ros.msg import AudioChunk, EmotionReasoning, EmotionState, Transcript


def samples():
    state = EmotionState(label="happy", confidence=0.75, labels=["sad", "happy"], scores=[0.25, 0.75],
                         valence=float("nan"), arousal=0.5, modalities=EmotionState.MODALITY_AUDIO | EmotionState.MODALITY_TEXT,
                         transcript="I am so glad — très content", reasoning="", task="emotion", model_id="tiny",
                         latency_ms=12.5, window_index=7)
    state.header.stamp.sec, state.header.stamp.nanosec, state.header.frame_id = 12, 500, "camera"
    state.window_start.sec = 10
    reasoning = EmotionReasoning(window_index=7, delta=" smile", text="<think>a smile", final=False, answer_label="")
    reasoning.window_end.sec = 12
    audio = AudioChunk(sample_rate=16000, channels=1, sample_format=AudioChunk.FORMAT_S16LE, data=bytes(range(256)) * 4)
    audio.header.stamp.sec = 3
    transcript = Transcript(text="我今天很高兴", language="zh")
    transcript.header.stamp.sec, transcript.end.sec, transcript.end.nanosec = 4, 5, 250
    return {"/t/state": state, "/t/reasoning": reasoning, "/t/audio": audio, "/t/transcript": transcript}


def main():
    rclpy.init()
    node = rclpy.create_node("sample_publisher")
    pubs = {topic: node.create_publisher(type(msg), topic, 10) for topic, msg in samples().items()}
    end = time.monotonic() + 20
    while time.monotonic() < end and not all(p.get_subscription_count() for p in pubs.values()):
        rclpy.spin_once(node, timeout_sec=0.05)
    for _ in range(40):  # repeat: the subscriber keeps the first copy of each
        for topic, msg in samples().items():
            pubs[topic].publish(msg)
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
