"""One rosbags typestore that knows the standard ROS 2 types and this project's messages.

rosbags (pure Python) serialises and deserialises CDR without a ROS install; its type hashes equal
rosidl's (ENVIRONMENT.md), so bags written with this store are read by `ros2 bag`, MCAP tools and rclpy.
The project's types are registered from the same msg/*.msg files that rosidl builds; the standard ROS 2
audio driver's messages (audio_common_msgs) and ROS4HRI's Expression are registered from
emotion_ros/bags/interfaces/ (upstream definitions, see its README), so bags carrying them decode without
those packages installed.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from rosbags.typesys import Stores, get_typestore, get_types_from_msg

from emotion_ros.ingest.stamps import NS, ns_to_time

PACKAGE = "emotion_ros"

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
AUDIO_CHUNK = "emotion_ros/msg/AudioChunk"
TRANSCRIPT = "emotion_ros/msg/Transcript"  # text + the span of speech it covers (header.stamp .. end)
TRANSCRIPT_TYPES = (STRING, TRANSCRIPT)  # both are accepted on a transcript topic
TIME = "builtin_interfaces/msg/Time"
EMOTION_STATE = "emotion_ros/msg/EmotionState"
EMOTION_REASONING = "emotion_ros/msg/EmotionReasoning"
AUDIO_DATA_STAMPED = "audio_common_msgs/msg/AudioDataStamped"
AUDIO_DATA = "audio_common_msgs/msg/AudioData"
AUDIO_INFO = "audio_common_msgs/msg/AudioInfo"
HRI_EXPRESSION = "hri_msgs/msg/Expression"

# What each input message type feeds (the one table the offline runner, the player and the node share):
# an input topic of one of these types is always used; a topic of any other type is named as unused.
INPUT_KINDS = {
    IMAGE: "image",
    COMPRESSED_IMAGE: "compressed_image",
    AUDIO_CHUNK: "audio",
    AUDIO_DATA_STAMPED: "audio",
    AUDIO_INFO: "audio_info",
    STRING: "transcript",
    TRANSCRIPT: "transcript",
}

# Default topics of the node (issue 3) and their types.
DEFAULT_TOPICS = {
    "/camera/image_raw": IMAGE,
    "/camera/image_raw/compressed": COMPRESSED_IMAGE,
    "/audio": AUDIO_CHUNK,
    "/transcript": STRING,
    "/emotion/state": EMOTION_STATE,
    "/emotion/reasoning": EMOTION_REASONING,
}
INPUT_TOPICS = ("/camera/image_raw", "/camera/image_raw/compressed", "/audio", "/transcript")
OUTPUT_TOPICS = ("/emotion/state", "/emotion/reasoning")


def msg_dir() -> Path:
    """Folder holding the project's .msg files: the source tree first, then any ament prefix."""
    candidates = [Path(__file__).resolve().parents[2] / "msg"]
    prefixes = os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) + [sys.prefix]
    candidates += [Path(p) / "share" / PACKAGE / "msg" for p in prefixes if p]
    for path in candidates:
        if (path / "EmotionState.msg").is_file():
            return path
    raise FileNotFoundError(f"no {PACKAGE} msg/ folder found (looked in {', '.join(map(str, candidates))})")


@functools.lru_cache(maxsize=1)
def project_typestore():
    """The ROS 2 kilted store plus emotion_ros/msg/* (cached: building it parses the .msg files once)."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    for path in sorted(INTERFACES_DIR.glob("*/msg/*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{path.parent.parent.name}/msg/{path.stem}"))
    store.register({k: v for k, v in types.items() if k not in store.types})
    return store


# Upstream definitions of other packages' messages (audio_common_msgs, hri_msgs): see interfaces/README.md.
INTERFACES_DIR = Path(__file__).resolve().parent / "interfaces"


def register_connection_types(store, connections) -> None:
    """Register types a bag carries (msgdef text) that the store does not know yet, e.g. a user's own."""
    from rosbags.interfaces import MessageDefinitionFormat

    add = {}
    for conn in connections:
        if conn.msgtype in store.types or conn.msgtype in add:
            continue
        msgdef = getattr(conn, "msgdef", None)
        if msgdef is None or not msgdef.data or msgdef.format != MessageDefinitionFormat.MSG:
            continue
        try:
            add.update(_types_from_concatenated_msgdef(msgdef.data, conn.msgtype))
        except Exception:  # an unparsable definition only matters if someone decodes that topic
            continue
    if add:
        store.register({k: v for k, v in add.items() if k not in store.types})


def _types_from_concatenated_msgdef(text: str, msgtype: str) -> dict:
    """rosbag2 stores a type with its dependencies as 'MSG: pkg/Name' blocks separated by '=' lines."""
    types = {}
    blocks = [b for b in text.split("=" * 80) if b.strip()]
    for i, block in enumerate(blocks):
        name = msgtype
        lines = block.strip("\n").splitlines()
        if i > 0 and lines and lines[0].startswith("MSG: "):
            name = lines[0][5:].strip()
            lines = lines[1:]
        if "/msg/" not in name:
            pkg, _, base = name.partition("/")
            name = f"{pkg}/msg/{base}"
        types.update(get_types_from_msg("\n".join(lines), name))
    return types


def ros_message_class(msgtype: str):
    """The rclpy (rosidl) Python class of a type name such as 'sensor_msgs/msg/Image'."""
    import importlib

    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def header_stamp_from_cdr(data: bytes) -> int | None:
    """Header stamp read straight from CDR bytes of a message whose first field is std_msgs/Header.

    The layout is fixed (4-byte encapsulation, int32 sec, uint32 nanosec), so recorders and the player
    can time messages without deserialising large images.
    """
    if len(data) < 12:
        return None
    little = data[1] == 1
    order = "little" if little else "big"
    sec = int.from_bytes(data[4:8], order, signed=True)
    nanosec = int.from_bytes(data[8:12], order, signed=False)
    return sec * NS + nanosec


def has_header(msgtype: str, store=None) -> bool:
    """True when the type's first field is a std_msgs/Header (so header_stamp_from_cdr applies)."""
    store = store or project_typestore()
    fields = store.fielddefs.get(msgtype)
    if not fields:
        return False
    first = fields[1][0] if len(fields) > 1 and fields[1] else None
    if first is None:
        return False
    name, (_, spec) = first[0], first[1]
    return name == "header" and spec in ("std_msgs/msg/Header",)


def header_msg(store, ns: int, frame_id: str = ""):
    """A std_msgs/Header of the store stamped ns (stamp conversion: emotion_ros.ingest.stamps)."""
    return store.types["std_msgs/msg/Header"](stamp=ns_to_time(ns, store.types[TIME]), frame_id=frame_id)
