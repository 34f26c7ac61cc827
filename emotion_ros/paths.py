"""Where the package's files are: the source tree, or the installed share dir of a ROS 2 install."""
from __future__ import annotations

from pathlib import Path

PACKAGE = "emotion_ros"
PARAMS_FILE = "perceive.yaml"  # in launch/ of the source tree, share/emotion_ros/launch/ when installed


def package_root() -> Path:
    """The source tree (or the installed share dir) that holds launch/ and models/."""
    here = Path(__file__).resolve().parents[1]
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


def resolve_checkpoint(checkpoint: str, profile: str) -> str:
    """The checkpoint folder a ``checkpoint`` parameter means: 'auto' = the profile's shipped adapters
    (models/<profile>/adapters) if it has any, else none; '' = none; a path (relative to the package root)."""
    if checkpoint == "auto":
        shipped = package_root() / "models" / profile / "adapters"
        return str(shipped) if (shipped / "config.json").is_file() else ""
    return resolve_path(checkpoint)

