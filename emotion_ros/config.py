"""PerceptionConfig: the one configuration of a perception run.

One object says everything a run needs — topics, windowing, engine (profile, checkpoint, label set,
tasks, stage options, precision) and node behaviour — typed and validated (emotion_ros.params). It is
read from launch/perceive.yaml (a standard ROS 2 parameter file) by all users alike:

- the perception node declares one ROS parameter per field (``ros2 param describe`` shows the field's
  description, range and allowed values) and builds this object from their values on configure, so
  ``ros2 launch``, ``python -m emotion_ros launch`` and ``-p name:=value`` all go through the same checks;
- the offline evaluation, replay and the benchmarks call ``PerceptionConfig.load(params_file, **overrides)``
  and build the windower (``.windowing``) and the engine (``.engine``) from it.
Every default lives once, in the field declaration of its section (WindowingConfig in
emotion_ros/ingest/windowing.py, EngineConfig in emotion_ros/inference/engine.py, the two below); the
YAML only says what a deployment changes. ROS parameter names are the field names (unique across sections).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from emotion_ros.inference.engine import EngineConfig
from emotion_ros.ingest.windowing import WindowingConfig
from emotion_ros.params import ConfigError, ParamSpec, build, param, specs, unknown_message, validate
from emotion_ros.paths import default_params_file

NODE_NAME = "emotion_perception"


@dataclass
class TopicsConfig:
    """Input and output topics of the perception node, and the inputs' QoS."""

    image_topic: str = param("/camera/image_raw", "sensor_msgs/Image input ('' = off)")
    compressed_image_topic: str = param("/camera/image_raw/compressed",
                                        "sensor_msgs/CompressedImage input (jpeg/png; '' = off)")
    audio_topic: str = param("/audio", "emotion_ros/AudioChunk input ('' = off)")
    audio_stamped_topic: str = param(
        "/audio_stamped", "audio_common_msgs/AudioDataStamped input of the standard ROS 2 audio driver "
        "(audio_capture; subscribed where audio_common_msgs is importable; '' = off)")
    audio_info_topic: str = param("/audio_info", "audio_common_msgs/AudioInfo: rate, channels and sample format "
                                  "of the AudioDataStamped stream (transient-local, as audio_capture publishes it)")
    audio_fallback_sample_rate: int = param(
        16000, "AudioDataStamped before any AudioInfo arrived: assumed sample rate (0 = drop such chunks, "
        "counted as audio_no_info)", min=0, max=192000, advanced=True)
    audio_fallback_channels: int = param(1, "AudioDataStamped before any AudioInfo: assumed channel count",
                                         min=1, max=8, advanced=True)
    audio_fallback_format: Literal["S16LE", "F32LE"] = param(
        "S16LE", "AudioDataStamped before any AudioInfo: assumed sample format", advanced=True)
    transcript_topic: str = param("/transcript", "transcript input; '' = none: the node transcribes "
                                  "(profile with ASR)")
    transcript_type: Literal["string", "transcript"] = param(
        "string", "message type of transcript_topic: string = std_msgs/String (no stamp: it belongs to the "
        "newest sensor time on arrival); transcript = emotion_ros/Transcript (the speech's start and end: "
        "it belongs to every window overlapping them; make-bag writes these)")
    state_topic: str = param("/emotion/state", "emotion_ros/EmotionState output, one per window")
    reasoning_topic: str = param("/emotion/reasoning", "emotion_ros/EmotionReasoning output (streamed text)")
    hri_topic: str = param("/humans/faces/anonymous/expression",
                           "hri_msgs/Expression output (ROS4HRI) where hri_msgs is importable")
    image_qos: Literal["reliable", "best_effort"] = param(
        "reliable", "reliability of the image subscriptions (best_effort + full-size images drop frames "
        "unless FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA)")
    input_qos_depth: int = param(50, "subscription queue depth: bursts (bag replay) must not overflow it",
                                 min=1, max=10000)

    def __post_init__(self):
        validate(self)

    def audio_fallback(self):
        """The AudioFormat assumed for AudioDataStamped before an AudioInfo is seen (None = drop)."""
        from emotion_ros.ingest.audio_conversion import AudioFormat

        if not self.audio_fallback_sample_rate:
            return None
        return AudioFormat(self.audio_fallback_sample_rate, self.audio_fallback_channels, self.audio_fallback_format)

    def configured_inputs(self) -> dict[str, list[str]]:
        """input -> the topic names the node subscribes for it (emotion_ros.bags.topic_map's `configured`)."""
        return {"image": [self.image_topic, self.compressed_image_topic],
                "audio": [self.audio_topic, self.audio_stamped_topic],
                "audio_info": [self.audio_info_topic], "transcript": [self.transcript_topic]}


@dataclass
class NodeConfig:
    """How the node schedules work and reports."""

    queue_size: int = param(1, "windows waiting for inference; when full the oldest is dropped (counted)",
                            min=1, max=1000)
    reasoning_every: int = param(1, "stream reasoning for every Nth state; 0 = off", min=0)
    publish_hri: bool = param(True, "also publish hri_msgs/Expression where hri_msgs is importable")
    diagnostics_period_s: float = param(1.0, "period of /diagnostics (seconds)", min=0.05, max=60.0)
    autostart: bool = param(True, "configure + activate at start-up (no lifecycle manager needed)")

    def __post_init__(self):
        validate(self)


@dataclass
class PerceptionConfig:
    engine: EngineConfig = field(default_factory=EngineConfig)
    windowing: WindowingConfig = field(default_factory=WindowingConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    node: NodeConfig = field(default_factory=NodeConfig)

    SECTIONS = {"engine": EngineConfig, "windowing": WindowingConfig, "topics": TopicsConfig, "node": NodeConfig}

    # -- building ------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "PerceptionConfig":
        """From flat parameter values (YAML ros__parameters, ROS parameters, overrides); missing ones keep
        their defaults; unknown or invalid ones raise ConfigError."""
        table = cls.parameter_table()
        unknown = [k for k in values if k not in table]
        if unknown:
            raise ConfigError(unknown_message(unknown, table))
        by_section: dict[str, dict] = {name: {} for name in cls.SECTIONS}
        for key, value in values.items():
            by_section[table[key][0]][key] = value
        return cls(**{name: build(sec, by_section[name]) for name, sec in cls.SECTIONS.items()})

    @classmethod
    def load(cls, params_file: str | Path | None = None, node: str = NODE_NAME, **overrides) -> "PerceptionConfig":
        """From a ROS 2 parameter file (default launch/perceive.yaml; '' = no file, defaults only) plus
        keyword overrides (``window_s=3``); None values in overrides are ignored."""
        values = {} if params_file == "" else read_params_file(params_file or default_params_file(), node)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(values)

    # -- parameters ----------------------------------------------------------------------------------
    @classmethod
    def parameter_table(cls) -> dict[str, tuple[str, ParamSpec]]:
        """name -> (section, spec) of every declared parameter."""
        table: dict[str, tuple[str, ParamSpec]] = {}
        for name, sec in cls.SECTIONS.items():
            for spec in specs(sec):
                if spec.name in table:
                    raise TypeError(f"parameter {spec.name} declared by two sections")
                table[spec.name] = (name, spec)
        return table

    def to_mapping(self) -> dict[str, Any]:
        """Flat name -> value of every parameter (lists for tuples: YAML/ROS friendly)."""
        out = {}
        for name in self.SECTIONS:
            section = getattr(self, name)
            for spec in specs(type(section)):
                value = getattr(section, spec.field)
                out[spec.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **values) -> "PerceptionConfig":
        """A copy with some parameters changed (validated like everything else)."""
        merged = self.to_mapping()
        merged.update(values)
        return self.from_mapping(merged)


def read_params_file(path: str | Path, node: str = NODE_NAME) -> dict[str, Any]:
    """The ros__parameters of ``node`` in a ROS 2 parameter file ('/**' wildcard sections included, the
    node's own section wins)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameter file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"parameter file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"parameter file {path}: expected '<node>: ros__parameters: ...' sections")
    values: dict[str, Any] = {}
    for key in ("/**", node, f"/{node}"):
        section = data.get(key)
        if section is None:
            continue
        params = section.get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(params, dict):
            raise ConfigError(f"parameter file {path}: section {key!r} has no ros__parameters mapping")
        values.update(params)
    return values
