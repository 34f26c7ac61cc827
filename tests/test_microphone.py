"""The microphone node: one clear sentence without a device; correct chunks and stamps with one."""
import subprocess
import sys
import types

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_without_input_device_the_node_exits_with_one_sentence():
    pytest.importorskip("pyaudio")
    proc = subprocess.run([sys.executable, "-m", "emotion_ros.nodes.microphone_node"], capture_output=True,
                          text=True, timeout=60)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2
    assert len(lines) == 1 and "no usable audio input device" in lines[0], proc.stderr


class _FakeStream:
    def __init__(self, callback):
        self.callback = callback

    def start_stream(self):
        pass

    def stop_stream(self):
        pass

    def close(self):
        pass


def _fake_pyaudio(streams):
    class PyAudio:
        def get_default_input_device_info(self):
            return {"index": 0}

        def open(self, **kw):
            streams.append(_FakeStream(kw["stream_callback"]))
            return streams[-1]

        def terminate(self):
            pass

    return types.SimpleNamespace(PyAudio=PyAudio, paInt16=8, paContinue=0)


def test_chunks_carry_pcm_and_capture_stamps(monkeypatch):
    import rclpy

    from emotion_ros.msg import AudioChunk
    from emotion_ros.nodes.microphone_node import MicrophoneNode
    from tests.helpers.ros import spin_until

    streams = []
    monkeypatch.setitem(sys.modules, "pyaudio", _fake_pyaudio(streams))
    rclpy.init()
    try:
        mic = MicrophoneNode()
        listener = rclpy.create_node("mic_listener")
        got = []
        listener.create_subscription(AudioChunk, "/audio", got.append, 10)
        spin_until(listener, lambda: mic.publisher.get_subscription_count() > 0, 15)
        pcm = (np.arange(1600, dtype=np.int16) * 7).tobytes()
        for i in range(3):  # ADC times 0.0, 0.1, 0.2 s on PortAudio's clock
            streams[0].callback(pcm, 1600, {"input_buffer_adc_time": 100.0 + 0.1 * i}, 0)
        assert spin_until(listener, lambda: len(got) == 3, 15)
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got]
        assert np.diff(stamps) == pytest.approx([1e8, 1e8], abs=1e3)  # stamps follow the capture clock
        assert all(bytes(m.data) == pcm and m.sample_rate == 16000 and m.sample_format == "S16LE" for m in got)
        mic.close()
    finally:
        rclpy.shutdown()


@pytest.mark.parametrize("index", ["0", "3", "99"])
def test_device_index_is_checked_against_the_devices_not_a_segfault(index):
    """PortAudio dereferenced a device index it does not have (rc 139, no output); now the index is checked
    first and the sentence lists the input devices that exist (none on this machine)."""
    pytest.importorskip("pyaudio")
    proc = subprocess.run([sys.executable, "-m", "emotion_ros.nodes.microphone_node", "--ros-args", "-p",
                           f"device_index:={index}"], capture_output=True, text=True, timeout=60)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and f"device_index {index} is not an input device; input devices here:" in lines[0]


def test_input_devices_lists_only_devices_that_record():
    from emotion_ros.nodes.microphone_node import input_devices

    class PA:
        def get_device_count(self):
            return 3

        def get_device_info_by_index(self, i):
            return [{"name": "hdmi", "maxInputChannels": 0}, {"name": "usb mic", "maxInputChannels": 2},
                    {"name": "array", "maxInputChannels": 4}][i]

    assert input_devices(PA()) == {1: "usb mic", 2: "array"}
