"""Which bag topic feeds which input of the node, decided from the topic names AND the message types.

A robot's drivers rarely use the node's default names (usb_cam: `/image_raw`, `/image_raw/compressed`;
audio_common's audio_capture: `/audio_stamped`, `/audio_info`). So an input is fed by the bag topic of
its configured name when the bag has one with a type that input accepts, and otherwise by a bag topic
of an accepted type (raw Image before CompressedImage for the camera, the AudioChunk before audio_common
for the audio). A std_msgs/String feeds the transcript only under its configured name: String carries
anything (`/robot_description` is one), so matching it by type would feed random text. Every bag topic ends up either feeding one input or in `unused` with the reason, so
`lines()` can say it all; nothing is skipped without a word. Used by the offline runner and the player.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from emotion_ros.bags.typestore import (AUDIO_CHUNK, AUDIO_DATA_STAMPED, AUDIO_INFO, COMPRESSED_IMAGE, IMAGE,
                                        INPUT_KINDS, STRING, TRANSCRIPT)

# input -> accepted types, in order of preference
INPUT_TYPES: dict[str, tuple[str, ...]] = {
    "image": (IMAGE, COMPRESSED_IMAGE),
    "audio": (AUDIO_CHUNK, AUDIO_DATA_STAMPED),
    "audio_info": (AUDIO_INFO,),
    "transcript": (TRANSCRIPT, STRING),
}
NAME_ONLY = {"transcript"}  # inputs whose type is too generic to match by type alone
OUTPUT_TYPES = ("emotion_ros/msg/EmotionState", "emotion_ros/msg/EmotionReasoning",
                "diagnostic_msgs/msg/DiagnosticArray", "hri_msgs/msg/Expression")


@dataclass
class InputPlan:
    """feeds: input -> bag topic; types: bag topic -> type; unused: bag topic -> why it feeds nothing;
    renamed: inputs fed by a topic whose name differs from the configured one."""

    feeds: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    unused: dict[str, str] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    configured: dict[str, list[str]] = field(default_factory=dict)

    def input_of(self, topic: str) -> str | None:
        return next((k for k, t in self.feeds.items() if t == topic), None)

    def lines(self, bag_name: str = "") -> list[str]:
        """Human-readable mapping: one line per used topic, then one per unused topic."""
        where = f" of {bag_name}" if bag_name else ""
        out = []
        for kind, topic in self.feeds.items():
            note = ""
            if kind in self.renamed:
                note = f" (matched by type; configured: {', '.join(self.configured.get(kind, [])) or '-'})"
            out.append(f"input {kind:<10} <- {topic} [{self.types[topic]}]{note}")
        for kind in INPUT_TYPES:
            if kind not in self.feeds and kind != "audio_info":
                out.append(f"input {kind:<10} <- (no topic of an accepted type{where})")
        for topic, why in self.unused.items():
            out.append(f"unused {topic} [{self.types[topic]}]: {why}")
        return out


def plan_inputs(bag_topics: Mapping[str, str], configured: Mapping[str, Sequence[str]]) -> InputPlan:
    """bag_topics: topic -> type; configured: input -> topic names the node would subscribe (e.g.
    {"image": ["/camera/image_raw", "/camera/image_raw/compressed"], "audio": ["/audio"], ...})."""
    plan = InputPlan(types=dict(bag_topics), configured={k: [t for t in v if t] for k, v in configured.items()})
    taken: set[str] = set()
    for kind, accepted in INPUT_TYPES.items():
        names = plan.configured.get(kind, [])
        by_name = [t for t in names if bag_topics.get(t) in accepted]
        if by_name:  # the configured name wins; a raw Image over its compressed transport
            by_name.sort(key=lambda t: accepted.index(bag_topics[t]))
            plan.feeds[kind] = by_name[0]
        elif kind not in NAME_ONLY:
            candidates = sorted((t for t, ty in bag_topics.items() if ty in accepted and t not in taken),
                                key=lambda t: (accepted.index(bag_topics[t]), t))
            if candidates:
                plan.feeds[kind] = candidates[0]
                plan.renamed[kind] = candidates[0]
        if kind in plan.feeds:
            taken.add(plan.feeds[kind])
    for topic, msgtype in bag_topics.items():
        if topic in taken:
            continue
        kind = INPUT_KINDS.get(msgtype)
        if kind is not None:
            kind = "image" if kind == "compressed_image" else kind
            if kind in NAME_ONLY and kind not in plan.feeds:
                plan.unused[topic] = (f"a {msgtype} feeds the {kind} input only under its configured name "
                                      f"({', '.join(plan.configured.get(kind, [])) or 'none configured'})")
            else:
                plan.unused[topic] = f"another {kind} topic ({plan.feeds.get(kind)}) feeds the {kind} input"
        elif msgtype in OUTPUT_TYPES:
            plan.unused[topic] = "an output of the node, not an input"
        else:
            plan.unused[topic] = "not an input type of the node"
    return plan
