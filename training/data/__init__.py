"""MMEVerse-format clip records, their JSONL manifests, media decoding and dataset adapters.

    from emotion_ros_training.data import read_manifest, ClipDataset
    records = read_manifest("data/synth/manifest.jsonl")
    window = ClipDataset(records)[0]          # an emotion_ros.ingest.window.Window
"""
from emotion_ros_training.data.manifest import (
    IEMOCAP4,
    LABEL_SPACES,
    MELD7,
    MER6,
    MODALITIES,
    SENTIMENT3,
    SPLITS,
    ClipRecord,
    LabelSpace,
    ManifestError,
    label_space,
    read_manifest,
    think_target,
    write_manifest,
)

__all__ = [
    "ClipDataset",
    "ClipRecord",
    "IEMOCAP4",
    "LABEL_SPACES",
    "LabelSpace",
    "MELD7",
    "MER6",
    "MODALITIES",
    "ManifestError",
    "SENTIMENT3",
    "SPLITS",
    "label_space",
    "read_manifest",
    "sample_clip",
    "think_target",
    "write_manifest",
]


def __getattr__(name):
    # media pulls in PyAV; keep `import emotion_ros_training.data` light for code that only reads manifests.
    if name in ("ClipDataset", "sample_clip"):
        from emotion_ros_training.data import media

        return getattr(media, name)
    raise AttributeError(name)
