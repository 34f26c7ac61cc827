"""Sensor time: integer nanoseconds, and conversions from/to builtin_interfaces/Time.

The one home of the stamp helpers: the windower validates stamps with `check_stamp`, the nodes and the
bag code convert header stamps with `time_to_ns` / `ns_to_time` (any Time class: rclpy's generated
`builtin_interfaces.msg.Time` or a rosbags typestore's), so this module imports nothing of ROS.
"""
from __future__ import annotations

import numpy as np

from emotion_ros.ingest.errors import InputError

NS = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    """Seconds (float) -> integer ns, rounded to the nearest ns."""
    return int(round(seconds * NS))


def check_stamp(stamp_ns) -> int:
    """Integer ns > 0 (a zero stamp is an unset header) or InputError ("stamp_zero" / "stamp_invalid")."""
    if isinstance(stamp_ns, (bool, np.bool_)) or not isinstance(stamp_ns, (int, np.integer)):
        raise InputError("stamp_invalid", f"stamp must be integer ns, got {type(stamp_ns).__name__}")
    s = int(stamp_ns)
    if s == 0:
        raise InputError("stamp_zero", "stamp is 0 (header stamp not set)")
    if s < 0 or s >= 2**63:
        raise InputError("stamp_invalid", f"stamp {s} out of range")
    return s


def time_to_ns(stamp) -> int:
    """builtin_interfaces/Time (anything with .sec and .nanosec) -> integer ns, unvalidated.

    For trusted, already typed messages (rosidl/rosbags check the field types); the windower validates
    the result with `check_stamp` when the value is pushed.
    """
    return int(stamp.sec) * NS + int(stamp.nanosec)


def header_stamp_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer ns, validated: sec >= 0, 0 <= nanosec < 1e9, integers, and the
    result as `check_stamp` wants it; InputError otherwise (for hand-made or untrusted objects)."""
    try:
        sec, nsec = stamp.sec, stamp.nanosec
    except AttributeError:
        raise InputError("stamp_invalid", f"not a Time: {type(stamp).__name__}") from None
    if isinstance(sec, bool) or isinstance(nsec, bool) or not isinstance(sec, (int, np.integer)) \
            or not isinstance(nsec, (int, np.integer)) or not 0 <= nsec < NS or sec < 0:
        raise InputError("stamp_invalid", f"bad Time sec={sec!r} nanosec={nsec!r}")
    return check_stamp(int(sec) * NS + int(nsec))


def msg_stamp_ns(msg) -> int | None:
    """Header stamp of a decoded message in ns, or None for header-less types (e.g. std_msgs/String)."""
    header = getattr(msg, "header", None)
    if header is None:
        return None
    return time_to_ns(header.stamp)


def split_ns(ns: int) -> tuple[int, int]:
    """Integer ns -> (sec, nanosec) of a builtin_interfaces/Time; negative values clamp to 0."""
    ns = max(0, int(ns))
    return ns // NS, ns % NS


def ns_to_time(ns: int, time_type):
    """An instance of `time_type` (a builtin_interfaces/Time class of rclpy or of a rosbags store) for ns."""
    sec, nanosec = split_ns(ns)
    return time_type(sec=sec, nanosec=nanosec)
