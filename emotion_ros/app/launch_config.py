"""What `perceive` starts: shared by launch/perceive.launch.py and the project's own launcher, so both
start the same nodes with the same parameter file."""
from __future__ import annotations

# (executable installed in lib/emotion_ros, python module, node name, optional?)
NODES = (
    ("perception_node", "emotion_ros.nodes.perception_node", "emotion_perception", False),
    ("microphone_node", "emotion_ros.nodes.microphone_node", "microphone", True),
)
