"""Microphone node: captures PCM with PyAudio and publishes emotion_ros/AudioChunk with capture stamps.

The stamp of each chunk is the capture time of its first sample: PortAudio's ADC time of the buffer,
mapped onto the ROS clock. Where no input device exists the node exits with one clear sentence.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import rclpy
from builtin_interfaces.msg import Time
from rclpy.node import Node

from emotion_ros.msg import AudioChunk

from emotion_ros.ingest.stamps import ns_to_time
from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE
from emotion_ros.nodes.parameters import declare_config_parameters, init_or_explain, read_config_parameters
from emotion_ros.params import ConfigError, param, validate

@dataclass
class MicrophoneConfig:
    """Parameters of the microphone node (declared as ROS parameters with these descriptions)."""

    topic: str = param("/audio", "emotion_ros/AudioChunk output topic")
    device_index: int = param(-1, "PyAudio input device index; -1 = the default input device", min=-1)
    sample_rate: int = param(AUDIO_SAMPLE_RATE, "capture rate in Hz (the perception node resamples to 16 kHz)",
                             min=8000, max=192000)
    channels: int = param(1, "capture channels (the perception node mixes to mono)", min=1, max=32)
    chunk_ms: int = param(100, "duration of one published chunk in milliseconds", min=5, max=2000)
    frame_id: str = param("microphone", "header.frame_id of the published chunks")

    def __post_init__(self):
        validate(self)


class MicrophoneUnavailable(RuntimeError):
    pass


def open_input_stream(pyaudio_module, rate: int, channels: int, frames: int, device_index: int, callback):
    """Open a PyAudio input stream, turning PortAudio's errors into one sentence."""
    with _quiet_c_stderr():  # ALSA/JACK probe every backend and print pages of noise on fd 2
        pa = pyaudio_module.PyAudio()
    try:
        if device_index < 0:
            info = pa.get_default_input_device_info()
            device_index = int(info["index"])
        else:
            # PortAudio dereferences a device index it does not have (a segfault, rc 139, no output), so
            # the index is checked against the devices first.
            inputs = input_devices(pa)
            if device_index not in inputs:
                raise ValueError(f"device_index {device_index} is not an input device; input devices here: "
                                 + (", ".join(f"{i} ({name})" for i, name in inputs.items()) or "none"))
        stream = pa.open(format=pyaudio_module.paInt16, channels=channels, rate=rate, input=True,
                         input_device_index=device_index, frames_per_buffer=frames, stream_callback=callback)
    except (OSError, IOError, ValueError) as exc:
        pa.terminate()
        raise MicrophoneUnavailable(f"no usable audio input device ({exc}); connect a microphone or "
                                    "publish emotion_ros/AudioChunk on the audio topic another way") from exc
    return pa, stream


def input_devices(pa) -> dict[int, str]:
    """index -> name of every PortAudio device that can record (maxInputChannels > 0)."""
    out = {}
    for i in range(int(pa.get_device_count())):
        info = pa.get_device_info_by_index(i)
        if int(info.get("maxInputChannels", 0)) > 0:
            out[i] = str(info.get("name", f"device {i}"))
    return out


@contextlib.contextmanager
def _quiet_c_stderr():
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MicrophoneNode(Node):
    def __init__(self, **kwargs):
        super().__init__("microphone", **kwargs)
        problems = declare_config_parameters(self, MicrophoneConfig)
        try:
            if problems:
                raise ConfigError("; ".join(problems))
            cfg = read_config_parameters(self, MicrophoneConfig)
        except ConfigError as exc:
            raise MicrophoneUnavailable(f"invalid parameters: {exc}") from None
        self.rate, self.channels = cfg.sample_rate, cfg.channels
        self.frame_id = cfg.frame_id
        self.publisher = self.create_publisher(AudioChunk, cfg.topic, 10)
        try:
            import pyaudio
        except ImportError as exc:
            raise MicrophoneUnavailable("PyAudio is not installed (pip install pyaudio; it needs "
                                        "apt-get install portaudio19-dev)") from exc
        frames = max(1, self.rate * cfg.chunk_ms // 1000)
        self._pyaudio = pyaudio
        self._offset_ns = None  # ROS time minus PortAudio stream time, fixed at the first buffer
        self.pa, self.stream = open_input_stream(pyaudio, self.rate, self.channels, frames,
                                                 cfg.device_index, self._callback)
        self.stream.start_stream()
        self.get_logger().info(f"capturing {self.rate} Hz x{self.channels} in {cfg.chunk_ms} ms chunks")

    def _callback(self, in_data, frame_count, time_info, status):
        adc_ns = int(time_info.get("input_buffer_adc_time", 0.0) * 1e9)
        now_ns = self.get_clock().now().nanoseconds
        if self._offset_ns is None or adc_ns == 0:
            # Some host APIs report 0: fall back to "now minus the buffer's duration".
            self._offset_ns = now_ns - adc_ns if adc_ns else 0
        stamp = adc_ns + self._offset_ns if adc_ns else now_ns - frame_count * 1_000_000_000 // self.rate
        msg = AudioChunk(sample_rate=self.rate, channels=self.channels, sample_format="S16LE")
        msg.header.stamp = ns_to_time(stamp, Time)
        msg.header.frame_id = self.frame_id
        msg.data = bytes(in_data)
        self.publisher.publish(msg)
        return (None, self._pyaudio.paContinue)

    def close(self):
        self.stream.stop_stream()
        self.stream.close()
        self.pa.terminate()


def main(args=None) -> int:
    if not init_or_explain(args):
        return 2
    try:
        node = MicrophoneNode()
    except MicrophoneUnavailable as exc:
        print(f"microphone: {exc}", file=sys.stderr)
        rclpy.shutdown()
        return 2
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
