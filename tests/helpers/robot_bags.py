"""Bags as a robot's own drivers and `ros2 bag record` write them, made with the `mcap` + `mcap-ros2-support`
writer (not rosbags): usb_cam's default topic names and image_transport's format strings, audio_common's
AudioDataStamped + AudioInfo, and topics the node has no use for (tf, robot_description).

Content: the labelled synthetic faces and voices of emotion_ros.bags.clips (so offline and live runs see
real audio and vision), at camera rate `fps`, audio in `chunk_ms` chunks at `sample_rate` / `channels`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_ros.bags.clips import DEFAULT_T0_NS, synthetic_audio, synthetic_frame
from emotion_ros.bags.typestore import project_typestore
from emotion_ros.bags.annotations import Annotations, Segment
from emotion_ros.ingest.audio_conversion import mono_to_chunk_bytes
from emotion_ros.ingest.image_conversion import rgb_to_compressed

NS = 1_000_000_000
USB_CAM_RAW = "/image_raw"                   # usb_cam's default topics
USB_CAM_COMPRESSED = "/image_raw/compressed"  # image_transport's compressed plugin beside it
AUDIO_STAMPED = "/audio_stamped"             # audio_common audio_capture's default topics
AUDIO_INFO = "/audio_info"


def _stamp(ns: int) -> dict:
    return {"sec": ns // NS, "nanosec": ns % NS}


def write_robot_bag(path: str | Path, segments: Sequence[tuple[str, float]] = (("happy", 2.5), ("sad", 2.5)), *,
                    fps: float = 10.0, size=(64, 48), sample_rate: int = 48_000, channels: int = 2,
                    chunk_ms: int = 100, raw: bool = False, compressed: bool = True,
                    compressed_format: str = "rgb8; jpeg compressed bgr8", audio_info: bool = True,
                    extra_topics: bool = True, t0_ns: int = DEFAULT_T0_NS, audio_receive_delay_s: float = 0.0,
                    image_receive_delay_s: float = 0.0, coding_format: str = "wave") -> Annotations:
    """Write a bare .mcap at `path` (+ `<stem>.annotations.json`); returns the annotations.

    *_receive_delay_s: bag (log) time = header stamp + this, as `ros2 bag record` logs receive times: an audio
    driver publishes a chunk only once it is complete (stamp = its first sample), so its messages arrive a
    chunk length or more after their stamps, later than a camera's frames."""
    from mcap_ros2.writer import Writer

    path = Path(path)
    store = project_typestore()
    items: list[tuple[int, int, str, str, dict]] = []

    def add(t_ns, topic, msgtype, msg):
        items.append((int(t_ns), len(items), topic, msgtype, msg))

    records, t = [], 0.0
    if audio_info:  # latched at driver start: recorded first
        add(t0_ns, AUDIO_INFO, "audio_common_msgs/msg/AudioInfo",
            {"channels": channels, "sample_rate": sample_rate, "sample_format": "S16LE",
             "bitrate": 0, "coding_format": coding_format})
    if extra_topics:
        add(t0_ns, "/robot_description", "std_msgs/msg/String", {"data": "<robot name='r'/>"})
    for i, (label, dur) in enumerate(segments):
        for k in range(int(math.floor(dur * fps + 1e-9))):
            ts = t + k / fps
            t_ns = t0_ns + round(ts * NS)
            rgb = np.ascontiguousarray(synthetic_frame(label, ts, size))
            header = {"stamp": _stamp(t_ns), "frame_id": "camera"}
            log_ns = t_ns + round(image_receive_delay_s * NS)
            if raw:
                h, w = rgb.shape[:2]
                add(log_ns, USB_CAM_RAW, "sensor_msgs/msg/Image",
                    {"header": header, "height": h, "width": w, "encoding": "rgb8", "is_bigendian": 0,
                     "step": 3 * w, "data": rgb.tobytes()})
            if compressed:
                _fmt, data = rgb_to_compressed(rgb, "jpeg", quality=90)
                add(log_ns, USB_CAM_COMPRESSED, "sensor_msgs/msg/CompressedImage",
                    {"header": header, "format": compressed_format, "data": data})
        # audio at the driver's rate (resampled from the 16 kHz synthetic voice), in chunk_ms chunks
        voice = synthetic_audio(label, dur, t)
        n_out = int(round(len(voice) * sample_rate / 16_000))
        voice = np.interp(np.arange(n_out) * 16_000 / sample_rate, np.arange(len(voice)), voice)
        step = sample_rate * chunk_ms // 1000
        for k in range(0, len(voice), step):
            t_ns = t0_ns + round((t + k / sample_rate) * NS)
            add(t_ns + round(audio_receive_delay_s * NS), AUDIO_STAMPED, "audio_common_msgs/msg/AudioDataStamped",
                {"header": {"stamp": _stamp(t_ns), "frame_id": "mic"},
                 "audio": {"data": mono_to_chunk_bytes(voice[k:k + step], "S16LE", channels)}})
        if extra_topics:
            add(t0_ns + round(t * NS), "/tf", "tf2_msgs/msg/TFMessage", {"transforms": []})
        records.append(Segment(label=label, start=round(t, 9), end=round(t + dur, 9), id=f"seg{i:03d}"))
        t += dur
    items.sort()
    with open(path, "wb") as f:
        writer = Writer(f)
        schemas = {}
        for t_ns, _, topic, msgtype, msg in items:
            if msgtype not in schemas:
                text, _ = store.generate_msgdef(msgtype, ros_version=2)
                schemas[msgtype] = writer.register_msgdef(msgtype, text)
            writer.write_message(topic, schemas[msgtype], msg, log_time=t_ns, publish_time=t_ns)
        writer.finish()
    ann = Annotations(segments=records, t0_ns=t0_ns)
    ann.save(path.with_suffix(".annotations.json"))
    return ann
