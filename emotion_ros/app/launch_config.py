"""What `perceive` starts: shared by launch/perceive.launch.py and the project's own launcher, so both
start the same nodes with the same parameter file."""
from __future__ import annotations

from pathlib import Path

PACKAGE = "emotion_ros"
PARAMS_FILE = "perceive.yaml"  # in launch/ of the source tree, share/emotion_ros/launch/ when installed

# (executable installed in lib/emotion_ros, python module, node name, optional?)
NODES = (
    ("perception_node", "emotion_ros.nodes.perception_node", "emotion_perception", False),
    ("microphone_node", "emotion_ros.nodes.microphone_node", "microphone", True),
)


def package_root() -> Path:
    """The source tree (or the installed share dir) that holds launch/ and models/."""
    here = Path(__file__).resolve().parents[2]
    if (here / "launch" / PARAMS_FILE).exists():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:
        return here


def default_params_file() -> Path:
    return package_root() / "launch" / PARAMS_FILE


def resolve_path(value: str) -> str:
    """Relative model paths in the YAML are relative to the package root, not the working directory."""
    if not value:
        return value
    path = Path(value)
    return str(path if path.is_absolute() else package_root() / path)
